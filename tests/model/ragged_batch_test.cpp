// The continuous batcher's forward step (model/ragged_batch.h): HF parity of the logits when a
// prompt is fed in chunks next to other sequences, left padding, and batch invariance (a
// sequence's logits are the same bits whatever runs beside it and however its prompt is cut).
#include "model/ragged_batch.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "common/fixtures.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/model.h"

namespace lmforge {
namespace {

using test::model_cases;
using test::model_dir;
using test::read_npy;

// A sequence fed step by step: its row in the pool, its tokens, and its logits at every position.
struct Seq {
  PagedRow row;
  std::vector<int32_t> ids;
  std::vector<float> logits;
  int fed = 0;
};

// Feeds every sequence `chunk(s)` more tokens per step (all of them in the same steps) until each
// has fed its ids, collecting all-position logits.
template <class Chunk>
void run(const Model& m, BlockPool& pool, std::vector<Seq*> seqs, const Chunk& chunk) {
  RaggedScratch scratch;
  const int V = m.vocab_size();
  for (Seq* s : seqs) {
    s->row.blocks = *pool.take(pool.blocks_for(static_cast<int>(s->ids.size())));
    s->logits.assign(s->ids.size() * V, NAN);
  }
  std::vector<std::vector<int32_t>> positions(seqs.size());
  std::vector<std::vector<uint8_t>> masks(seqs.size());
  for (;;) {
    std::vector<RaggedSegment> segs;
    for (size_t k = 0; k < seqs.size(); ++k) {
      Seq& s = *seqs[k];
      const int left = static_cast<int>(s.ids.size()) - s.fed;
      if (left == 0) continue;
      const int n = std::min(left, chunk(k));
      positions[k].resize(n);
      std::iota(positions[k].begin(), positions[k].end(), s.fed);
      masks[k].assign(n, 1);
      segs.push_back({&s.row, n, s.ids.data() + s.fed, positions[k].data(), masks[k].data(),
                      s.logits.data() + static_cast<size_t>(s.fed) * V, true});
      s.fed += n;
    }
    if (segs.empty()) break;
    ragged_forward(m, pool, segs, scratch);
  }
  for (Seq* s : seqs) pool.give_back(s->row.blocks);
}

class RaggedBatch : public ::testing::TestWithParam<std::string> {};

TEST_P(RaggedBatch, ChunkedPromptsBesideOthersMatchHF) {
  auto model = Model::load(model_dir(GetParam()));
  const ModelConfig& c = model->config();
  BlockPool pool(c.n_layer, c.n_embd, 4, 64);
  const int V = model->vocab_size();
  int checked = 0;
  for (const auto& tc : model_cases(GetParam(), "logits")) {
    Seq a, other;
    a.ids = tc.at("input_ids").get<std::vector<int32_t>>();
    other.ids = std::vector<int32_t>(a.ids.rbegin(), a.ids.rend());
    other.ids.resize(std::min<size_t>(other.ids.size(), 5));
    // a in chunks of 3 (across block boundaries of 4), the other one token per step.
    run(*model, pool, {&a, &other}, [](size_t k) { return k == 0 ? 3 : 1; });
    const auto positions = tc.at("args").at("positions").get<std::vector<int>>();
    const auto expected = read_npy(tc.at("output").at("npy").get<std::string>());
    const float tol = 1e-4f * tc.at("output").at("max_abs_logit").get<float>();
    float worst = 0.f;
    for (size_t p = 0; p < positions.size(); ++p)
      for (int v = 0; v < V; ++v)
        worst = std::max(worst, std::fabs(a.logits[static_cast<size_t>(positions[p]) * V + v] - expected.data[p * V + v]));
    EXPECT_LE(worst, tol) << tc.at("id");
    ++checked;
  }
  EXPECT_GT(checked, 0);
  EXPECT_EQ(pool.free_blocks(), 64);
}

// A 23-token prompt alone in one step and among others: the same logits, bit for bit.
void same_bits_alone_and_among_others(const Model& m) {
  const ModelConfig& c = m.config();
  BlockPool pool(c.n_layer, c.n_embd, 4, 256);
  std::vector<int32_t> ids(23);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 37 + 11) % c.vocab_size);
  Seq alone;
  alone.ids = ids;
  run(m, pool, {&alone}, [](size_t) { return 1 << 20; });  // the whole prompt in one step
  // The same sequence cut into chunks of 5, then 1, among 7 others of other lengths and chunkings.
  std::vector<Seq> others(7);
  std::vector<Seq*> all;
  Seq crowd;
  crowd.ids = ids;
  all.push_back(&crowd);
  for (size_t k = 0; k < others.size(); ++k) {
    others[k].ids.resize(3 + 4 * k);
    for (size_t i = 0; i < others[k].ids.size(); ++i) others[k].ids[i] = static_cast<int32_t>((i * 13 + k) % c.vocab_size);
    all.push_back(&others[k]);
  }
  int step = 0;
  run(m, pool, all, [&](size_t k) { return k == 0 ? (step++ < 2 ? 5 : 1) : static_cast<int>(k % 3 + 1); });
  ASSERT_EQ(alone.logits.size(), crowd.logits.size());
  EXPECT_EQ(std::memcmp(alone.logits.data(), crowd.logits.data(), alone.logits.size() * sizeof(float)), 0)
      << "logits differ between the sequence alone and among others";
}

