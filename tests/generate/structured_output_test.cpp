// Structured output inside generate(): with a model that wants arbitrary tokens (hashed logits),
// every strategy must still produce text in the constraint's language. std::regex is the oracle:
// it shares no code with the automaton.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "common/error_of.h"
#include "generate/fake_lm.h"
#include "generate/processors.h"
#include "lmforge/generate/generate.h"
#include "lmforge/structured/constraint.h"

namespace lmforge {
namespace {

using Ids = std::vector<int32_t>;

// ids 0..7 spell bytes; 8 is eos (no bytes, like <|endoftext|>); 9 is a second special token.
const std::vector<std::string> kTokens = {"a", "b", "ab", "ba", "c", "1", "12", "x", "", ""};
constexpr int32_t kEos = 8;
constexpr int kVocab = 10;

std::shared_ptr<const structured::TokenConstraint> regex(const std::string& pattern,
                                                         std::vector<std::string> tokens = kTokens) {
  return structured::compile_constraint({structured::ConstraintKind::Regex, pattern},
                                        std::make_shared<const structured::TokenVocabulary>(std::move(tokens)));
}

GenerationConfig config(const std::string& pattern) {
  GenerationConfig c;
  c.eos_token_id = {kEos};
  c.pad_token_id = kEos;
  c.max_new_tokens = 12;
  c.constraint = regex(pattern);
  return c;
}

// The text of a generated row, and whether it ended with eos.
std::pair<std::string, bool> text_of(const Ids& row, int prompt_length) {
  std::string s;
  for (size_t i = prompt_length; i < row.size(); ++i) {
    if (row[i] == kEos) return {s, true};
    s += kTokens.at(row[i]);
  }
  return {s, false};
}

void expect_all_match(const GenerationOutput& out, const std::string& pattern) {
  ASSERT_FALSE(out.sequences.empty());
  for (const Ids& row : out.sequences) {
    const auto [text, ended] = text_of(row, out.prompt_length);
    EXPECT_TRUE(ended) << "no eos after '" << text << "'";
    EXPECT_TRUE(std::regex_match(text, std::regex(pattern))) << "'" << text << "' does not match " << pattern;
  }
}

TEST(StructuredOutput, GreedySamplingAndBeamsStayInTheLanguage) {
  test::FakeLM lm(kVocab, 64, test::hashed_logits(kVocab));
  // Finite languages whose strings fit in max_new_tokens: every row must end with eos, complete.
  // (An unbounded one can be cut by max_new_tokens like any generation.)
  for (const std::string pattern : {"(ab){1,3}c", "a{0,3}b{2,3}", "(1|12)x(ba)?"}) {
    GenerationConfig greedy = config(pattern);
    expect_all_match(generate(lm, {{7, 7}, {1}}, greedy), pattern);

    GenerationConfig sample = config(pattern);
    sample.do_sample = true;
    sample.top_k = 3;  // the warper runs after the mask: it picks among allowed tokens
    sample.num_return_sequences = 4;
    sample.seed = 5;
    expect_all_match(generate(lm, {{3}}, sample), pattern);

    GenerationConfig beams = config(pattern);
    beams.num_beams = 4;
    beams.num_return_sequences = 3;
    expect_all_match(generate(lm, {{2, 4}, {0}}, beams), pattern);

    // Beam sampling: a constraint often leaves fewer possible tokens than the draw needs.
    GenerationConfig beam_sample = beams;
    beam_sample.do_sample = true;
    beam_sample.seed = 11;
    expect_all_match(generate(lm, {{2, 4}}, beam_sample), pattern);
  }
}

TEST(StructuredOutput, DeadEndEndsTheRowWithEos) {
  // "abc" needs a "c" after "ab"; the vocabulary here has none, so after "ab" nothing may follow.
  std::vector<std::string> no_c = kTokens;
  no_c[4] = "";
  gen::StructuredOutputProcessor p(regex("abc", no_c), 1, {kEos});
  std::vector<float> scores(kVocab, 1.0f);
  p.apply({5, 2}, scores.data(), kVocab);  // prompt {5}, generated "ab"
  for (int t = 0; t < kVocab; ++t)
    EXPECT_EQ(std::isfinite(scores[t]), t == kEos) << t;
  EXPECT_EQ(scores[kEos], 1.0f);  // its own score: a beam's log-probability stays honest
}

TEST(StructuredOutputProcessor, EosOnlyWhenComplete) {
  gen::StructuredOutputProcessor p(regex("a+"), 2, {kEos});
  std::vector<float> scores(kVocab, 0.5f);
  p.apply({9, 9}, scores.data(), kVocab);  // nothing generated yet: "" is not in a+
  EXPECT_TRUE(std::isfinite(scores[0]));
  EXPECT_FALSE(std::isfinite(scores[kEos]));
  EXPECT_FALSE(std::isfinite(scores[1]));
  EXPECT_FALSE(std::isfinite(scores[2]));  // "ab"
  scores.assign(kVocab, 0.5f);
  p.apply({9, 9, 0}, scores.data(), kVocab);  // "a": complete, and may go on
  EXPECT_TRUE(std::isfinite(scores[kEos]));
  EXPECT_TRUE(std::isfinite(scores[0]));
  EXPECT_FALSE(std::isfinite(scores[9]));  // another special token never
}

TEST(StructuredOutput, NeedsAnEosToken) {
  GenerationConfig c = config("a");
  c.eos_token_id.clear();
  EXPECT_NE(test::error_of([&] { c.validate(); }).find("needs an eos token"), std::string::npos);
}

}  // namespace
}  // namespace lmforge
