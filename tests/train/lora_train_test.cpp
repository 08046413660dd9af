// LoRA training pass: parity with the PEFT-semantics fixtures (tests/data/lora/README.md) — loss,
// the gradient of every A and B, one AdamW step and the loss after it — for GPT-2 (Conv1D c_attn)
// and GPT-J (q_proj / v_proj inside our fused qkv), with and without gradient checkpointing; a
// frozen base held in bf16 / int8 against the same numbers computed over its widened fp32 copy;
// dropout semantics; bad inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/error_of.h"
#include "common/fixtures.h"
#include "common/lora_fixture.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/backprop.h"
#include "lmforge/train/optimizer.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_dir;
using test::error_of;
using test::read_npy;

using test::lora_case;
using test::lora_dir;

struct Base {
  ModelConfig cfg;
  ModelWeights w;
};

Base load_base(const json& c, const MatrixTypes& types = {}) {
  const fs::path dir = data_dir() / c["model"].get<std::string>();
  Base b{load_model_config(dir / "config.json"), {}};
  b.w = allocate_weights(b.cfg, types);
  load_weights(Checkpoint::open(dir), b.cfg, b.w);
  return b;
}

TrainBatch fixture_batch(const json& c) {
  TrainBatch b;
  const auto& j = c["batch"];
  b.B = static_cast<int>(j["input_ids"].size());
  b.T = static_cast<int>(j["input_ids"][0].size());
  for (int r = 0; r < b.B; ++r)
    for (int t = 0; t < b.T; ++t) {
      b.input_ids.push_back(j["input_ids"][r][t].get<int32_t>());
      b.attention_mask.push_back(j["attention_mask"][r][t].get<uint8_t>());
      b.labels.push_back(j["labels"][r][t].get<int32_t>());
    }
  return b;  // position ids 0..T-1 in both rows, as the fixture says
}

LoraAdapter fixture_adapter(const json& c, const ModelConfig& cfg) {
  return load_lora_adapter(lora_dir() / c["adapter_dir"].get<std::string>(), cfg);
}

// The adapter tensor `name` (PEFT name) of adapter `a`, A or B.
std::vector<float> tensor_of(const LoraAdapter& a, const std::vector<float>& buf, const std::string& name) {
  for (const auto& m : a.modules)
    for (bool is_b : {false, true})
      if (peft_tensor_name(m, is_b) == name) {
        const size_t n = is_b ? static_cast<size_t>(m.rows) * a.config.r : static_cast<size_t>(a.config.r) * m.in;
        const float* p = buf.data() + (is_b ? m.b : m.a);
        return {p, p + n};
      }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::abs(x));
  return m;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Every fixture gradient against `grads` (adapter layout): max |diff| <= 1e-4 x max |grad|.
void expect_fixture_grads(const json& c, const LoraAdapter& a, const std::vector<float>& grads) {
  ASSERT_EQ(c["output"]["tensors"].size(), a.modules.size() * 2);
  for (const auto& [name, t] : c["output"]["tensors"].items()) {
    const auto want = read_npy(lora_dir() / t["grad"].get<std::string>());
    const auto got = tensor_of(a, grads, name);
    EXPECT_LE(max_diff(got, want.data), 1e-4f * max_abs(want.data)) << name;
  }
}

class LoraParity : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraParity, LossGradientsAndAdamWStepMatchPeft) {
  const json c = lora_case(GetParam());
  Base base = load_base(c);
  LoraAdapter a = fixture_adapter(c, base.cfg);
  for (const auto& [name, t] : c["output"]["tensors"].items())
    ASSERT_EQ(tensor_of(a, a.params, name), read_npy(lora_dir() / t["init"].get<std::string>()).data) << name;

  const TrainBatch batch = fixture_batch(c);
  TrainWorkspace ws;
  std::vector<float> grads;
  const float loss = forward_backward_lora(base.cfg, base.w, a, batch, grads, ws);
  const double want_loss = c["output"]["loss"].get<double>();
  EXPECT_NEAR(loss, want_loss, 1e-5 * std::abs(want_loss));
  expect_fixture_grads(c, a, grads);

