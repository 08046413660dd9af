// Logits processors and warpers on hand-made scores; expected values follow HF's definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "generate/plan.h"
#include "generate/processors.h"
#include "generate/scores.h"

namespace lmforge::gen {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> run(const LogitsProcessor& p, std::vector<int32_t> ids, std::vector<float> scores) {
  p.apply(ids, scores.data(), static_cast<int>(scores.size()));
  return scores;
}

TEST(RepetitionPenalty, DividesPositiveMultipliesNegativeOncePerToken) {
  RepetitionPenaltyProcessor p(2.0f);
  // token 1 occurs twice but is penalised once; token 3 is not in the ids.
  EXPECT_EQ(run(p, {0, 1, 1}, {1.0f, -1.0f, 2.0f, 0.5f}), (std::vector<float>{0.5f, -2.0f, 2.0f, 0.5f}));
}

TEST(RepetitionPenalty, BelowOneRewardsRepeats) {
  RepetitionPenaltyProcessor p(0.5f);
  EXPECT_EQ(run(p, {0, 1}, {1.0f, -1.0f, 3.0f}), (std::vector<float>{2.0f, -0.5f, 3.0f}));
}

TEST(NoRepeatNGram, BansTheTokenThatWouldRepeatAnNgram) {
  EXPECT_EQ(run(NoRepeatNGramProcessor(2), {1, 2, 3, 1}, std::vector<float>(5, 0.0f)),
            (std::vector<float>{0, 0, -kInf, 0, 0}));
  EXPECT_EQ(run(NoRepeatNGramProcessor(3), {1, 2, 3, 1, 2}, std::vector<float>(5, 0.0f)),
            (std::vector<float>{0, 0, 0, -kInf, 0}));
  // Several earlier n-grams share the prefix: all their continuations are banned.
  EXPECT_EQ(run(NoRepeatNGramProcessor(2), {1, 2, 1, 4, 1}, std::vector<float>(5, 0.0f)),
            (std::vector<float>{0, 0, -kInf, 0, -kInf}));
}

TEST(NoRepeatNGram, SizeOneBansEverySeenToken) {
  EXPECT_EQ(run(NoRepeatNGramProcessor(1), {4, 2}, std::vector<float>(5, 1.0f)),
            (std::vector<float>{1, 1, -kInf, 1, -kInf}));
}

TEST(NoRepeatNGram, NothingBeforeAFullNgramExists) {
  EXPECT_EQ(run(NoRepeatNGramProcessor(3), {1}, std::vector<float>(3, 1.0f)), std::vector<float>(3, 1.0f));
  EXPECT_EQ(run(NoRepeatNGramProcessor(3), {1, 1}, std::vector<float>(3, 1.0f)), std::vector<float>(3, 1.0f));
}

TEST(MinLength, BansEveryEosUntilTheLengthIsReached) {
  MinLengthProcessor p(5, {3, 1});
  EXPECT_EQ(run(p, {0, 0, 0, 0}, std::vector<float>(4, 1.0f)), (std::vector<float>{1, -kInf, 1, -kInf}));
  EXPECT_EQ(run(p, {0, 0, 0, 0, 0}, std::vector<float>(4, 1.0f)), std::vector<float>(4, 1.0f));
}

TEST(MinNewTokens, CountsOnlyTokensAfterThePrompt) {
  MinNewTokensProcessor p(/*prompt_length=*/3, /*min_new_tokens=*/2, {2});
  EXPECT_EQ(run(p, {0, 0, 0, 0}, std::vector<float>(3, 1.0f)), (std::vector<float>{1, 1, -kInf}));
  EXPECT_EQ(run(p, {0, 0, 0, 0, 0}, std::vector<float>(3, 1.0f)), std::vector<float>(3, 1.0f));
}

TEST(Temperature, DividesScores) {
  EXPECT_EQ(run(TemperatureWarper(0.5f), {}, {1.0f, -2.0f}), (std::vector<float>{2.0f, -4.0f}));
}

TEST(TopK, KeepsTiesAtTheBoundary) {
  EXPECT_EQ(run(TopKWarper(2, 1), {}, {1, 3, 3, 0}), (std::vector<float>{-kInf, 3, 3, -kInf}));
  EXPECT_EQ(run(TopKWarper(3, 1), {}, {1, 3, 3, 0}), (std::vector<float>{1, 3, 3, -kInf}));
}

TEST(TopK, MinTokensToKeepRaisesK) {
  EXPECT_EQ(run(TopKWarper(1, 2), {}, {1, 4, 3, 0}), (std::vector<float>{-kInf, 4, 3, -kInf}));
}

TEST(TopK, LargerThanVocabKeepsAll) {
  EXPECT_EQ(run(TopKWarper(50, 1), {}, {1, 4, 3}), (std::vector<float>{1, 4, 3}));
}

std::vector<float> logs(std::vector<double> p) {
  std::vector<float> out;
  for (double x : p) out.push_back(static_cast<float>(std::log(x)));
  return out;
}

TEST(TopP, RemovesTheTailWhoseMassIsAtMostOneMinusP) {
  // Ascending probabilities 0.05, 0.15, 0.3, 0.5: cumulative 0.05, 0.2, 0.5, 1.0.
  const auto scores = logs({0.5, 0.3, 0.15, 0.05});
  auto out = run(TopPWarper(0.75, 1), {}, scores);  // threshold 0.25 removes 0.05 and 0.15
  EXPECT_EQ(out, (std::vector<float>{scores[0], scores[1], -kInf, -kInf}));
  out = run(TopPWarper(0.4, 1), {}, scores);  // threshold 0.6 removes all but the best
  EXPECT_EQ(out, (std::vector<float>{scores[0], -kInf, -kInf, -kInf}));
}

TEST(TopP, MinTokensToKeepProtectsTheMostLikely) {
  const auto scores = logs({0.5, 0.3, 0.15, 0.05});
  EXPECT_EQ(run(TopPWarper(0.75, 3), {}, scores), (std::vector<float>{scores[0], scores[1], scores[2], -kInf}));
}

TEST(TopP, IgnoresAlreadyFilteredEntries) {
  const auto base = logs({0.5, 0.3, 0.2});
  std::vector<float> scores{base[0], base[1], base[2], -kInf};
  // The -inf entry has probability 0 and is removed again; 0.2 (cumulative 0.2 <= 0.25) goes too.
  EXPECT_EQ(run(TopPWarper(0.75, 1), {}, scores), (std::vector<float>{base[0], base[1], -kInf, -kInf}));
}

GenerationPlan plan_for(GenerationConfig cfg, int prompt_length = 4) { return resolve_plan(cfg, prompt_length); }

TEST(Chains, ProcessorsInHfOrder) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 5;
  cfg.repetition_penalty = 1.2f;
  cfg.no_repeat_ngram_size = 2;
  cfg.min_new_tokens = 2;
  cfg.eos_token_id = {3};
  EXPECT_EQ(build_logits_processors(plan_for(cfg)).names(),
            (std::vector<std::string>{"repetition_penalty", "no_repeat_ngram", "min_length", "min_new_tokens"}));
}

