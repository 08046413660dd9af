// The synthetic-set report: counts, novelty, distinct-n, self-BLEU, lengths, overlap histogram.
#include <gtest/gtest.h>

#include "lmforge/eval/bleu.h"
#include "lmforge/synth/synth_report.h"

namespace lmforge::synth {
namespace {

TEST(DistinctN, UniqueOverTotalWordNgrams) {
  const std::vector<std::string> texts = {"the cat sat.", "The cat ran!"};
  const DistinctN d1 = distinct_ngrams(texts, 1);  // the cat sat the cat ran: 4 unique of 6
  EXPECT_EQ(d1.unique, 4);
  EXPECT_EQ(d1.total, 6);
  EXPECT_DOUBLE_EQ(d1.ratio(), 4.0 / 6.0);
  const DistinctN d2 = distinct_ngrams(texts, 2);  // the cat | cat sat | the cat | cat ran
  EXPECT_EQ(d2.unique, 3);
  EXPECT_EQ(d2.total, 4);
  EXPECT_EQ(distinct_ngrams({"a b"}, 3).total, 0);
  EXPECT_EQ(distinct_ngrams({}, 1).ratio(), 0.0);
}

TEST(SelfBleu, IdenticalRowsScore100AndDistinctOnesLess) {
  const auto same = self_bleu({"farmers pleased with the new figures", "farmers pleased with the new figures",
                               "farmers pleased with the new figures"},
                              500, 1);
  ASSERT_TRUE(same);
  EXPECT_NEAR(same->score, 100.0, 1e-9);
  EXPECT_EQ(same->hypotheses, 3);
  EXPECT_FALSE(same->sampled);

  const std::vector<std::string> texts = {"council approves budget", "farmers pleased with figures",
                                          "storm hits the coast", "council rejects the budget plan"};
  const auto mixed = self_bleu(texts, 500, 1);
  ASSERT_TRUE(mixed);
  double expected = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<std::string> others = texts;
    others.erase(others.begin() + static_cast<std::ptrdiff_t>(i));
    expected += eval::sentence_bleu(texts[i], others).score;
  }
  EXPECT_NEAR(mixed->score, expected / 4, 1e-9) << "mean sentence BLEU against all other rows";
  EXPECT_LT(mixed->score, 50.0);
  EXPECT_FALSE(self_bleu({"one row"}, 500, 1));
}

// self_bleu gives sentence_bleu only the references that can matter; the score must equal the
// one against every other row. A small vocabulary makes shared n-grams, repeats and length ties.
TEST(SelfBleu, PrunedReferencesScoreLikeAllOtherRows) {
  const std::vector<std::string> vocab = {"the", "a", "council", "budget", "rain", "farmers", "new", "plan", "storm", "hits,"};
  std::vector<std::string> texts;
  uint64_t state = 12345;
  auto next = [&](uint64_t n) { return (state = state * 6364136223846793005ull + 1442695040888963407ull) % n; };
  for (int i = 0; i < 60; ++i) {
    std::string row;
    for (uint64_t w = 0, len = 1 + next(9); w < len; ++w) row += (w ? " " : "") + vocab[next(vocab.size())];
    texts.push_back(row);
  }
  texts.push_back(texts[3]);  // a duplicate row
  double expected = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<std::string> others = texts;
    others.erase(others.begin() + static_cast<std::ptrdiff_t>(i));
    expected += eval::sentence_bleu(texts[i], others).score;
  }
  const auto got = self_bleu(texts, 1000, 1);
  ASSERT_TRUE(got);
  EXPECT_NEAR(got->score, expected / static_cast<double>(texts.size()), 1e-9);
}

TEST(SelfBleu, LargeSetsAreSampledWithTheSeed) {
  std::vector<std::string> texts;
  for (int i = 0; i < 40; ++i) texts.push_back("row number " + std::to_string(i) + " of the set");
  const auto a = self_bleu(texts, 10, 7), b = self_bleu(texts, 10, 7);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->sampled);
  EXPECT_EQ(a->hypotheses, 10);
  EXPECT_DOUBLE_EQ(a->score, b->score);
}

std::vector<SynthRow> rows_for_report() {
  std::vector<SynthRow> rows(4);
  rows[0] = {0, "", "Council approves new budget for regional hospitals.", 8, StopReason::Suffix, {CopyReason::ExactCopy}, false};
  rows[1] = {0, "", "farmers welcome rain after the long dry summer in town", 11, StopReason::Length, {CopyReason::NgramCopy}, false};
  rows[2] = {0, "", "council rejects new budget", 4, StopReason::Suffix, {}, true};
  rows[3] = {0, "", "zebra crossing opens", 3, StopReason::Eos, {}, true};
  return rows;
}

const std::vector<std::string> kTraining = {"council approves new budget for regional hospitals",
                                            "farmers welcome rain after the long dry summer in the north"};

TEST(BuildReport, CountsNoveltyLengthsAndOverlap) {
  SynthConfig cfg;
  const SynthReport r = build_report(rows_for_report(), kTraining, cfg);
  EXPECT_EQ(r.generated, 4);
  EXPECT_EQ(r.kept, 2);
  EXPECT_EQ(r.dropped, 2);
  EXPECT_EQ(r.exact_copies, 1);
  EXPECT_EQ(r.ngram_copies, 1);
  ASSERT_TRUE(r.novel_percent);
  EXPECT_DOUBLE_EQ(*r.novel_percent, 75.0);
  EXPECT_DOUBLE_EQ(r.length_mean, 3.5);
  EXPECT_EQ(r.length_min, 3);
  EXPECT_EQ(r.length_max, 4);
  ASSERT_TRUE(r.overlap_histogram);
  // "council rejects new budget" shares "new budget" (2); "zebra crossing opens" shares nothing.
  EXPECT_EQ(*r.overlap_histogram, (std::map<int, int64_t>{{0, 1}, {2, 1}}));
  EXPECT_EQ(r.distinct[0].total, 7);

  const auto j = r.to_json();
  EXPECT_EQ(j["rows"]["dropped"], 2);
  EXPECT_EQ(j["privacy"]["exact_copy"], 1);
  EXPECT_EQ(j["overlap_histogram"]["2"], 1);
  EXPECT_TRUE(j["self_bleu"]["value"].is_number());
  for (const char* key : {"novel_percent", "distinct_1", "distinct_2", "distinct_3", "length_tokens"})
    EXPECT_TRUE(j.contains(key)) << key;
  const std::string table = r.to_table();
  EXPECT_NE(table.find("rows dropped"), std::string::npos);
  EXPECT_NE(table.find("self-BLEU"), std::string::npos);
}

TEST(BuildReport, WithoutReferenceDataNoveltyAndOverlapAreNull) {
  auto rows = rows_for_report();
  for (auto& row : rows) row = {0, "", row.text, row.tokens, row.stop, {}, true};
  const SynthReport r = build_report(rows, {}, SynthConfig{});
  EXPECT_FALSE(r.novel_percent);
  EXPECT_FALSE(r.overlap_histogram);
  EXPECT_TRUE(r.to_json()["novel_percent"].is_null());
  EXPECT_NE(r.to_table().find("n/a"), std::string::npos);
}

}  // namespace
}  // namespace lmforge::synth
