// Training forward/backward: parity with HF's loss and gradients (the `train` fixtures), agreement
// with the inference forward, finite-difference gradient checks on tiny random models of both
// architectures (switches the fixtures do not cover), and padding / accumulation semantics.
#include "lmforge/train/backprop.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/npz.h"
#include "lmforge/error.h"
#include "lmforge/model/model.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/optimizer.h"
#include "train/train_fixture.h"

namespace lmforge {
namespace {

using test::batch_from_case;
using test::flatten_npz;
using test::model_cases;
using test::model_dir;
using test::slice_rel_error;
using test::slice_size;

// ---- HF parity ----------------------------------------------------------------------------------

class TrainParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainParity, LossGradientsAndNormMatchHF) {
  auto model = Model::load(model_dir(GetParam()));
  const ModelWeights& w = model->weights();
  const auto cases = model_cases(GetParam(), "train");
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const TrainBatch batch = batch_from_case(c);
    const auto& out = c.at("output");
    TrainWorkspace ws;
    std::vector<float> grads;
    const float loss = forward_backward(model->config(), w, batch, grads, ws);
    const double want_loss = out.at("loss").get<double>();
    EXPECT_NEAR(loss, want_loss, 1e-5 * std::fabs(want_loss)) << c.at("id");
    EXPECT_NEAR(evaluate_loss(model->config(), w, batch, ws), want_loss, 1e-5 * std::fabs(want_loss));

    const auto expected = flatten_npz(w, test::read_npz(out.at("grads_npz").get<std::string>()));
    for (const auto& s : w.slices)
      EXPECT_LE(slice_rel_error(s, grads, expected), 1e-4) << c.at("id") << " " << s.hf_name;

    const double want_norm = out.at("grad_norm").get<double>();
    EXPECT_NEAR(grad_norm(grads.data(), grads.size()), want_norm, 1e-5 * want_norm);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainParity, ::testing::Values("gpt2-switches", "gptj-tiny"));

// ---- agreement with the inference forward -------------------------------------------------------

class InferenceAgreement : public ::testing::TestWithParam<std::string> {};

// Unpadded rows, positions 0..T-1: the training forward's logits are Model::logits' (HF-parity
// tested in tests/model), and the loss is the mean cross-entropy of those logits.
TEST_P(InferenceAgreement, LogitsAndLossMatchModelLogits) {
  auto model = Model::load(model_dir(GetParam()));
  const ModelConfig& cfg = model->config();
  const int V = cfg.vocab_size, T = 12;
  std::mt19937 rng(7);
  TrainBatch b{2, T, {}, {}, {}, {}};
  for (int i = 0; i < 2 * T; ++i) b.input_ids.push_back(static_cast<int32_t>(rng() % V));
  b.labels = b.input_ids;
  TrainWorkspace ws;
  const auto logits = forward_logits(cfg, model->weights(), b, ws);
  double loss_sum = 0.0;
  for (int r = 0; r < 2; ++r) {
    const std::vector<int32_t> row(b.input_ids.begin() + r * T, b.input_ids.begin() + (r + 1) * T);
    const auto want = model->logits(row);
    float max_abs = 0.f, worst = 0.f;
    for (size_t i = 0; i < want.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(want[i]));
      worst = std::max(worst, std::fabs(want[i] - logits[static_cast<size_t>(r) * T * V + i]));
    }
    EXPECT_LE(worst, 1e-4f * max_abs) << "row " << r;
    for (int t = 0; t + 1 < T; ++t) {  // cross-entropy of the inference logits, in double
      const float* z = want.data() + static_cast<size_t>(t) * V;
      double mx = z[0], sum = 0.0;
      for (int v = 1; v < V; ++v) mx = std::max(mx, static_cast<double>(z[v]));
      for (int v = 0; v < V; ++v) sum += std::exp(z[v] - mx);
      loss_sum += mx + std::log(sum) - z[row[t + 1]];
    }
  }
  const double want_loss = loss_sum / (2.0 * (T - 1));
  EXPECT_NEAR(evaluate_loss(cfg, model->weights(), b, ws), want_loss, 1e-5 * want_loss);
  std::vector<float> grads;
  EXPECT_NEAR(forward_backward(cfg, model->weights(), b, grads, ws), want_loss, 1e-5 * want_loss);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InferenceAgreement, ::testing::Values("gpt2-switches", "gptj-tiny"));

