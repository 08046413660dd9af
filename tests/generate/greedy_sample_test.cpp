// generate() greedy and sampling on a fake LM whose logits are a known function of the sequence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "generate/fake_lm.h"
#include "lmforge/error.h"
#include "lmforge/generate/generate.h"

namespace lmforge::test {
namespace {

using Ids = std::vector<int32_t>;

// Independent greedy reference: argmax of the fake's logits, recomputed from scratch each step.
Ids reference_greedy(const FakeLM& lm, Ids seq, int new_tokens) {
  for (int i = 0; i < new_tokens; ++i) {
    const auto l = lm.logits_of(seq);
    seq.push_back(static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin()));
  }
  return seq;
}

GenerationConfig greedy(int max_new_tokens) {
  GenerationConfig c;
  c.max_new_tokens = max_new_tokens;
  return c;
}

// Expects an lmforge::Error whose message contains `needle`.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Greedy, FollowsTheArgmaxOfEveryStep) {
  FakeLM lm(11, 64, hashed_logits(11));
  const Ids prompt{1, 2, 3};
  const auto out = generate(lm, {prompt}, greedy(8));
  ASSERT_EQ(out.sequences.size(), 1u);
  EXPECT_EQ(out.sequences[0], reference_greedy(lm, prompt, 8));
  EXPECT_EQ(out.prompt_length, 3);
  EXPECT_TRUE(out.sequences_scores.empty());
  EXPECT_FALSE(lm.bad_position);
  EXPECT_EQ(lm.last_capacity, 11);  // prompt + max_new_tokens
  EXPECT_EQ(lm.calls.size(), 8u);   // prefill + 7 single-token steps: the last token is never fed
}

TEST(Greedy, DefaultMaxLengthIsTwentyIncludingThePrompt) {
  FakeLM lm(11, 64, hashed_logits(11));
  const auto out = generate(lm, {{1, 2, 3, 4, 5}}, GenerationConfig{});
  EXPECT_EQ(out.sequences[0].size(), 20u);
}

TEST(Greedy, MaxNewTokensWinsOverMaxLength) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c;
  c.max_length = 30;
  c.max_new_tokens = 4;
  EXPECT_EQ(generate(lm, {{1, 2, 3}}, c).sequences[0].size(), 7u);
  c.max_new_tokens.reset();
  c.max_length = 9;
  EXPECT_EQ(generate(lm, {{1, 2, 3}}, c).sequences[0].size(), 9u);
}

TEST(Greedy, OnStepLogitsGetsTheRawLogits) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(3);
  c.repetition_penalty = 3.0f;  // processors must not leak into the raw logits
  std::vector<std::vector<float>> seen;
  GenerationCallbacks cb;
  cb.on_step_logits = [&](int step, int row, const float* l, int vocab) {
    EXPECT_EQ(row, 0);
    EXPECT_EQ(step, static_cast<int>(seen.size()));
    seen.emplace_back(l, l + vocab);
  };
  const auto out = generate(lm, {{4, 5}}, c, cb);
  ASSERT_EQ(seen.size(), 3u);
  for (int s = 0; s < 3; ++s) EXPECT_EQ(seen[s], lm.logits_of(Ids(out.sequences[0].begin(), out.sequences[0].begin() + 2 + s)));
}

TEST(Padding, LeftPadsMasksAndNumbersPositionsLikeHf) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(4);
  c.pad_token_id = 0;
  const std::vector<Ids> prompts{{1, 2, 3, 4}, {6, 7}, {8, 9, 10}};
  const auto out = generate(lm, prompts, c);
  ASSERT_EQ(out.sequences.size(), 3u);
  EXPECT_EQ(out.prompt_length, 4);
  // Each row continues exactly as its prompt alone would (padding is invisible to the model).
  for (size_t i = 0; i < prompts.size(); ++i) {
    Ids expected(4 - prompts[i].size(), 0);
    const Ids alone = reference_greedy(lm, prompts[i], 4);
    expected.insert(expected.end(), alone.begin(), alone.end());
    EXPECT_EQ(out.sequences[i], expected) << "row " << i;
  }
  EXPECT_FALSE(lm.bad_position);
  // The prompt step: mask 0 on padding, positions cumsum(mask) - 1 with padding set to 1.
  const ForwardCall& first = lm.calls.front();
  EXPECT_EQ(first.mask, (std::vector<uint8_t>{1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1}));
  EXPECT_EQ(first.positions, (std::vector<int32_t>{0, 1, 2, 3, 1, 1, 0, 1, 1, 0, 1, 2}));
  // Decoding: every new token is attended to and continues its row's positions.
  EXPECT_EQ(lm.calls[1].positions, (std::vector<int32_t>{4, 2, 3}));
  EXPECT_EQ(lm.calls[1].mask, (std::vector<uint8_t>{1, 1, 1}));
  EXPECT_EQ(lm.calls[2].positions, (std::vector<int32_t>{5, 3, 4}));
}