TEST(Chains, DefaultsAddNoProcessorAndOnlyTopKWarper) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 5;
  EXPECT_TRUE(build_logits_processors(plan_for(cfg)).empty());
  EXPECT_EQ(build_logits_warpers(plan_for(cfg)).names(), (std::vector<std::string>{"top_k"}));  // HF default top_k 50
}

TEST(Chains, MinLengthNeedsAnEos) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 5;
  cfg.min_length = 8;
  EXPECT_TRUE(build_logits_processors(plan_for(cfg)).empty());
}

TEST(Chains, WarpersInHfOrder) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 5;
  cfg.temperature = 0.7f;
  cfg.top_k = 0;
  cfg.top_p = 0.9f;
  EXPECT_EQ(build_logits_warpers(plan_for(cfg)).names(), (std::vector<std::string>{"temperature", "top_p"}));
  cfg.top_k = 5;
  EXPECT_EQ(build_logits_warpers(plan_for(cfg)).names(), (std::vector<std::string>{"temperature", "top_k", "top_p"}));
}

TEST(Chains, BeamSamplingKeepsOneMoreThanTheEosCount) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 5;
  cfg.do_sample = true;
  cfg.num_beams = 3;
  cfg.top_k = 1;
  cfg.eos_token_id = {0, 1};
  std::vector<float> scores{1, 5, 4, 3, 2};
  build_logits_warpers(plan_for(cfg)).apply({}, scores.data(), 5);  // keeps 3 = #eos + 1
  EXPECT_EQ(scores, (std::vector<float>{-kInf, 5, 4, 3, -kInf}));
}

