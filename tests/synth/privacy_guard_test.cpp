// The privacy guard: normalisation, exact and n-gram copies, the hash set, longest shared runs.
#include <gtest/gtest.h>

#include "lmforge/error.h"
#include "lmforge/synth/privacy_guard.h"

namespace lmforge::synth {
namespace {

const std::vector<std::string> kTraining = {
    "council approves new budget for regional hospitals",
    "farmers welcome rain after the long dry summer in the north",
    "Police investigate break-in at local school",
};

PrivacyGuard guard_with(const std::vector<std::string>& rows, int n = 8) {
  PrivacyGuard g(n);
  g.add_references(rows);
  return g;
}

TEST(Normalize, LowercasesAndTurnsPunctuationIntoSingleSpaces) {
  EXPECT_EQ(normalize_text("  Police  investigate: BREAK-IN!! "), "police investigate break in");
  EXPECT_EQ(normalize_text("Don't\tstop.\n"), "don t stop");
  EXPECT_EQ(normalize_text("...!?"), "");
  EXPECT_EQ(normalize_text("Café  CRÈME"), "café crÈme");  // non-ASCII bytes are kept as they are
}

TEST(Normalize, SplitWords) {
  const std::string n = normalize_text("a, b  c");
  const auto w = split_words(n);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0], "a");
  EXPECT_EQ(w[2], "c");
  EXPECT_TRUE(split_words("").empty());
}

TEST(PrivacyGuard, ExactCopyIsCaught) {
  const auto g = guard_with(kTraining);
  EXPECT_EQ(g.check("council approves new budget for regional hospitals").reason, CopyReason::ExactCopy);
}

TEST(PrivacyGuard, CopyWithOtherCaseSpacingAndPunctuationIsCaught) {
  const auto g = guard_with(kTraining);
  EXPECT_EQ(g.check("Police investigate break in at local school.").reason, CopyReason::ExactCopy);
  EXPECT_EQ(g.check("  COUNCIL approves new-budget, for regional hospitals!!").reason, CopyReason::ExactCopy);
}

TEST(PrivacyGuard, EightWordRunInsideALongerRowIsCaught) {
  const auto g = guard_with(kTraining);
  // "rain after the long dry summer in the" is 7 words; with "farmers welcome" around it, 8+.
  const auto v = g.check("Breaking: farmers welcome rain after the long dry summer in town");
  EXPECT_EQ(v.reason, CopyReason::NgramCopy);
  EXPECT_EQ(std::string(to_string(v.reason)), "ngram_copy");
}

TEST(PrivacyGuard, SevenWordRunPasses) {
  const auto g = guard_with(kTraining);
  // Shares exactly "welcome rain after the long dry summer" (7 words) with the second row.
  const auto v = g.check("tourists welcome rain after the long dry summer ends");
  EXPECT_EQ(v.reason, CopyReason::None);
  EXPECT_FALSE(v.is_copy());
}

TEST(PrivacyGuard, ShorterRowsAreOnlyCaughtWhenExact) {
  const auto g = guard_with(kTraining);
  EXPECT_FALSE(g.check("council approves new budget").is_copy());  // a prefix, not a copy
  EXPECT_FALSE(g.check("").is_copy());
  EXPECT_FALSE(g.check("!!!").is_copy());
}

TEST(PrivacyGuard, MaxCopyNgramIsConfigurable) {
  const auto g = guard_with(kTraining, 3);
  EXPECT_EQ(g.check("new budget for schools").reason, CopyReason::NgramCopy);  // "new budget for"
  EXPECT_FALSE(g.check("new budget in schools").is_copy());
  EXPECT_THROW(PrivacyGuard(0), Error);
}

TEST(PrivacyGuard, CountsRows) {
  auto g = guard_with(kTraining);
  g.add_reference("Council approves new budget for regional hospitals.");  // same after normalising
  EXPECT_EQ(g.reference_rows(), 4u);
  EXPECT_EQ(g.distinct_rows(), 3u);
  EXPECT_EQ(g.max_copy_ngram(), 8);
}

TEST(HashSet64, InsertContainsAndGrow) {
  HashSet64 s;
  for (uint64_t i = 0; i < 10000; ++i) EXPECT_TRUE(s.insert(i * 0x9e3779b97f4a7c15ull));
  EXPECT_FALSE(s.insert(0));  // 0 is a valid value (stored under a stand-in)
  EXPECT_EQ(s.size(), 10000u);
  for (uint64_t i = 0; i < 10000; ++i) EXPECT_TRUE(s.contains(i * 0x9e3779b97f4a7c15ull));
  EXPECT_FALSE(s.contains(12345));
}

TEST(LongestSharedNgrams, MeasuresTheLongestRunWithAnyReference) {
  const std::vector<std::string> candidates = {
      "farmers welcome rain after the long dry summer in town",  // 9 words with row 2
      "Police investigate burglary",                             // 2 words ("police investigate")
      "zebra quokka",                                            // nothing
      "COUNCIL approves new budget for regional hospitals",      // the whole row (7)
      "",
  };
  const auto longest = longest_shared_ngrams(candidates, kTraining);
  EXPECT_EQ(longest, (std::vector<int>{9, 2, 0, 7, 0}));
}

}  // namespace
}  // namespace lmforge::synth
