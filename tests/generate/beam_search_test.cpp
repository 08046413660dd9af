// Beam search: HF's hypothesis bookkeeping by hand, and whole searches on a fake LM checked against
// an exhaustive enumeration (with as many beams as sequences, beam search must find the true best).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "generate/beam_search.h"
#include "generate/fake_lm.h"
#include "lmforge/generate/generate.h"

namespace lmforge {
namespace {

using gen::BeamCandidate;
using gen::BeamHypotheses;
using gen::BeamSearchScorer;
using test::FakeLM;
using Ids = std::vector<int32_t>;

std::vector<double> scores_of(const BeamHypotheses& h) {
  std::vector<double> s;
  for (const auto& b : h.beams()) s.push_back(b.score);
  std::sort(s.begin(), s.end());
  return s;
}

TEST(BeamHypotheses, KeepsTheBestNumBeamsScoredOnGeneratedLength) {
  BeamHypotheses h(2, 1.0, EarlyStopping::False, 10);
  h.add({1}, -4.0, 2);  // -2
  h.add({2}, -3.0, 1);  // -3
  EXPECT_EQ(h.worst_score(), -3.0);
  h.add({3}, -1.0, 1);  // -1 evicts -3
  EXPECT_EQ(scores_of(h), (std::vector<double>{-2.0, -1.0}));
  EXPECT_EQ(h.worst_score(), -2.0);
  h.add({4}, -10.0, 2);  // -5: not better than the worst, dropped
  EXPECT_EQ(h.size(), 2);
  EXPECT_EQ(scores_of(h), (std::vector<double>{-2.0, -1.0}));
}

TEST(BeamHypotheses, LengthPenaltyIsAnExponentOnTheGeneratedLength) {
  BeamHypotheses h(1, 2.0, EarlyStopping::False, 10);
  h.add({1, 2, 3, 4, 5}, -4.0, 4);
  EXPECT_DOUBLE_EQ(h.beams()[0].score, -4.0 / 16.0);
}

TEST(BeamHypotheses, EarlyStoppingTrueStopsOnceFull) {
  BeamHypotheses h(2, 1.0, EarlyStopping::True, 14);
  h.add({1}, -1.0, 1);
  EXPECT_FALSE(h.is_done(-0.1, 12, 10));
  h.add({2}, -9.0, 1);
  EXPECT_TRUE(h.is_done(-0.1, 12, 10));
}

TEST(BeamHypotheses, EarlyStoppingFalseUsesTheCurrentLength) {
  BeamHypotheses h(2, 1.0, EarlyStopping::False, 14);
  h.add({1}, -4.0, 2);
  h.add({2}, -1.0, 1);  // worst -2
  EXPECT_FALSE(h.is_done(-3.0, 12, 10));  // best running could still reach -1.5
  EXPECT_TRUE(h.is_done(-5.0, 12, 10));   // -2.5 <= worst
}

TEST(BeamHypotheses, EarlyStoppingNeverUsesMaxLengthWithPositivePenalty) {
  BeamHypotheses h(2, 1.0, EarlyStopping::Never, 14);
  h.add({1}, -4.0, 2);
  h.add({2}, -1.0, 1);  // worst -2
  // At max_length a running beam with sum -5 would score -5/4 = -1.25 > -2: not done (False would be).
  EXPECT_FALSE(h.is_done(-5.0, 12, 10));
  EXPECT_TRUE(h.is_done(-9.0, 12, 10));
}

TEST(BeamHypotheses, EarlyStoppingNeverWithNegativePenaltyUsesTheCurrentLength) {
  BeamHypotheses h(1, -1.0, EarlyStopping::Never, 14);
  h.add({1}, -2.0, 2);  // -2 * 2 = -4
  EXPECT_FALSE(h.is_done(-1.5, 12, 10));  // -1.5 * 2 = -3 > -4
  EXPECT_TRUE(h.is_done(-2.5, 12, 10));   // -5
}

TEST(BeamSearchScorer, EosOutsideTheTopNumBeamsIsIgnored) {
  BeamSearchScorer s(1, 2, 1.0, EarlyStopping::True, 2, 10);
  const std::vector<Ids> ids{{1, 2}, {1, 3}};
  const std::vector<std::vector<BeamCandidate>> cands{{{-1.0f, 9, 1}, {-2.0f, 5, 0}, {-3.0f, 9, 0}, {-4.0f, 6, 1}}};
  const auto step = s.process(ids, cands, 0, {9}, 2);
  EXPECT_EQ(step.tokens, (Ids{5, 6}));
  EXPECT_EQ(step.source, (std::vector<int>{0, 1}));
  EXPECT_EQ(step.scores, (std::vector<float>{-2.0f, -4.0f}));
  ASSERT_EQ(s.hypotheses(0).size(), 1);  // only the rank-0 eos
  EXPECT_EQ(s.hypotheses(0).beams()[0].tokens, (Ids{1, 3}));  // stored without the eos
  EXPECT_DOUBLE_EQ(s.hypotheses(0).beams()[0].score, -1.0);   // generated length 1 (the eos)
  EXPECT_FALSE(s.is_done());
}

TEST(BeamSearchScorer, FinishedPromptsGetPadFromRowZero) {
  BeamSearchScorer s(2, 2, 1.0, EarlyStopping::True, 1, 10);
  std::vector<Ids> ids{{1}, {1}, {2}, {2}};
  // Prompt 0: two eos in its top 2 -> done. Prompt 1: ordinary tokens.
  std::vector<std::vector<BeamCandidate>> cands{{{-1.0f, 9, 0}, {-2.0f, 9, 1}, {-3.0f, 4, 0}, {-4.0f, 5, 1}},
                                                {{-1.0f, 3, 0}, {-2.0f, 4, 1}, {-3.0f, 5, 0}, {-4.0f, 6, 1}}};
  auto step = s.process(ids, cands, 7, {9}, 1);
  EXPECT_EQ(step.tokens, (Ids{4, 5, 3, 4}));
  EXPECT_EQ(step.source, (std::vector<int>{0, 1, 2, 3}));
  ids = {{1, 4}, {1, 5}, {2, 3}, {2, 4}};
  step = s.process(ids, cands, 7, {9}, 1);
  EXPECT_EQ(step.tokens, (Ids{7, 7, 3, 4}));
  EXPECT_EQ(step.source, (std::vector<int>{0, 0, 2, 3}));
  EXPECT_EQ(step.scores, (std::vector<float>{0.0f, 0.0f, -1.0f, -2.0f}));
  EXPECT_FALSE(s.is_done());
}

TEST(BeamSearchScorer, FinalizePadsAndAppendsEosWhereItFits) {
  BeamSearchScorer s(1, 2, 1.0, EarlyStopping::False, 2, 6);
  // One hypothesis finished after a single new token: [1, 3] + eos, score -0.5.
  s.process({{1, 2}, {1, 3}}, {{{-0.5f, 9, 1}, {-2.0f, 5, 0}, {-3.0f, 6, 1}, {-4.0f, 7, 0}}}, 0, {9}, 2);
  // The running beams end at length 4 with sums -3 and -1 (scores -1.5 and -0.5).
  const auto res = s.finalize({{1, 2, 5, 7}, {1, 3, 6, 8}}, {-3.0f, -1.0f}, 0, {9}, 2);
  // Both best have score -0.5; HF pops the one added last first (the running beam).
  ASSERT_EQ(res.sequences.size(), 2u);
  EXPECT_EQ(res.sequences[0], (Ids{1, 3, 6, 8, 9}));  // width min(4 + 1, 6): eos fits after it
  EXPECT_EQ(res.sequences[1], (Ids{1, 3, 9, 0, 0}));
  EXPECT_EQ(res.scores, (std::vector<float>{-0.5f, -0.5f}));
}

// ---------------------------------------------------------------------------------------------
// Whole searches against exhaustive enumeration.

struct Complete {
  Ids stored;  // what HF keeps: the row without a final eos
  bool ended_by_eos;
  double score;
};

std::vector<double> log_softmax(const std::vector<float>& l) {
  const double m = *std::max_element(l.begin(), l.end());
  double z = 0;
  for (float x : l) z += std::exp(x - m);
  std::vector<double> out;
  for (float x : l) out.push_back(x - m - std::log(z));
  return out;
}

// Every way the prompt can continue for up to `steps` tokens, ending early at the eos (if any).
std::vector<Complete> enumerate(const FakeLM& lm, const Ids& prompt, int steps, int eos, double length_penalty) {
  std::vector<Complete> out;
  std::function<void(Ids, double, int)> walk = [&](Ids seq, double sum, int depth) {
    if (depth == steps) {
      out.push_back({seq, false, sum / std::pow(depth, length_penalty)});
      return;
    }
    const auto lp = log_softmax(lm.logits_of(seq));
    for (int v = 0; v < lm.vocab_size(); ++v) {
      if (v == eos) {
        out.push_back({seq, true, (sum + lp[v]) / std::pow(depth + 1, length_penalty)});
      } else {
        Ids next = seq;
        next.push_back(v);
        walk(next, sum + lp[v], depth + 1);
      }
    }
  };
  walk(prompt, 0.0, 0);
  std::sort(out.begin(), out.end(), [](const Complete& a, const Complete& b) { return a.score > b.score; });
  return out;
}

void expect_exhaustive_match(int eos, double length_penalty) {
  const int vocab = 5, steps = 3, beams = 125, returned = 6;
  FakeLM lm(vocab, 64, test::hashed_logits(vocab));
  const Ids prompt{1, 2};
  GenerationConfig c;
  c.num_beams = beams;
  c.num_return_sequences = returned;
  c.max_new_tokens = steps;
  c.length_penalty = static_cast<float>(length_penalty);
  if (eos >= 0) {
    c.eos_token_id = {eos};
    c.pad_token_id = 3;
  }
  const auto out = generate(lm, {prompt}, c);
  const auto all = enumerate(lm, prompt, steps, eos, length_penalty);
  ASSERT_EQ(out.sequences.size(), static_cast<size_t>(returned));
  ASSERT_EQ(out.sequences_scores.size(), static_cast<size_t>(returned));

  size_t longest = 0;
  for (int i = 0; i < returned; ++i) longest = std::max(longest, all[i].stored.size());
  const size_t width = eos >= 0 ? std::min<size_t>(longest + 1, prompt.size() + steps) : longest;
  for (int i = 0; i < returned; ++i) {
    Ids expected = all[i].stored;
    if (expected.size() < width) expected.push_back(eos);
    expected.resize(width, 3);
    EXPECT_EQ(out.sequences[i], expected) << "rank " << i;
    EXPECT_NEAR(out.sequences_scores[i], all[i].score, 1e-5) << "rank " << i;
  }
  EXPECT_FALSE(lm.bad_position);
}

TEST(BeamSearch, ExhaustiveWithoutEos) { expect_exhaustive_match(-1, 1.0); }
TEST(BeamSearch, ExhaustiveWithoutEosLengthPenalty) { expect_exhaustive_match(-1, 2.0); }
TEST(BeamSearch, ExhaustiveWithEos) { expect_exhaustive_match(4, 1.0); }
TEST(BeamSearch, ExhaustiveWithEosFavouringLong) { expect_exhaustive_match(4, 2.0); }
TEST(BeamSearch, ExhaustiveWithEosFavouringShort) { expect_exhaustive_match(4, -1.0); }
TEST(BeamSearch, ExhaustiveWithEosZeroId) { expect_exhaustive_match(0, 0.5); }

TEST(BeamSearch, BatchRowsMatchSinglePrompts) {
  FakeLM lm(11, 64, test::hashed_logits(11));
  GenerationConfig c;
  c.num_beams = 3;
  c.num_return_sequences = 2;
  c.max_new_tokens = 5;
  c.pad_token_id = 0;
  const std::vector<Ids> prompts{{1, 2, 3}, {4}};
  const auto batch = generate(lm, prompts, c);
  ASSERT_EQ(batch.sequences.size(), 4u);
  for (size_t p = 0; p < prompts.size(); ++p) {
    const auto alone = generate(lm, {prompts[p]}, c);
    for (int k = 0; k < 2; ++k) {
      Ids expected(3 - prompts[p].size(), 0);
      expected.insert(expected.end(), alone.sequences[k].begin(), alone.sequences[k].end());
      EXPECT_EQ(batch.sequences[p * 2 + k], expected);
      EXPECT_FLOAT_EQ(batch.sequences_scores[p * 2 + k], alone.sequences_scores[k]);
    }
  }
  EXPECT_FALSE(lm.bad_position);
}

TEST(BeamSearch, OnStepLogitsCoversEveryBeamRow) {
  FakeLM lm(11, 64, test::hashed_logits(11));
  GenerationConfig c;
  c.num_beams = 3;
  c.max_new_tokens = 4;
  int calls = 0;
  GenerationCallbacks cb;
  cb.on_step_logits = [&](int, int row, const float*, int vocab) {
    EXPECT_LT(row, 3);
    EXPECT_EQ(vocab, 11);
    ++calls;
  };
  generate(lm, {{1, 2}}, c, cb);
  EXPECT_EQ(calls, 12);
}

TEST(BeamSearch, SamplingIsSeededAndReturnsDistinctBeams) {
  FakeLM lm(11, 64, test::hashed_logits(11));
  GenerationConfig c;
  c.num_beams = 3;
  c.num_return_sequences = 3;
  c.max_new_tokens = 6;
  c.do_sample = true;
  c.seed = 5;
  const auto a = generate(lm, {{1, 2}}, c);
  const auto b = generate(lm, {{1, 2}}, c);
  EXPECT_EQ(a.sequences, b.sequences);
  ASSERT_EQ(a.sequences.size(), 3u);
  EXPECT_NE(a.sequences[0], a.sequences[1]);
  EXPECT_GE(a.sequences_scores[0], a.sequences_scores[1]);
  EXPECT_GE(a.sequences_scores[1], a.sequences_scores[2]);
}

}  // namespace
}  // namespace lmforge
