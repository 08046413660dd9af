// Generate-mode answers: the seed's post-processing (first line, strip, no <|endoftext|>) as a rule,
// with an optional PCRE2 regex and exact / contains label matching. See answer.h.
#include "lmforge/tasks/answer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include "lmforge/error.h"
#include "lmforge/tasks/loglikelihood.h"

namespace lmforge::tasks {

MatchRule parse_match_rule(std::string_view name, const std::string& flag) {
  if (name == "exact") return MatchRule::Exact;
  if (name == "contains") return MatchRule::Contains;
  throw Error(flag + ": expected exact or contains, got '" + std::string(name) + "'");
}

std::string first_line(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1C && c <= 0x1E)) return std::string(text.substr(0, i));
    if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x85)  // U+0085
      return std::string(text.substr(0, i));
    if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(text[i + 2]) == 0xA8 || static_cast<unsigned char>(text[i + 2]) == 0xA9))  // U+2028/9
      return std::string(text.substr(0, i));
  }
  return std::string(text);
}

struct AnswerParser::Regex {
  pcre2_code* code = nullptr;
  uint32_t groups = 0;
  ~Regex() { pcre2_code_free(code); }
};

AnswerParser::AnswerParser(const AnswerOptions& options) : options_(options) {
  if (options_.regex.empty()) return;
  int err = 0;
  PCRE2_SIZE offset = 0;
  regex_ = std::make_unique<Regex>();
  regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(options_.regex.data()), options_.regex.size(), PCRE2_UTF,
                               &err, &offset, nullptr);
  if (!regex_->code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    throw Error("--answer_regex: cannot compile '" + options_.regex + "' at offset " + std::to_string(offset) + ": " +
                reinterpret_cast<const char*>(buf));
  }
  pcre2_pattern_info(regex_->code, PCRE2_INFO_CAPTURECOUNT, &regex_->groups);
}

AnswerParser::~AnswerParser() = default;
AnswerParser::AnswerParser(AnswerParser&&) noexcept = default;
AnswerParser& AnswerParser::operator=(AnswerParser&&) noexcept = default;

std::string AnswerParser::extract(std::string_view text) const {
  if (!regex_) return python_strip(first_line(text));
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  const int rc = pcre2_match(regex_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, md, nullptr);
  std::string answer;
  if (rc > 0) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    // Group 1 when the pattern has groups (unset group: ""), else the whole match.
    const int g = regex_->groups > 0 ? 1 : 0;
    if (g < rc && ov[2 * g] != PCRE2_UNSET) answer = std::string(text.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]));
  }
  pcre2_match_data_free(md);
  return python_strip(answer);
}

namespace {

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

}  // namespace

int AnswerParser::match(const std::string& raw_answer, const std::vector<std::string>& targets) const {
  const std::string answer = options_.ignore_case ? ascii_lower(raw_answer) : raw_answer;
  int best = -1;
  size_t best_pos = std::string::npos, best_len = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string target = options_.ignore_case ? ascii_lower(targets[i]) : targets[i];
    if (options_.match == MatchRule::Exact) {
      if (answer == target) return static_cast<int>(i);
      continue;
    }
    if (target.empty()) continue;  // an empty target would be "contained" in every answer
    const size_t pos = answer.find(target);
    if (pos == std::string::npos) continue;
    if (best < 0 || pos < best_pos || (pos == best_pos && target.size() > best_len)) {
      best = static_cast<int>(i);
      best_pos = pos;
      best_len = target.size();
    }
  }
  return best;
}

ParsedAnswer AnswerParser::parse(std::string_view text, const std::vector<std::string>& targets) const {
  ParsedAnswer p;
  p.answer = extract(text);
  p.prediction = match(p.answer, targets);
  return p;
}

}  // namespace lmforge::tasks
