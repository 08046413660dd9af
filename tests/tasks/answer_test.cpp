// Generate-mode answers: the seed notebook's `answer.splitlines()[0].strip()` (special tokens
// already removed), the regex rule and exact / contains label matching. Expected values are what
// Python's str.splitlines()[0].strip() and `label in answer` give for the same strings.
#include <gtest/gtest.h>

#include "lmforge/tasks/answer.h"
#include "tasks/tasks_test_util.h"

namespace lmforge::tasks {
namespace {

const std::vector<std::string> kLabels = {"entailment", "neutral", "contradiction"};

TEST(Answer, FirstLineIsPythonSplitlines) {
  EXPECT_EQ(first_line(" entailment\nneutral"), " entailment");
  EXPECT_EQ(first_line("a\r\nb"), "a");
  EXPECT_EQ(first_line("a\rb"), "a");
  EXPECT_EQ(first_line("a\vb"), "a");
  EXPECT_EQ(first_line("a\fb"), "a");
  EXPECT_EQ(first_line("a\x1d" "b"), "a");
  EXPECT_EQ(first_line("a\xc2\x85" "b"), "a");      // U+0085 NEL
  EXPECT_EQ(first_line("a\xe2\x80\xa8" "b"), "a");  // U+2028 LINE SEPARATOR
  EXPECT_EQ(first_line("a\xe2\x80\xa9" "b"), "a");  // U+2029 PARAGRAPH SEPARATOR
  EXPECT_EQ(first_line("a\xe2\x80\xa6" "b"), "a\xe2\x80\xa6" "b");  // U+2026 is not a line break
  EXPECT_EQ(first_line("\nentailment"), "");  // Python: "\nentailment".splitlines()[0] == ""
  EXPECT_EQ(first_line(""), "");
  EXPECT_EQ(first_line("no break"), "no break");
}

TEST(Answer, ExtractStripsUnicodeWhitespace) {
  const AnswerParser p({});
  EXPECT_EQ(p.extract("  entailment \t\nneutral"), "entailment");
  EXPECT_EQ(p.extract("\xc2\xa0" "neutral\xe3\x80\x80"), "neutral");  // NBSP and ideographic space: str.strip() removes both
  EXPECT_EQ(p.extract("\n\nentailment"), "");
}

TEST(Answer, ExactMatch) {
  const AnswerParser p({});
  EXPECT_EQ(p.parse(" neutral\nmore text", kLabels).prediction, 1);
  EXPECT_EQ(p.parse(" contradiction", kLabels).prediction, 2);
  EXPECT_EQ(p.parse(" neutral.", kLabels).prediction, -1);
  EXPECT_EQ(p.parse(" Neutral", kLabels).prediction, -1);
  EXPECT_EQ(p.parse("", kLabels).prediction, -1);
  EXPECT_EQ(AnswerParser({MatchRule::Exact, true, ""}).parse(" NEUTRAL", kLabels).prediction, 1);
}

TEST(Answer, ContainsMatchPicksTheEarliestThenLongest) {
  const AnswerParser p({MatchRule::Contains, false, ""});
  EXPECT_EQ(p.parse("I think neutral.", kLabels).prediction, 1);
  EXPECT_EQ(p.parse("contradiction, not entailment", kLabels).prediction, 2);
  EXPECT_EQ(p.parse("entailment or contradiction", kLabels).prediction, 0);
  EXPECT_EQ(p.parse("nothing here", kLabels).prediction, -1);
  // "ab" and "abc" both start at 0: the longer one is the answer.
  EXPECT_EQ(p.parse("abcd", {"ab", "abc"}).prediction, 1);
  // Empty targets never match (every string contains "").
  EXPECT_EQ(p.parse("abc", {"", "zzz"}).prediction, -1);
}

TEST(Answer, RegexTakesGroupOneOrTheMatch) {
  const AnswerParser group({MatchRule::Exact, false, "answer is (\\w+)"});
  // The regex searches the whole output, not just the first line.
  ParsedAnswer a = group.parse("Let me think.\nThe answer is neutral because", kLabels);
  EXPECT_EQ(a.answer, "neutral");
  EXPECT_EQ(a.prediction, 1);
  a = group.parse("no answer", kLabels);
  EXPECT_EQ(a.answer, "");
  EXPECT_EQ(a.prediction, -1);
  const AnswerParser whole({MatchRule::Exact, false, "(?i)contradiction|entailment|neutral"});
  EXPECT_EQ(whole.parse("it is Entailment!", kLabels).answer, "Entailment");
  EXPECT_EQ(whole.parse("it is Entailment!", kLabels).prediction, -1);  // exact match is case-sensitive
}

TEST(Answer, BadRegexAndMatchNamesAreErrors) {
  EXPECT_NE(error_of([] { AnswerParser({MatchRule::Exact, false, "(unclosed"}); }).find("--answer_regex"), std::string::npos);
  EXPECT_NE(error_of([] { parse_match_rule("fuzzy"); }).find("--match: expected exact or contains"), std::string::npos);
}

}  // namespace
}  // namespace lmforge::tasks