  // One torch AdamW step on the adapter alone, then the same batch's loss.
  AdamW opt(a.params.size(), {1e-3, 0.9, 0.999, 1e-8, 0.0});
  opt.step(a.params, grads);
  for (const auto& [name, t] : c["output"]["tensors"].items()) {
    const auto want = read_npy(lora_dir() / t["after_adamw"].get<std::string>());
    const auto g = read_npy(lora_dir() / t["grad"].get<std::string>());
    const auto got = tensor_of(a, a.params, name);
    const float gmax = max_abs(g.data);
    for (size_t i = 0; i < got.size(); ++i)
      if (std::abs(g.data[i]) > 1e-3f * gmax) {
        EXPECT_NEAR(got[i], want.data[i], 1e-6) << name << "[" << i << "]";
      }
  }
  const double want_after = c["output"]["loss_after_adamw"].get<double>();
  EXPECT_NEAR(evaluate_loss_lora(base.cfg, base.w, a, batch, ws), want_after, 1e-5 * std::abs(want_after));
}

TEST_P(LoraParity, GradientCheckpointingGivesTheSameGradients) {
  const json c = lora_case(GetParam());
  Base base = load_base(c);
  const LoraAdapter a = fixture_adapter(c, base.cfg);
  TrainWorkspace ws(TrainOptions{false, true});
  std::vector<float> grads;
  // Twice through the same workspace: the recompute state must not leak from one pass to the next.
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(grads.begin(), grads.end(), 0.0f);
    const float loss = forward_backward_lora(base.cfg, base.w, a, fixture_batch(c), grads, ws);
    const double want_loss = c["output"]["loss"].get<double>();
    EXPECT_NEAR(loss, want_loss, 1e-5 * std::abs(want_loss));
    expect_fixture_grads(c, a, grads);
  }
}

TEST_P(LoraParity, GradientCheckpointingMatchesFullFineTuningGradients) {
  // The same switch for a full fine-tune: every parameter's gradient equals the plain pass's.
  const json c = lora_case(GetParam());
  Base base = load_base(c);
  const TrainBatch batch = fixture_batch(c);
  TrainWorkspace plain, ckpt(TrainOptions{false, true});
  std::vector<float> g1, g2;
  const float l1 = forward_backward(base.cfg, base.w, batch, g1, plain);
  const float l2 = forward_backward(base.cfg, base.w, batch, g2, ckpt);
  EXPECT_EQ(l1, l2);
  EXPECT_LE(max_diff(g1, g2), 1e-6f * max_abs(g1));
  EXPECT_LT(ckpt.bytes(), plain.bytes());
}

// A copy of fp32 `w` whose matrices hold exactly what low-precision `lowp` holds, widened.
ModelWeights widened_copy(const ModelConfig& cfg, const ModelWeights& w, const ModelWeights& lowp) {
  ModelWeights out = allocate_weights(cfg);
  out.params = w.params;
  auto widen = [](const LinearWeights& from, const LinearWeights& to) {
    ASSERT_NE(from.lowp.data, nullptr);
    kernels::widen_rows(from.lowp, 0, from.out, const_cast<float*>(to.w));
  };
  for (int l = 0; l < cfg.n_layer; ++l)
    for (auto u : {LinearUnit::Qkv, LinearUnit::AttnOut, LinearUnit::FcIn, LinearUnit::FcOut})
      widen(unit_of(lowp.blocks[l], u), unit_of(out.blocks[l], u));
  kernels::widen_rows(lowp.wte_lowp, 0, cfg.vocab_size, const_cast<float*>(out.wte));
  if (!cfg.tie_word_embeddings) widen(lowp.lm_head, out.lm_head);
  return out;
}

TEST_P(LoraParity, LowPrecisionBaseEqualsItsWidenedCopy) {
  // Gradients flow through a bf16 / int8 base without an fp32 copy; the numbers must be those of
  // an fp32 base holding the same (rounded) values.
  const json c = lora_case(GetParam());
  Base base = load_base(c);
  const LoraAdapter a = fixture_adapter(c, base.cfg);
  const TrainBatch batch = fixture_batch(c);
  for (auto type : {kernels::WeightType::BF16, kernels::WeightType::I8}) {
    SCOPED_TRACE(kernels::to_string(type));
    const ModelWeights lowp = convert_weights(base.cfg, base.w, MatrixTypes(type));
    const ModelWeights ref = widened_copy(base.cfg, base.w, lowp);
    TrainWorkspace ws1, ws2(TrainOptions{false, true});
    std::vector<float> g_low, g_ref;
    const float l_low = forward_backward_lora(base.cfg, lowp, a, batch, g_low, ws2);
    const float l_ref = forward_backward_lora(base.cfg, ref, a, batch, g_ref, ws1);
    EXPECT_NEAR(l_low, l_ref, 1e-5 * std::abs(l_ref));
    EXPECT_LE(max_diff(g_low, g_ref), 1e-4f * max_abs(g_ref));
    // ... and rounding the base moves the loss only a little from the fp32 one.
    EXPECT_NEAR(l_low, c["output"]["loss"].get<double>(), 0.05);
    EXPECT_EQ(evaluate_loss_lora(base.cfg, lowp, a, batch, ws1), l_low);
  }
}

