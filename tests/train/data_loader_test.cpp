// Batches (padding, labels, masks, positions), packing, per-epoch shuffling, resumable order, and
// the deterministic RNG underneath.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "io/io_test_util.h"
#include "lmforge/train/data.h"
#include "lmforge/train/train_state.h"

namespace lmforge {
namespace {

using test::ThrowsError;
constexpr int32_t P = 99;  // pad id in these tests
constexpr int32_t X = kIgnoreIndex;

std::vector<Example> examples(const std::vector<std::vector<int32_t>>& rows) {
  std::vector<Example> out;
  int64_t line = 2;
  for (const auto& r : rows) out.push_back({r, line++});
  return out;
}

TEST(Collate, RightPadsWithMaskLabelsAndPositions) {
  const std::vector<int32_t> a = {1, 2, 3}, b = {4};
  const TrainBatch t = collate({a, b}, P);
  EXPECT_EQ(t.B, 2);
  EXPECT_EQ(t.T, 3);
  EXPECT_EQ(t.input_ids, (std::vector<int32_t>{1, 2, 3, 4, P, P}));
  EXPECT_EQ(t.labels, (std::vector<int32_t>{1, 2, 3, 4, X, X}));
  EXPECT_EQ(t.attention_mask, (std::vector<uint8_t>{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(t.position_ids, (std::vector<int32_t>{0, 1, 2, 0, 1, 2}));

  const TrainBatch u = collate({b}, P, 4);
  EXPECT_EQ(u.T, 4);
  EXPECT_EQ(u.input_ids, (std::vector<int32_t>{4, P, P, P}));
  EXPECT_EQ(u.labels, (std::vector<int32_t>{4, X, X, X}));
  EXPECT_EQ(u.attention_mask, (std::vector<uint8_t>{1, 0, 0, 0}));
  EXPECT_EQ(u.position_ids, (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(Collate, MaskedPromptTokensGetNoLabel) {
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {5, 6};
  const std::vector<int32_t> masked = {2, 0};
  const TrainBatch t = collate({a, b}, P, 0, masked);
  EXPECT_EQ(t.input_ids, (std::vector<int32_t>{1, 2, 3, 4, 5, 6, P, P}));  // the prompt stays in the input
  EXPECT_EQ(t.labels, (std::vector<int32_t>{X, X, 3, 4, 5, 6, X, X}));
  EXPECT_EQ(t.attention_mask, (std::vector<uint8_t>{1, 1, 1, 1, 1, 1, 0, 0}));
}

TEST(DataLoader, CarriesEachRowsMaskThroughTheShuffle) {
  std::vector<Example> ex;
  for (int32_t i = 0; i < 6; ++i) ex.push_back({{i, 100 + i, 200 + i}, 2 + i, i % 3});  // row i masks i % 3 tokens
  LoaderOptions o;
  o.batch_size = 2;
  o.pad_id = P;
  o.seed = 7;
  const DataLoader dl(ex, o);
  for (int64_t b = 0; b < dl.batches_per_epoch(); ++b) {
    const TrainBatch t = dl.batch_at(1, b);
    for (int r = 0; r < t.B; ++r) {
      const int32_t row = t.input_ids[static_cast<size_t>(r) * t.T];  // the row's first id is its index
      for (int k = 0; k < 3; ++k)
        EXPECT_EQ(t.labels[static_cast<size_t>(r) * t.T + k], k < row % 3 ? X : t.input_ids[static_cast<size_t>(r) * t.T + k]);
    }
  }
  o.packing = true;
  o.block_size = 4;
  EXPECT_TRUE(ThrowsError([&] { DataLoader p(ex, o); }, {"response template", "packing"}));
}

TEST(DataLoader, PaddedBatchesInOrderWithoutShuffle) {
  LoaderOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  o.pad_id = P;
  DataLoader dl(examples({{1, 2, 3}, {4}, {5, 6}}), o);
  EXPECT_EQ(dl.num_rows(), 3);
  EXPECT_EQ(dl.batches_per_epoch(), 2);
  EXPECT_EQ(dl.num_tokens(), 6);
  const TrainBatch b0 = dl.next();
  EXPECT_EQ(b0.B, 2);
  EXPECT_EQ(b0.T, 3);
  EXPECT_EQ(b0.input_ids, (std::vector<int32_t>{1, 2, 3, 4, P, P}));
  EXPECT_EQ(b0.labels, (std::vector<int32_t>{1, 2, 3, 4, X, X}));
  const TrainBatch b1 = dl.next();  // the last, smaller batch (drop_last off, as HF's default)
  EXPECT_EQ(b1.B, 1);
  EXPECT_EQ(b1.T, 2);
  EXPECT_EQ(b1.input_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(dl.position(), (DataPosition{42, 1, 0, 3, 2}));  // rolled over into epoch 1

  o.drop_last = true;
  DataLoader dd(examples({{1, 2, 3}, {4}, {5, 6}}), o);
  EXPECT_EQ(dd.batches_per_epoch(), 1);
  o.batch_size = 4;
  EXPECT_TRUE(ThrowsError([&] { DataLoader d(examples({{1}, {2}}), o); }, {"no batches"}));
  o.batch_size = 0;
  EXPECT_TRUE(ThrowsError([&] { DataLoader d(examples({{1}}), o); }, {"per_device_train_batch_size"}));
  o.batch_size = 1;
  EXPECT_TRUE(ThrowsError([&] { DataLoader d({}, o); }, {"no training rows"}));
}

TEST(DataLoader, PackingConcatenatesIntoBlocks) {
  LoaderOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  o.packing = true;
  o.block_size = 4;
  o.pad_id = P;
  DataLoader dl(examples({{1, 2, 3}, {4, 5}, {6, 7, 8, 9}}), o);
  EXPECT_EQ(dl.num_rows(), 3);  // [1 2 3 4] [5 6 7 8] [9]
  EXPECT_EQ(dl.num_tokens(), 9);
  const TrainBatch b0 = dl.next();
  EXPECT_EQ(b0.B, 2);
  EXPECT_EQ(b0.T, 4);
  EXPECT_EQ(b0.input_ids, (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(b0.labels, b0.input_ids);
  EXPECT_EQ(b0.attention_mask, std::vector<uint8_t>(8, 1));
  EXPECT_EQ(b0.position_ids, (std::vector<int32_t>{0, 1, 2, 3, 0, 1, 2, 3}));
  const TrainBatch b1 = dl.next();  // the partial last block, padded to block_size
  EXPECT_EQ(b1.B, 1);
  EXPECT_EQ(b1.T, 4);
  EXPECT_EQ(b1.input_ids, (std::vector<int32_t>{9, P, P, P}));
  EXPECT_EQ(b1.labels, (std::vector<int32_t>{9, X, X, X}));
  EXPECT_EQ(b1.attention_mask, (std::vector<uint8_t>{1, 0, 0, 0}));
}

std::vector<std::vector<int32_t>> distinct_rows(int n) {
  std::vector<std::vector<int32_t>> rows;
  for (int i = 0; i < n; ++i) rows.push_back(std::vector<int32_t>(static_cast<size_t>(1 + i % 5), i));  // row i is all i's
  return rows;
}

// The first token of each row of a batch identifies the example (rows are all one id).
std::vector<int32_t> row_ids(const TrainBatch& b) {
  std::vector<int32_t> out;
  for (int r = 0; r < b.B; ++r) out.push_back(b.input_ids[static_cast<size_t>(r) * b.T]);
  return out;
}

TEST(DataLoader, EachEpochIsASeededPermutation) {
  LoaderOptions o;
  o.batch_size = 4;
  o.pad_id = P;
  o.seed = 5;
  DataLoader dl(examples(distinct_rows(50)), o);
  EXPECT_EQ(dl.batches_per_epoch(), 13);
  std::vector<std::vector<int32_t>> epochs(3);
  for (int e = 0; e < 3; ++e)
    for (int b = 0; b < 13; ++b)
      for (int32_t id : row_ids(dl.next())) epochs[static_cast<size_t>(e)].push_back(id);
  for (const auto& ep : epochs) {  // every row exactly once per epoch
    std::vector<int32_t> sorted = ep;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 50; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  std::vector<int32_t> identity(50);
  for (int i = 0; i < 50; ++i) identity[static_cast<size_t>(i)] = i;
  EXPECT_NE(epochs[0], identity);

  // Same seed in a fresh loader: same order. Another seed: another order.
  DataLoader again(examples(distinct_rows(50)), o);
  std::vector<int32_t> first;
  for (int b = 0; b < 13; ++b)
    for (int32_t id : row_ids(again.next())) first.push_back(id);
  EXPECT_EQ(first, epochs[0]);
  o.seed = 6;
  DataLoader other(examples(distinct_rows(50)), o);
  std::vector<int64_t> order6 = other.epoch_order(0), order5 = dl.epoch_order(0);
  EXPECT_NE(order6, order5);
}

TEST(DataLoader, ResumedLoaderServesIdenticalBatches) {
  LoaderOptions o;
  o.batch_size = 3;
  o.pad_id = P;
  o.seed = 1234;
  const auto ex = examples(distinct_rows(7));  // 3 batches per epoch: 3 + 3 + 1
  DataLoader a(ex, o);
  for (int i = 0; i < 5; ++i) a.next();  // into epoch 1
  const DataPosition saved = a.position();
  EXPECT_EQ(saved.epoch, 1);
  EXPECT_EQ(saved.batch, 2);
  EXPECT_EQ(saved.seed, 1234u);

  DataLoader b(ex, o);  // a "new process"
  b.set_position(saved);
  for (int i = 0; i < 10; ++i) {
    const TrainBatch x = a.next(), y = b.next();
    EXPECT_EQ(x.input_ids, y.input_ids) << "batch " << i;
    EXPECT_EQ(x.labels, y.labels);
    EXPECT_EQ(x.attention_mask, y.attention_mask);
    EXPECT_EQ(x.position_ids, y.position_ids);
    EXPECT_EQ(a.position(), b.position());
  }
  // batch_at is the same pure function of (seed, epoch, batch).
  EXPECT_EQ(DataLoader(ex, o).batch_at(4, 1).input_ids, b.batch_at(4, 1).input_ids);
}

TEST(DataLoader, ResumeThroughTrainerStateJson) {
  // What a resumed run does: position -> trainer_state.json text -> parse -> set_position.
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 77;
  o.packing = true;
  o.block_size = 3;
  const auto ex = examples(distinct_rows(23));
  DataLoader a(ex, o);
  for (int i = 0; i < 9; ++i) a.next();
  TrainerState st;
  st.data = a.position();
  const TrainerState back = parse_trainer_state(trainer_state_json(st), "trainer_state.json");
  EXPECT_EQ(back.data, a.position());
  DataLoader b(ex, o);
  b.set_position(back.data);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(a.next().input_ids, b.next().input_ids) << i;
}

TEST(DataLoader, ResumeRefusesAnotherSetup) {
  LoaderOptions o;
  o.batch_size = 2;
  o.seed = 3;
  DataLoader dl(examples(distinct_rows(6)), o);
  DataPosition p = dl.position();
  p.seed = 4;
  EXPECT_TRUE(ThrowsError([&] { dl.set_position(p); }, {"seed 4", "seed 3"}));
  p = dl.position();
  p.rows = 7;
  EXPECT_TRUE(ThrowsError([&] { dl.set_position(p); }, {"rows 7", "6"}));
  p = dl.position();
  p.batch_size = 4;
  EXPECT_TRUE(ThrowsError([&] { dl.set_position(p); }, {"batch size 4"}));
  p = dl.position();
  p.batch = 3;  // only 3 batches: 0..2
  EXPECT_TRUE(ThrowsError([&] { dl.set_position(p); }, {"batch 3"}));
  EXPECT_THROW(dl.batch_at(0, 3), Error);
}

TEST(Rng, MatchesXoshiro256StarStarReference) {
  // Reference outputs of xoshiro256** (Blackman & Vigna) from the state {1, 2, 3, 4}.
  Rng r = Rng::from_state("xoshiro256**:0000000000000001:0000000000000002:0000000000000003:0000000000000004");
  EXPECT_EQ(r.next(), 11520u);
  EXPECT_EQ(r.next(), 0u);
  EXPECT_EQ(r.next(), 1509978240u);
  EXPECT_EQ(r.next(), 1215971899390074240u);
  EXPECT_EQ(r.next(), 1216172134540287360u);
}

TEST(Rng, StateRoundTripAndStreams) {
  Rng a(42);
  for (int i = 0; i < 10; ++i) a.next();
  const std::string st = a.state();
  Rng b = Rng::from_state(st);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(Rng(42, 0).next(), Rng(42, 1).next());
  EXPECT_NE(Rng(42).next(), Rng(43).next());
  EXPECT_EQ(Rng(42, 9).state(), Rng(42, 9).state());

  EXPECT_TRUE(ThrowsError([] { Rng::from_state("mt19937:1", "trainer_state.json"); }, {"trainer_state.json", "RNG state"}));
  EXPECT_THROW(Rng::from_state("xoshiro256**:0000000000000001:0000000000000002:0000000000000003"), Error);
  EXPECT_THROW(Rng::from_state("xoshiro256**:0000000000000000:0000000000000000:0000000000000000:0000000000000000"), Error);
  EXPECT_THROW(Rng::from_state("xoshiro256**:000000000000000g:0000000000000002:0000000000000003:0000000000000004"), Error);
}

TEST(Rng, BelowIsInRangeAndUniform) {
  Rng r(7);
  std::map<uint64_t, int> count;
  for (int i = 0; i < 60000; ++i) {
    const uint64_t v = r.below(6);
    ASSERT_LT(v, 6u);
    ++count[v];
  }
  for (const auto& [v, c] : count) EXPECT_NEAR(c, 10000, 500) << v;  // sd ~91
  for (int i = 0; i < 1000; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
  EXPECT_EQ(r.below(1), 0u);
  EXPECT_THROW(r.below(0), Error);
}

}  // namespace
}  // namespace lmforge