TEST(Padding, ProcessorsSeeThePaddedRow) {
  // HF's repetition penalty runs over input_ids, padding included: with pad = the greedy favourite,
  // a padded row is pushed off it while the unpadded row is not.
  FakeLM lm(6, 64, scripted_logits(6, [](const Ids&) { return 5; }));
  GenerationConfig c = greedy(1);
  c.pad_token_id = 5;
  c.repetition_penalty = 100.0f;
  const auto out = generate(lm, {{1, 2}, {3}}, c);
  EXPECT_EQ(out.sequences[0], (Ids{1, 2, 5}));
  EXPECT_EQ(out.sequences[1], (Ids{5, 3, 0}));
}

// Token t is followed by t + 1; after token 6 comes the eos 9.
int32_t count_up(const Ids& seq) { return seq.back() == 6 ? 9 : (seq.back() + 1) % 9; }

TEST(Eos, FinishedRowsArePaddedUntilAllFinish) {
  FakeLM lm(11, 64, scripted_logits(11, count_up));
  GenerationConfig c = greedy(10);
  c.eos_token_id = {9};
  c.pad_token_id = 10;
  std::vector<Ids> streamed;
  GenerationCallbacks cb;
  cb.on_tokens = [&](const Ids& t) { streamed.push_back(t); };
  const auto out = generate(lm, {{1}, {4}}, c, cb);
  EXPECT_EQ(out.sequences[0], (Ids{1, 2, 3, 4, 5, 6, 9}));
  EXPECT_EQ(out.sequences[1], (Ids{4, 5, 6, 9, 10, 10, 10}));
  ASSERT_EQ(streamed.size(), 6u);
  EXPECT_EQ(streamed[3], (Ids{5, 10}));
}

TEST(Eos, PadDefaultsToTheFirstEos) {
  FakeLM lm(11, 64, scripted_logits(11, count_up));
  GenerationConfig c = greedy(10);
  c.eos_token_id = {9, 3};
  const auto out = generate(lm, {{1}, {4}}, c);
  EXPECT_EQ(out.sequences[0], (Ids{1, 2, 3, 9}));  // 3 is an eos too; then padded with 9
  EXPECT_EQ(out.sequences[1], (Ids{4, 5, 6, 9}));
}

TEST(Eos, MinNewTokensAndMinLengthHoldTheEosBack) {
  // The eos 9 is always the favourite; token 0 is second.
  FakeLM lm(11, 64, scripted_logits(11, [](const Ids&) { return 9; }));
  GenerationConfig c = greedy(10);
  c.eos_token_id = {9};
  EXPECT_EQ(generate(lm, {{1, 2}}, c).sequences[0], (Ids{1, 2, 9}));
  c.min_new_tokens = 3;
  EXPECT_EQ(generate(lm, {{1, 2}}, c).sequences[0], (Ids{1, 2, 0, 0, 0, 9}));
  c.min_new_tokens.reset();
  c.min_length = 4;  // prompt included
  EXPECT_EQ(generate(lm, {{1, 2}}, c).sequences[0], (Ids{1, 2, 0, 0, 9}));
}

std::string letters(const Ids& ids) {
  std::string s;
  for (int32_t t : ids) s += static_cast<char>('a' + t);
  return s;
}