// fp32, and bfloat16_compute (on vdpbf16ps where the CPU has AVX-512 BF16: its own row kernel).
TEST_P(RaggedBatch, ASequenceGetsTheSameBitsAloneAndAmongOthers) {
  for (const auto type : {kernels::WeightType::F32, kernels::WeightType::BF16_COMPUTE}) {
    SCOPED_TRACE(kernels::to_string(type));
    same_bits_alone_and_among_others(*Model::load(model_dir(GetParam()), type));
  }
}

// The step's vector code is the same on the AVX-512 and AVX2 levels (matmul_wt_rows sums alike on
// every level; attention, layer norm and activations use the AVX2 kernels on both), so two servers
// on those two kinds of CPU give the same bits. (Portable differs: its exp and layer norm do.)
TEST_P(RaggedBatch, TheAvx2AndAvx512LevelsGiveTheSameBits) {
  if (kernels::detected_isa() != kernels::Isa::Avx512) GTEST_SKIP() << "needs a CPU with AVX-512";
  auto model = Model::load(model_dir(GetParam()));
  const ModelConfig& c = model->config();
  BlockPool pool(c.n_layer, c.n_embd, 4, 256);
  const kernels::Isa saved = kernels::isa();
  std::vector<std::vector<float>> logits;
  for (kernels::Isa level : {kernels::Isa::Avx512, kernels::Isa::Avx2}) {
    kernels::set_isa(level);
    std::vector<Seq> seqs(20);  // 20 rows: two AVX-512 panels, three AVX2 panels
    std::vector<Seq*> all;
    for (size_t k = 0; k < seqs.size(); ++k) {
      seqs[k].ids.resize(2 + k % 7);
      for (size_t i = 0; i < seqs[k].ids.size(); ++i)
        seqs[k].ids[i] = static_cast<int32_t>((i * 29 + 7 * k + 3) % c.vocab_size);
      all.push_back(&seqs[k]);
    }
    run(*model, pool, all, [](size_t k) { return static_cast<int>(k % 2 + 1); });
    logits.emplace_back();
    for (const Seq& s : seqs) logits.back().insert(logits.back().end(), s.logits.begin(), s.logits.end());
  }
  kernels::set_isa(saved);
  ASSERT_EQ(logits[0].size(), logits[1].size());
  EXPECT_EQ(std::memcmp(logits[0].data(), logits[1].data(), logits[0].size() * sizeof(float)), 0);
}

// Left padding: masked positions take no part, the real tokens get the unpadded logits.
TEST_P(RaggedBatch, LeftPaddingIsNeverAttendedTo) {
  auto model = Model::load(model_dir(GetParam()));
  const ModelConfig& c = model->config();
  const int V = model->vocab_size();
  BlockPool pool(c.n_layer, c.n_embd, 4, 16);
  const std::vector<int32_t> ids = {5, 9, 2, 7, 1, 3};
  const auto ref = model->logits(ids);
  PagedRow row;
  row.blocks = *pool.take(pool.blocks_for(9));
  std::vector<int32_t> tokens = {0, 0, 0}, positions = {1, 1, 1};
  tokens.insert(tokens.end(), ids.begin(), ids.end());
  for (int i = 0; i < 6; ++i) positions.push_back(i);
  const std::vector<uint8_t> mask = {0, 0, 0, 1, 1, 1, 1, 1, 1};
  std::vector<float> logits(9 * V);
  RaggedScratch scratch;
  ragged_forward(*model, pool, {{&row, 9, tokens.data(), positions.data(), mask.data(), logits.data(), true}}, scratch);
  for (int p = 0; p < 3; ++p)
    for (int v = 0; v < V; ++v) ASSERT_EQ(logits[p * V + v], 0.0f);
  for (int p = 0; p < 6; ++p)
    for (int v = 0; v < V; ++v) ASSERT_NEAR(logits[(p + 3) * V + v], ref[p * V + v], 1e-4f) << p;
  EXPECT_EQ(row.length, 9);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RaggedBatch, ::testing::ValuesIn(test::model_names()), [](const auto& info) {
  std::string n = info.param;
  for (auto& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

}  // namespace
}  // namespace lmforge
