#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "lmforge/error.h"
#include "tokenizer/unicode_supplement.h"

namespace lmforge::tokenizer {

namespace {

// Python's `regex` module (which HF uses) gives \s the Unicode White_Space property. PCRE2's \s
// under UCP differs at the edges (10.42 counts U+180E, which Unicode no longer calls a space), so
// the set is spelled out and used in place of every \s / \S of GPT-2's pattern.
constexpr const char* kSpace =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// GPT-2's pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ with
// the explicit space set and the letter / number classes widened to current Unicode.
std::string gpt2_pattern() {
  const std::string letter = std::string("\\p{L}") + kExtraLetters;
  const std::string number = std::string("\\p{N}") + kExtraNumbers;
  const std::string space = kSpace;
  return "'s|'t|'re|'ve|'m|'ll|'d| ?[" + letter + "]+| ?[" + number + "]+| ?[^" + space + letter + number + "]+" +
         "|[" + space + "]+(?![^" + space + "])|[" + space + "]+";
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

struct PreTokenizer::Code {
  pcre2_code* re = nullptr;
  ~Code() { pcre2_code_free(re); }
};

PreTokenizer::PreTokenizer() : code_(std::make_unique<Code>()) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  const std::string pattern = gpt2_pattern();
  code_->re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (!code_->re)
    throw Error("tokenizer: cannot compile the pre-tokenizer regex: " + pcre2_message(err));
  // JIT is only a speed-up: when it is unavailable pcre2_match uses the interpreter.
  pcre2_jit_compile(code_->re, PCRE2_JIT_COMPLETE);
}

PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  // Match data is per call so that concurrent callers never share it.
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  PCRE2_SIZE offset = 0;
  while (offset < text.size()) {
    int rc = pcre2_match(code_->re, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
    // The JIT has a small fixed stack; the interpreter keeps its frames on the heap.
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(code_->re, subject, text.size(), offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.get(),
                       nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;  // like re.findall, trailing unmatched text is dropped
    if (rc < 0) throw Error("tokenizer: pre-tokenizer regex failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    // Every alternative consumes at least one character, so an empty match cannot happen; guard
    // anyway against looping forever.
    if (ov[1] <= ov[0]) throw Error("tokenizer: pre-tokenizer regex matched an empty string");
    pieces.push_back(text.substr(ov[0], ov[1] - ov[0]));
    offset = ov[1];
  }
  return pieces;
}

}  // namespace lmforge::tokenizer