// ---- tiny random models -------------------------------------------------------------------------

ModelConfig tiny_gpt2(const std::string& act) {
  ModelConfig c;
  c.arch = Arch::GPT2;
  c.model_type = "gpt2";
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.n_inner = 40;
  c.n_positions = 16;
  c.vocab_size = 37;
  c.activation_name = act;
  c.activation = act == "relu" ? Activation::Relu : Activation::GeluNew;
  return c;
}

ModelConfig tiny_gptj() {
  ModelConfig c;
  c.arch = Arch::GPTJ;
  c.model_type = "gptj";
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 24;  // head_dim 12
  c.n_inner = 0;
  c.n_positions = 16;
  c.vocab_size = 31;
  c.rotary_dim = 4;  // < head_dim: the last 8 features of each head do not rotate
  c.tie_word_embeddings = false;
  c.activation_name = "gelu_new";
  c.activation = Activation::GeluNew;
  return c;
}

// Weights like the fixtures' (large enough for peaked, non-trivial distributions): matrices and
// embeddings N(0, 0.3), biases N(0, 0.1), layer-norm gains 1 + N(0, 0.1).
ModelWeights random_weights(const ModelConfig& c, uint32_t seed) {
  ModelWeights w = allocate_weights(c);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  for (const auto& s : w.slices) {
    const bool ln = s.hf_name.find(".ln_") != std::string::npos;
    const bool bias = s.hf_name.ends_with("bias");
    float* p = w.params.data() + s.offset;
    for (size_t i = 0; i < slice_size(s); ++i) {
      const float z = n01(rng);
      p[i] = bias ? 0.1f * z : ln ? 1.0f + 0.1f * z : 0.3f * z;
    }
  }
  return w;
}

// Row 0 full, row 1 right-padded (HF's training padding), row 2 left-padded with HF-style
// positions (cumsum(mask) - 1, padding at 0). Padding is token V-1, which no real position uses.
TrainBatch padded_batch(int V, uint32_t seed) {
  const int B = 3, T = 7;
  std::mt19937 rng(seed);
  TrainBatch b{B, T, {}, {}, {}, {}};
  const std::vector<std::vector<int>> masks = {{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0}, {0, 0, 1, 1, 1, 1, 1}};
  for (int r = 0; r < B; ++r) {
    int pos = 0;
    for (int t = 0; t < T; ++t) {
      const bool real = masks[r][t];
      const int32_t id = real ? static_cast<int32_t>(rng() % (V - 1)) : V - 1;  // V-1: padding only
      b.input_ids.push_back(id);
      b.labels.push_back(real ? id : kIgnoreIndex);
      b.attention_mask.push_back(static_cast<uint8_t>(real));
      b.position_ids.push_back(real ? pos++ : 0);
    }
  }
  return b;
}

// ---- finite differences -------------------------------------------------------------------------

// How to difference and how close the result must be. fp32 losses carry ~1e-7 relative rounding
// noise, which the difference divides by h: smooth models take a large h with the 4-point stencil
// (truncation O(h⁴)); relu needs a small h with 2 points, so that no pre-activation crosses its
// kink inside the stencil, and pays with more noise.
struct FdSettings {
  double h;
  bool four_point;
  double element_tol;    // |fd - g_i| / max|g| of the tensor
  double direction_tol;  // |fd - g·d| / Σ|g_i d_i|
};

// ∂L/∂θ along `dir` by central differences; parameters restored after.
double fd_directional(const ModelConfig& c, ModelWeights& w, const TrainBatch& b, TrainWorkspace& ws,
                      const std::vector<std::pair<size_t, float>>& dir, const FdSettings& fd) {
  auto loss_at = [&](double t) {
    std::vector<float> saved;
    for (const auto& [i, d] : dir) {
      saved.push_back(w.params[i]);
      w.params[i] = static_cast<float>(w.params[i] + t * d);
    }
    const double L = evaluate_loss(c, w, b, ws);
    for (size_t k = 0; k < dir.size(); ++k) w.params[dir[k].first] = saved[k];
    return L;
  };
  const double h = fd.h;
  if (!fd.four_point) return (loss_at(h) - loss_at(-h)) / (2 * h);
  return (-loss_at(2 * h) + 8 * loss_at(h) - 8 * loss_at(-h) + loss_at(-2 * h)) / (12 * h);
}

