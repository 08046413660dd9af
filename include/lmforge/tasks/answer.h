#pragma once
// Generate mode: from a model's generated text to an answer and a predicted label (docs/TASKS.md,
// "lmforge task"). The reference GPT-J notebook's post-processing, made a rule:
//   1. the generated text with special tokens (<|endoftext|>) removed;
//   2. without a regex: its first line (Python str.splitlines()[0], "" when there is none), with
//      surrounding whitespace stripped (Python str.strip());
//      with a regex (PCRE2, searched in the whole text of step 1): capture group 1 when the pattern
//      has groups, else the whole match, stripped; no match gives the answer "";
//   3. the answer is compared with each label's target (the template's choice for it, stripped, or
//      the label name): `exact` = equal; `contains` = the target occurs in the answer (several
//      occur: the one starting first wins, then the longest), as the reference notebook's `label in answer`.
//      `ignore_case` compares ASCII letters case-insensitively. No target: unmatched (-1).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::tasks {

enum class MatchRule { Exact, Contains };

// "exact" / "contains"; anything else is an error naming `flag`.
MatchRule parse_match_rule(std::string_view name, const std::string& flag = "--match");

struct AnswerOptions {
  MatchRule match = MatchRule::Exact;
  bool ignore_case = false;
  std::string regex;  // empty: the first line
};

struct ParsedAnswer {
  std::string answer;   // after step 2
  int prediction = -1;  // the matched label index, -1 when no target matched
};

// Python str.splitlines()[0] ("" for an empty text): the text up to the first line boundary
// (\n, \r, \v, \f, \x1c-\x1e, U+0085, U+2028, U+2029).
std::string first_line(std::string_view text);

class AnswerParser {
 public:
  // Throws lmforge::Error (naming --answer_regex) on a regex that does not compile.
  explicit AnswerParser(const AnswerOptions& options);
  ~AnswerParser();
  AnswerParser(AnswerParser&&) noexcept;
  AnswerParser& operator=(AnswerParser&&) noexcept;

  // `text`: the generated text with special tokens removed; `targets[i]`: the text that means
  // label i (already stripped).
  ParsedAnswer parse(std::string_view text, const std::vector<std::string>& targets) const;
  // Step 2 alone.
  std::string extract(std::string_view text) const;
  // Step 3 alone.
  int match(const std::string& answer, const std::vector<std::string>& targets) const;

 private:
  struct Regex;
  AnswerOptions options_;
  std::unique_ptr<Regex> regex_;
};

}  // namespace lmforge::tasks
