// Python-str helpers for the metrics (see text.h).
#include "eval/text.h"

#include <algorithm>

#include "eval/unicode_tables.h"
#include "tokenizer/utf8.h"

namespace lmforge::eval {
namespace {

bool in_ranges(const unicode::CodeRange* table, size_t size, char32_t cp) {
  const unicode::CodeRange* end = table + size;
  const auto* it = std::upper_bound(table, end, cp, [](char32_t c, const unicode::CodeRange& r) { return c < r.first; });
  return it != table && cp <= (it - 1)->last;
}

char32_t lower_one(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  const unicode::LowerMapping* end = unicode::kLower + unicode::kLowerSize;
  const auto* it = std::lower_bound(unicode::kLower, end, cp,
                                    [](const unicode::LowerMapping& m, char32_t c) { return m.from < c; });
  return (it != end && it->from == cp) ? it->to : cp;
}

bool is_cased(char32_t cp) { return in_ranges(unicode::kCased, unicode::kCasedSize, cp); }
bool is_case_ignorable(char32_t cp) { return in_ranges(unicode::kCaseIgnorable, unicode::kCaseIgnorableSize, cp); }

// CPython's handle_capital_sigma: a capital sigma becomes final sigma when a cased letter precedes
// it and none follows it (case-ignorable characters skipped on both sides).
bool is_final_sigma(std::u32string_view text, size_t i) {
  size_t j = i;
  while (j > 0 && is_case_ignorable(text[j - 1])) --j;
  if (j == 0 || !is_cased(text[j - 1])) return false;
  size_t k = i + 1;
  while (k < text.size() && is_case_ignorable(text[k])) ++k;
  return k == text.size() || !is_cased(text[k]);
}

}  // namespace

std::u32string to_code_points(std::string_view text) {
  const std::string valid = tokenizer::find_invalid_utf8(text) ? tokenizer::decode_utf8_replace(text) : std::string(text);
  std::u32string out;
  out.reserve(valid.size());
  for (size_t pos = 0; pos < valid.size();) out.push_back(tokenizer::next_codepoint(valid, pos));
  return out;
}

std::string to_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) tokenizer::append_utf8(out, cp);
  return out;
}

std::u32string python_lower(std::u32string_view text) {
  static constexpr char32_t kCapitalI_Dot = 0x130, kCapitalSigma = 0x3A3, kFinalSigma = 0x3C2, kCombiningDot = 0x307;
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t cp = text[i];
    if (cp == kCapitalI_Dot) {  // the only one-to-many lowercase mapping
      out.push_back(U'i');
      out.push_back(kCombiningDot);
    } else if (cp == kCapitalSigma && is_final_sigma(text, i)) {
      out.push_back(kFinalSigma);
    } else {
      out.push_back(lower_one(cp));
    }
  }
  return out;
}

bool is_space(char32_t cp) { return tokenizer::is_python_space(cp); }
bool is_punctuation(char32_t cp) { return in_ranges(unicode::kPunctuation, unicode::kPunctuationSize, cp); }
bool is_symbol(char32_t cp) { return in_ranges(unicode::kSymbol, unicode::kSymbolSize, cp); }
bool is_number(char32_t cp) { return in_ranges(unicode::kNumber, unicode::kNumberSize, cp); }

std::vector<std::u32string> python_split(std::u32string_view text) {
  std::vector<std::u32string> parts;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) parts.emplace_back(text.substr(start, i - start));
  }
  return parts;
}

std::u32string_view python_rstrip(std::u32string_view text) {
  size_t end = text.size();
  while (end > 0 && is_space(text[end - 1])) --end;
  return text.substr(0, end);
}

}  // namespace lmforge::eval