struct FdResult {
  double worst_element = 0.0;    // max over checked elements of |fd - g| / max|g| of the tensor
  double worst_direction = 0.0;  // max over tensors of |fd - g·d| / Σ|g_i d_i|
};

// For every parameter tensor: the 3 entries with the largest |gradient| one by one, and one random
// direction over the whole tensor (which catches errors spread thin over many entries).
FdResult finite_difference_check(const ModelConfig& c, ModelWeights& w, const TrainBatch& b, const FdSettings& fd) {
  TrainWorkspace ws;
  std::vector<float> g;
  forward_backward(c, w, b, g, ws);
  std::mt19937 rng(11);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  FdResult r;
  for (const auto& s : w.slices) {
    const size_t n = slice_size(s);
    std::vector<size_t> idx(n);
    for (size_t i = 0; i < n; ++i) idx[i] = s.offset + i;
    std::partial_sort(idx.begin(), idx.begin() + std::min<size_t>(3, n), idx.end(),
                      [&](size_t a, size_t bb) { return std::fabs(g[a]) > std::fabs(g[bb]); });
    const double gmax = std::fabs(g[idx[0]]);
    if (gmax == 0.0) {
      ADD_FAILURE() << s.hf_name << ": zero gradient";
      continue;
    }
    for (size_t k = 0; k < std::min<size_t>(3, n); ++k) {
      const double num = fd_directional(c, w, b, ws, {{idx[k], 1.0f}}, fd);
      const double err = std::fabs(num - g[idx[k]]) / gmax;
      r.worst_element = std::max(r.worst_element, err);
      EXPECT_LE(err, fd.element_tol) << s.hf_name << "[" << idx[k] - s.offset << "] fd " << num << " analytic "
                                     << g[idx[k]];
    }
    std::vector<std::pair<size_t, float>> dir;
    double dot = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; ++i) {
      const float d = n01(rng);
      dir.push_back({s.offset + i, d});
      dot += static_cast<double>(g[s.offset + i]) * d;
      scale += std::fabs(static_cast<double>(g[s.offset + i]) * d);
    }
    const double num = fd_directional(c, w, b, ws, dir, fd);
    const double err = std::fabs(num - dot) / scale;
    r.worst_direction = std::max(r.worst_direction, err);
    EXPECT_LE(err, fd.direction_tol) << s.hf_name << " random direction: fd " << num << " analytic " << dot;
  }
  return r;
}

// Observed worst errors (this machine, Release / sanitizer builds): smooth 3.9e-4 / 5.2e-4 per
// element and 6.1e-5 / 6.7e-5 per direction; relu 2.1e-3 / 2.9e-3 and 3.9e-4 / 5.5e-4. A wrong
// gradient term shows up at 1e-2 and above.
constexpr FdSettings kSmooth{1e-2, true, 1.5e-3, 5e-4};
constexpr FdSettings kRelu{5e-4, false, 5e-3, 5e-3};

TEST(FiniteDifference, Gpt2GeluNewInverseLayerScale) {
  ModelConfig c = tiny_gpt2("gelu_new");
  c.scale_attn_by_inverse_layer_idx = true;
  ModelWeights w = random_weights(c, 1);
  const auto r = finite_difference_check(c, w, padded_batch(c.vocab_size, 2), kSmooth);
  std::printf("gpt2 gelu_new: worst element %.2e, worst direction %.2e\n", r.worst_element, r.worst_direction);
}