TEST(StopStrings, StopWhenTheLastTokenCompletesTheString) {
  FakeLM lm(11, 64, scripted_logits(11, [](const Ids& s) { return (s.back() + 1) % 11; }));
  GenerationConfig c = greedy(10);
  c.stop_strings = {"cde"};
  GenerationCallbacks cb;
  cb.decode = letters;
  EXPECT_EQ(generate(lm, {{0}}, c, cb).sequences[0], (Ids{0, 1, 2, 3, 4}));
  // The match may start inside the prompt.
  c.stop_strings = {"zz", "bc"};
  EXPECT_EQ(generate(lm, {{0, 1}}, c, cb).sequences[0], (Ids{0, 1, 2}));
  // A string entirely inside the prompt does not stop generation.
  c.stop_strings = {"ab"};
  EXPECT_EQ(generate(lm, {{0, 1}}, c, cb).sequences[0].size(), 12u);
}

TEST(StopStrings, LastTokenMayOverhangTheString) {
  FakeLM lm(11, 64, scripted_logits(11, [](const Ids& s) { return (s.back() + 1) % 11; }));
  GenerationConfig c = greedy(10);
  c.stop_strings = {"Bc"};
  GenerationCallbacks cb;
  cb.decode = [](const Ids& ids) {  // token t -> "tT" (e.g. 2 -> "cC")
    std::string s;
    for (int32_t t : ids) s += std::string{static_cast<char>('a' + t), static_cast<char>('A' + t)};
    return s;
  };
  EXPECT_EQ(generate(lm, {{0}}, c, cb).sequences[0], (Ids{0, 1, 2}));
}

TEST(StopStrings, StoppedRowsArePaddedWhenThereIsAnEos) {
  FakeLM lm(11, 64, scripted_logits(11, [](const Ids& s) { return (s.back() + 1) % 10; }));
  GenerationConfig c = greedy(5);
  c.stop_strings = {"d"};
  c.eos_token_id = {10};
  GenerationCallbacks cb;
  cb.decode = letters;
  const auto out = generate(lm, {{0}, {5}}, c, cb);
  EXPECT_EQ(out.sequences[0], (Ids{0, 1, 2, 3, 10, 10}));
  EXPECT_EQ(out.sequences[1], (Ids{5, 6, 7, 8, 9, 0}));
}

TEST(StopStrings, WithoutEosStoppedRowsKeepRealTokens) {
  // HF pads only when an eos criterion exists: row 1 stops one step before row 0 and still gets a token.
  FakeLM lm(11, 64, scripted_logits(11, [](const Ids& s) { return (s.back() + 1) % 10; }));
  GenerationConfig c = greedy(8);
  c.stop_strings = {"d"};
  GenerationCallbacks cb;
  cb.decode = letters;
  const auto out = generate(lm, {{0}, {1}}, c, cb);
  EXPECT_EQ(out.sequences[0], (Ids{0, 1, 2, 3}));
  EXPECT_EQ(out.sequences[1], (Ids{1, 2, 3, 4}));
}

TEST(StopStrings, NeedADecoder) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(5);
  c.stop_strings = {"x"};
  expect_error([&] { generate(lm, {{1}}, c); }, "--stop_strings");
}

TEST(Limits, MaxLengthNotLongerThanThePrompt) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c;
  c.max_length = 5;
  expect_error([&] { generate(lm, {{1, 2, 3, 4, 5}}, c); }, "--max_length 5 is not longer than the prompt (5 tokens)");
  c.max_length.reset();  // default 20
  expect_error([&] { generate(lm, {Ids(25, 1)}, c); }, "--max_length 20 is not longer than the prompt (25 tokens)");
}

TEST(Limits, ContextOverflowNamesTheFlag) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(60);
  expect_error([&] { generate(lm, {Ids(10, 1)}, c); }, "--max_new_tokens 60");
  c.max_new_tokens.reset();
  c.max_length = 70;
  expect_error([&] { generate(lm, {Ids(10, 1)}, c); }, "--max_length 70");
  c.max_length = 64;  // exactly the context: fine
  EXPECT_EQ(generate(lm, {Ids(10, 1)}, c).sequences[0].size(), 64u);
}