INSTANTIATE_TEST_SUITE_P(Arch, LoraParity, ::testing::Values("gpt2", "gptj"));

// ---- dropout ---------------------------------------------------------------------------------------

TEST(LoraDropout, TrainModeDropsInputsDeterministicallyEvalModeDoesNot) {
  const json c = lora_case("gptj");
  Base base = load_base(c);
  LoraAdapter a = fixture_adapter(c, base.cfg);
  a.config.lora_dropout = 0.5;
  const TrainBatch batch = fixture_batch(c);
  TrainWorkspace ws, ws_ckpt(TrainOptions{false, true});
  std::vector<float> g1, g2, g3, g4;
  const float l1 = forward_backward_lora(base.cfg, base.w, a, batch, g1, ws, 1.0f, 7);
  const float l2 = forward_backward_lora(base.cfg, base.w, a, batch, g2, ws, 1.0f, 7);
  const float l3 = forward_backward_lora(base.cfg, base.w, a, batch, g3, ws, 1.0f, 8);
  const float l4 = forward_backward_lora(base.cfg, base.w, a, batch, g4, ws_ckpt, 1.0f, 7);
  EXPECT_EQ(l1, l2);  // same seed, same mask
  EXPECT_EQ(g1, g2);
  EXPECT_NE(l1, l3);  // another seed, another mask
  EXPECT_EQ(l1, l4);  // the recomputed block sees the mask of the first forward
  EXPECT_LE(max_diff(g1, g4), 1e-6f * max_abs(g1));
  // Eval mode: no dropout, so the loss is the fixture's (dropout does not enter it).
  EXPECT_NEAR(evaluate_loss_lora(base.cfg, base.w, a, batch, ws), c["output"]["loss"].get<double>(), 1e-4);
  EXPECT_NE(l1, evaluate_loss_lora(base.cfg, base.w, a, batch, ws));
}

TEST(LoraDropout, GradientMatchesFiniteDifferencesThroughTheMask) {
  // With a fixed mask the loss is a smooth function of A and B: central differences in double
  // steps of a few elements agree with the analytic gradient.
  const json c = lora_case("gpt2");
  Base base = load_base(c);
  LoraAdapter a = fixture_adapter(c, base.cfg);
  a.config.lora_dropout = 0.3;
  const TrainBatch batch = fixture_batch(c);
  TrainWorkspace ws;
  std::vector<float> g;
  forward_backward_lora(base.cfg, base.w, a, batch, g, ws, 1.0f, 11);
  for (size_t i : {size_t{3}, a.modules[0].b + 5, a.modules[1].a + 17}) {
    const float keep = a.params[i], h = 1e-2f;
    std::vector<float> unused;
    a.params[i] = keep + h;
    const double up = forward_backward_lora(base.cfg, base.w, a, batch, unused, ws, 1.0f, 11);
    unused.clear();
    a.params[i] = keep - h;
    const double down = forward_backward_lora(base.cfg, base.w, a, batch, unused, ws, 1.0f, 11);
    a.params[i] = keep;
    EXPECT_NEAR((up - down) / (2 * h), g[i], 2e-3 + 2e-2 * std::abs(g[i])) << "param " << i;
  }
}

// ---- bad input ---------------------------------------------------------------------------------

TEST(LoraTraining, RefusesMismatchedBuffersAndBf16Workspaces) {
  const json c = lora_case("gpt2");
  Base base = load_base(c);
  const LoraAdapter a = fixture_adapter(c, base.cfg);
  std::vector<float> wrong(3, 0.0f);
  TrainWorkspace ws;
  EXPECT_NE(error_of([&] { forward_backward_lora(base.cfg, base.w, a, fixture_batch(c), wrong, ws); })
                .find("gradient buffer has 3 floats, the adapter"),
            std::string::npos);
  TrainWorkspace bf16(TrainOptions{true, false});
  std::vector<float> g;
  EXPECT_NE(error_of([&] { forward_backward_lora(base.cfg, base.w, a, fixture_batch(c), g, bf16); }).find("bf16"),
            std::string::npos);
  // A full fine-tune cannot train a low-precision matrix.
  const ModelWeights lowp = convert_weights(base.cfg, base.w, MatrixTypes(kernels::WeightType::BF16));
  std::vector<float> full;
  EXPECT_NE(error_of([&] { forward_backward(base.cfg, lowp, fixture_batch(c), full, ws); }).find("held in low precision"),
            std::string::npos);
}

}  // namespace
}  // namespace lmforge