TEST(FiniteDifference, Gpt2ReluUntiedUnscaled) {
  ModelConfig c = tiny_gpt2("relu");
  c.tie_word_embeddings = false;  // GPT-2 with its own lm_head
  c.scale_attn_weights = false;
  c.scale_attn_by_inverse_layer_idx = true;
  ModelWeights w = random_weights(c, 3);
  const auto r = finite_difference_check(c, w, padded_batch(c.vocab_size, 4), kRelu);
  std::printf("gpt2 relu: worst element %.2e, worst direction %.2e\n", r.worst_element, r.worst_direction);
}

TEST(FiniteDifference, GptjPartialRotary) {
  const ModelConfig c = tiny_gptj();
  ModelWeights w = random_weights(c, 5);
  const auto r = finite_difference_check(c, w, padded_batch(c.vocab_size, 6), kSmooth);
  std::printf("gptj rotary_dim 4/12: worst element %.2e, worst direction %.2e\n", r.worst_element, r.worst_direction);
}

// ---- padding, positions, accumulation -----------------------------------------------------------

class Semantics : public ::testing::TestWithParam<Arch> {
 protected:
  ModelConfig config() const { return GetParam() == Arch::GPT2 ? tiny_gpt2("gelu_new") : tiny_gptj(); }
};

// Right padding: the padding tokens' ids cannot change the loss or any gradient, and a token that
// only appears as padding gets no embedding gradient.
TEST_P(Semantics, PaddingIsInvisible) {
  const ModelConfig c = config();
  const ModelWeights w = random_weights(c, 8);
  TrainBatch b = padded_batch(c.vocab_size, 9);
  b.B = 2;  // rows 0 (full) and 1 (right-padded with token V-1)
  for (auto* v : {&b.input_ids, &b.labels, &b.position_ids}) v->resize(2 * b.T);
  b.attention_mask.resize(2 * b.T);
  for (int i = 0; i < 2 * b.T; ++i) ASSERT_TRUE(b.attention_mask[i] || b.input_ids[i] == c.vocab_size - 1);
  TrainWorkspace ws;
  std::vector<float> g1, g2;
  const float l1 = forward_backward(c, w, b, g1, ws);
  for (int i = 0; i < 2 * b.T; ++i)
    if (!b.attention_mask[i]) b.input_ids[i] = 5;
  const float l2 = forward_backward(c, w, b, g2, ws);
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(g1.size(), g2.size());
  for (const auto& s : w.slices) EXPECT_EQ(slice_rel_error(s, g1, g2), 0.0) << s.hf_name;
  if (!c.tie_word_embeddings) {  // untied: the pad id's embedding row receives nothing
    const size_t row = static_cast<size_t>(c.vocab_size - 1) * c.n_embd;
    for (int e = 0; e < c.n_embd; ++e) EXPECT_EQ(g1[w.slices[0].offset + row + e], 0.0f);
  }
}

// A left-padded row with HF's positions scores its real tokens exactly as the unpadded row does,
// when the target predicted from the padding (the first real token) is ignored.
TEST_P(Semantics, LeftPaddingWithPositionsMatchesUnpadded) {
  const ModelConfig c = config();
  const ModelWeights w = random_weights(c, 10);
  const std::vector<int32_t> ids = {3, 14, 15, 9, 2, 6};
  TrainBatch plain{1, 6, ids, ids, {}, {}};
  plain.labels[1] = kIgnoreIndex;  // the padded row cannot predict ids[1] from ids[0] alone either
  TrainBatch padded{1, 8, {0, 0}, {kIgnoreIndex, kIgnoreIndex}, {0, 0}, {0, 0}};
  for (int i = 0; i < 6; ++i) {
    padded.input_ids.push_back(ids[i]);
    padded.labels.push_back(i <= 1 ? kIgnoreIndex : ids[i]);
    padded.attention_mask.push_back(1);
    padded.position_ids.push_back(i);
  }
  TrainWorkspace ws;
  const float a = evaluate_loss(c, w, plain, ws);
  const float b = evaluate_loss(c, w, padded, ws);
  EXPECT_NEAR(a, b, 1e-6f * a);
}