TEST(Scores, SoftmaxAndLogSoftmax) {
  std::vector<float> x{0.0f, std::log(3.0f), -kInf};
  softmax_inplace(x.data(), 3);
  EXPECT_NEAR(x[0], 0.25f, 1e-7);
  EXPECT_NEAR(x[1], 0.75f, 1e-7);
  EXPECT_EQ(x[2], 0.0f);
  std::vector<float> y{0.0f, std::log(3.0f)};
  log_softmax_inplace(y.data(), 2);
  EXPECT_NEAR(y[0], std::log(0.25f), 1e-6);
  EXPECT_NEAR(y[1], std::log(0.75f), 1e-6);
}

TEST(Scores, ArgmaxTakesTheFirstOfTies) {
  std::vector<float> x{1, 3, 3, 2};
  EXPECT_EQ(argmax(x.data(), 4), 1);
}

TEST(Scores, TopKIndicesBestFirst) {
  std::vector<float> x{1, 3, 0, 3, 2};
  EXPECT_EQ(top_k_indices(x.data(), 5, 3), (std::vector<int>{1, 3, 4}));
}

TEST(Plan, DecimalValueRecoversTheWrittenNumber) {
  EXPECT_EQ(decimal_value(0.7f), 0.7);
  EXPECT_EQ(decimal_value(0.9f), 0.9);
  EXPECT_EQ(decimal_value(2.0f), 2.0);
}

TEST(Plan, TopPThresholdIsHfsFloatOfOneMinusP) {
  // HF compares the float32 cumsum with float32(1 - 0.9) computed in double; 0.9f would give 3 ulps more.
  GenerationConfig cfg;
  cfg.max_new_tokens = 1;
  cfg.top_p = 0.9f;
  EXPECT_EQ(static_cast<float>(1.0 - resolve_plan(cfg, 3).top_p), 0.1f);
}

}  // namespace
}  // namespace lmforge::gen

namespace lmforge::gen {
namespace {

TEST(PresenceFrequencyPenalty, CountsOnlyTheGeneratedTokens) {
  // Prompt = first 2 ids: token 0 appears only there, token 1 once after it, token 2 twice.
  PresenceFrequencyPenaltyProcessor p(2, 0.5f, 0.25f);
  EXPECT_EQ(run(p, {0, 1, 1, 2, 2}, {1.0f, 1.0f, 1.0f, 1.0f}),
            (std::vector<float>{1.0f, 1.0f - 0.25f - 0.5f, 1.0f - 2 * 0.25f - 0.5f, 1.0f}));
}

TEST(LogitBias, AddsTheBiasAndIgnoresIdsOutsideTheVocabulary) {
  LogitBiasProcessor p({{1, 2.0f}, {3, -100.0f}, {9, 5.0f}});
  EXPECT_EQ(run(p, {0}, {0.0f, 0.0f, 0.0f, 1.0f}), (std::vector<float>{0.0f, 2.0f, 0.0f, -99.0f}));
}

TEST(ProcessorChainBuild, AddsOpenAiProcessorsAfterHfOnes) {
  GenerationConfig c;
  c.max_new_tokens = 4;
  c.repetition_penalty = 1.5f;
  c.presence_penalty = 0.1f;
  c.logit_bias = {{1, 1.0f}};
  const GenerationPlan plan = resolve_plan(c, 3);
  EXPECT_EQ(build_logits_processors(plan).names(),
            (std::vector<std::string>{"repetition_penalty", "presence_frequency_penalty", "logit_bias"}));
}

}  // namespace
}  // namespace lmforge::gen