TEST(Limits, BadPrompts) {
  FakeLM lm(11, 64, hashed_logits(11));
  expect_error([&] { generate(lm, {{1, 11}}, greedy(2)); }, "token id 11");
  expect_error([&] { generate(lm, {{}}, greedy(2)); }, "empty");
  expect_error([&] { generate(lm, {Ids(65, 1)}, greedy(2)); }, "prompt");
  // Prompts of different lengths need a pad token (or an eos to default it to).
  expect_error([&] { generate(lm, {{1}, {1, 2}}, greedy(2)); }, "--pad_token_id");
}

TEST(Limits, InvalidConfigIsRejected) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(2);
  c.top_p = 0.0f;
  expect_error([&] { generate(lm, {{1}}, c); }, "--top_p");
}

TEST(Sampling, SameSeedSameTokens) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(30);
  c.do_sample = true;
  c.temperature = 2.0f;
  c.top_k = 0;
  c.seed = 7;
  const auto a = generate(lm, {{1, 2}}, c);
  const auto b = generate(lm, {{1, 2}}, c);
  EXPECT_EQ(a.sequences, b.sequences);
  c.seed = 8;
  EXPECT_NE(generate(lm, {{1, 2}}, c).sequences, a.sequences);
}

TEST(Sampling, TopKOneIsGreedy) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(10);
  c.do_sample = true;
  c.top_k = 1;
  c.seed = 3;
  EXPECT_EQ(generate(lm, {{1, 2}}, c).sequences[0], reference_greedy(lm, {1, 2}, 10));
}

TEST(Sampling, OnlyDrawsTokensThatSurviveTheWarpers) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(40);
  c.do_sample = true;
  c.top_k = 3;
  c.seed = 11;
  const Ids seq = generate(lm, {{1, 2}}, c).sequences[0];
  for (size_t i = 2; i < seq.size(); ++i) {
    auto l = lm.logits_of(Ids(seq.begin(), seq.begin() + i));
    std::vector<float> sorted = l;
    std::sort(sorted.rbegin(), sorted.rend());
    EXPECT_GE(l[seq[i]], sorted[2]) << "step " << i;
  }
}

TEST(Sampling, NumReturnSequencesRepeatsEachPrompt) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c = greedy(3);
  c.do_sample = true;
  c.num_return_sequences = 3;
  c.pad_token_id = 0;
  c.seed = 1;
  const auto out = generate(lm, {{1, 2}, {3}}, c);
  ASSERT_EQ(out.sequences.size(), 6u);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(Ids(out.sequences[r].begin(), out.sequences[r].begin() + 2), (Ids{1, 2}));
  for (int r = 3; r < 6; ++r) EXPECT_EQ(Ids(out.sequences[r].begin(), out.sequences[r].begin() + 2), (Ids{0, 3}));
}

TEST(Distribution, TemperatureThenTopK) {
  FakeLM lm(11, 64, hashed_logits(11));
  GenerationConfig c;
  c.temperature = 0.7f;
  c.top_k = 4;
  const Ids prompt{3, 1, 4};
  const auto dist = next_token_distribution(lm, prompt, c);
  // Expected: softmax(logits / 0.7) over the 4 largest logits, 0 elsewhere.
  const auto l = lm.logits_of(prompt);
  std::vector<float> sorted = l;
  std::sort(sorted.rbegin(), sorted.rend());
  double z = 0;
  for (int v = 0; v < 11; ++v)
    if (l[v] >= sorted[3]) z += std::exp((l[v] - sorted[0]) / 0.7);
  for (int v = 0; v < 11; ++v) {
    const double p = l[v] >= sorted[3] ? std::exp((l[v] - sorted[0]) / 0.7) / z : 0.0;
    EXPECT_NEAR(dist[v], p, 1e-6) << v;
    if (p == 0.0) {
      EXPECT_EQ(dist[v], 0.0f);
    }
  }
}

TEST(Distribution, AppliesTheProcessorsToo) {
  FakeLM lm(6, 64, scripted_logits(6, [](const Ids&) { return 4; }));
  GenerationConfig c;
  c.no_repeat_ngram_size = 1;
  c.top_k = 0;
  const auto dist = next_token_distribution(lm, {4, 2}, c);
  EXPECT_EQ(dist[4], 0.0f);
  EXPECT_EQ(dist[2], 0.0f);
  EXPECT_GT(dist[0], dist[1]);
}

}  // namespace
}  // namespace lmforge::test