TEST_P(Semantics, GradientsAccumulateWithScale) {
  const ModelConfig c = config();
  const ModelWeights w = random_weights(c, 12);
  const TrainBatch b = padded_batch(c.vocab_size, 13);
  TrainWorkspace ws;
  std::vector<float> once, twice;
  forward_backward(c, w, b, once, ws);
  forward_backward(c, w, b, twice, ws, 0.25f);
  forward_backward(c, w, b, twice, ws, 0.75f);
  for (const auto& s : w.slices) EXPECT_LE(slice_rel_error(s, twice, once), 1e-5) << s.hf_name;
}

TEST_P(Semantics, NoTargetsGivesNanAndNoGradient) {
  const ModelConfig c = config();
  const ModelWeights w = random_weights(c, 14);
  TrainBatch b = padded_batch(c.vocab_size, 15);
  std::fill(b.labels.begin(), b.labels.end(), kIgnoreIndex);
  TrainWorkspace ws;
  std::vector<float> g;
  EXPECT_TRUE(std::isnan(forward_backward(c, w, b, g, ws)));
  EXPECT_EQ(grad_norm(g.data(), g.size()), 0.0);
}

TEST_P(Semantics, RejectsMalformedBatches) {
  const ModelConfig c = config();
  const ModelWeights w = random_weights(c, 16);
  TrainWorkspace ws;
  TrainBatch b = padded_batch(c.vocab_size, 17);
  b.input_ids[3] = c.vocab_size;
  EXPECT_THROW(evaluate_loss(c, w, b, ws), Error);
  b = padded_batch(c.vocab_size, 17);
  b.labels[3] = -1;
  EXPECT_THROW(evaluate_loss(c, w, b, ws), Error);
  b = padded_batch(c.vocab_size, 17);
  b.position_ids[2] = c.n_positions;
  EXPECT_THROW(evaluate_loss(c, w, b, ws), Error);
  b = padded_batch(c.vocab_size, 17);
  b.attention_mask.pop_back();
  EXPECT_THROW(evaluate_loss(c, w, b, ws), Error);
  std::vector<float> wrong(3);
  EXPECT_THROW(forward_backward(c, w, padded_batch(c.vocab_size, 17), wrong, ws), Error);
}

// The lm_head and loss run in chunks of rows (64 MiB of logits: 333 rows at GPT-2's vocabulary).
// A batch whose 398 targets span two chunks equals its rows run one by one (one chunk each),
// combined with the per-row target counts.
TEST(HeadChunks, ChunkedLossAndGradientsMatchSingleRows) {
  ModelConfig c = tiny_gpt2("gelu_new");
  c.vocab_size = 50257;
  c.n_positions = 256;
  const ModelWeights w = random_weights(c, 18);
  std::mt19937 rng(19);
  const int T = 200;
  TrainBatch both{2, T, {}, {}, {}, {}};
  for (int i = 0; i < 2 * T; ++i) both.input_ids.push_back(static_cast<int32_t>(rng() % c.vocab_size));
  both.labels = both.input_ids;
  both.labels[T + 50] = kIgnoreIndex;  // unequal counts: 199 and 198 targets
  TrainWorkspace ws;
  std::vector<float> g_both, g_rows;
  const double loss_both = forward_backward(c, w, both, g_both, ws);
  double sum = 0.0;
  const double total = static_cast<double>(count_targets(both));
  for (int r = 0; r < 2; ++r) {
    TrainBatch row{1, T, {}, {}, {}, {}};
    row.input_ids.assign(both.input_ids.begin() + r * T, both.input_ids.begin() + (r + 1) * T);
    row.labels.assign(both.labels.begin() + r * T, both.labels.begin() + (r + 1) * T);
    const double n = static_cast<double>(count_targets(row));
    sum += n * forward_backward(c, w, row, g_rows, ws, static_cast<float>(n / total));
  }
  EXPECT_NEAR(loss_both, sum / total, 1e-6 * loss_both);
  for (const auto& s : w.slices) EXPECT_LE(slice_rel_error(s, g_rows, g_both), 1e-5) << s.hf_name;
}

INSTANTIATE_TEST_SUITE_P(Archs, Semantics, ::testing::Values(Arch::GPT2, Arch::GPTJ),
                         [](const auto& info) { return info.param == Arch::GPT2 ? "gpt2" : "gptj"; });

}  // namespace
}  // namespace lmforge
