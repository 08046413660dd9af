// Gradient clipping, AdamW and the linear schedule: parity with torch (the `train` fixtures' one
// clipped AdamW step at weight decay 0 and 0.01), the formula over several steps, HF Trainer's
// decay mask, and get_linear_schedule_with_warmup's values.
#include "lmforge/train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/npz.h"
#include "lmforge/error.h"
#include "lmforge/model/model.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/backprop.h"
#include "train/train_fixture.h"

namespace lmforge {
namespace {

using test::batch_from_case;
using test::flatten_npz;
using test::model_cases;
using test::model_dir;
using test::read_npz;
using test::slice_rel_error;

AdamWConfig fixture_adamw(const nlohmann::json& args, double wd) {
  AdamWConfig cfg;
  cfg.lr = args.at("lr").get<double>();
  cfg.beta1 = args.at("betas")[0].get<double>();
  cfg.beta2 = args.at("betas")[1].get<double>();
  cfg.eps = args.at("eps").get<double>();
  cfg.weight_decay = wd;
  return cfg;
}

class AdamWParity : public ::testing::TestWithParam<std::string> {};

// HF's gradients in, one clip_grad_norm_(1.0) + AdamW step (decay on every parameter, as the
// fixture's torch.optim.AdamW(model.parameters())), HF's parameters out.
TEST_P(AdamWParity, OneClippedStepMatchesTorch) {
  auto model = Model::load(model_dir(GetParam()));
  const ModelWeights& w = model->weights();
  for (const auto& c : model_cases(GetParam(), "train")) {
    const auto& args = c.at("args");
    const auto& out = c.at("output");
    std::vector<float> grads = flatten_npz(w, read_npz(out.at("grads_npz").get<std::string>()));
    const double norm = clip_grad_norm(grads, args.at("clip_grad_norm").get<double>());
    EXPECT_NEAR(norm, out.at("grad_norm").get<double>(), 1e-5 * norm);
    const auto wds = args.at("weight_decay").get<std::vector<double>>();
    const char* keys[] = {"after_adamw_wd0_npz", "after_adamw_wd001_npz"};
    ASSERT_EQ(wds.size(), 2u);
    for (int k = 0; k < 2; ++k) {
      std::vector<float> params = w.params;
      AdamW opt(params.size(), fixture_adamw(args, wds[k]));
      opt.step(params, grads);
      const auto want = flatten_npz(w, read_npz(out.at(keys[k]).get<std::string>()));
      for (const auto& s : w.slices) EXPECT_LE(slice_rel_error(s, params, want), 1e-4) << keys[k] << " " << s.hf_name;
    }
  }
}

// The whole step from our own gradients: forward_backward, the clip folded into AdamW's
// grad_scale, against torch's parameters. AdamW's first step is lr * g / (|g| + eps): about
// lr * sign(g), and for |g| near eps dependent on |g| itself. Gradients agree to 1e-4 of their
// tensor's max, so entries with |g| below that (e.g. GPT-2's key bias, whose true gradient is 0
// as softmax ignores a per-query constant: torch's and ours are rounding noise of ±1e-8) have no
// determined step and are left out; entries where both gradients are exactly 0 (unused embedding
// rows) are kept: the step is the decay alone.
TEST_P(AdamWParity, EndToEndStepMatchesTorch) {
  auto model = Model::load(model_dir(GetParam()));
  const ModelWeights& w = model->weights();
  for (const auto& c : model_cases(GetParam(), "train")) {
    const auto& args = c.at("args");
    TrainWorkspace ws;
    std::vector<float> grads;
    forward_backward(model->config(), w, batch_from_case(c), grads, ws);
    const double norm = grad_norm(grads.data(), grads.size());
    std::vector<float> params = w.params;
    AdamW opt(params.size(), fixture_adamw(args, 0.01));
    opt.step(params, grads, -1.0, clip_coefficient(norm, args.at("clip_grad_norm").get<double>()));
    const auto hf_grads = flatten_npz(w, read_npz(c.at("output").at("grads_npz").get<std::string>()));
    auto want = flatten_npz(w, read_npz(c.at("output").at("after_adamw_wd001_npz").get<std::string>()));
    size_t skipped = 0;
    for (const auto& s : w.slices) {
      float gmax = 0.0f;
      for (size_t i = s.offset; i < s.offset + test::slice_size(s); ++i) gmax = std::max(gmax, std::fabs(hf_grads[i]));
      for (size_t i = s.offset; i < s.offset + test::slice_size(s); ++i)
        if (std::fabs(hf_grads[i]) <= 1e-4f * gmax && !(hf_grads[i] == 0.0f && grads[i] == 0.0f)) {
          want[i] = params[i];  // step not determined by gradients at the tolerance: not compared
          ++skipped;
        }
      EXPECT_LE(slice_rel_error(s, params, want), 1e-4) << s.hf_name;
    }
    EXPECT_LT(skipped, params.size() / 4) << "too few entries compared";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AdamWParity, ::testing::Values("gpt2-switches", "gptj-tiny"));

// ---- AdamW over several steps against the formula in double ---------------------------------------

TEST(AdamW, FollowsTheFormulaOverSeveralSteps) {
  const size_t n = 1000;
  std::mt19937 rng(3);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  std::vector<float> p(n);
  for (auto& x : p) x = n01(rng);
  std::vector<double> P(p.begin(), p.end()), m(n, 0.0), v(n, 0.0);
  AdamWConfig cfg{2e-2, 0.8, 0.95, 1e-6, 0.1};
  AdamW opt(n, cfg);
  for (int step = 1; step <= 5; ++step) {
    std::vector<float> g(n);
    for (auto& x : g) x = n01(rng) * (step == 3 ? 1e-7f : 1.0f);  // one step with tiny gradients
    const double lr = cfg.lr / step;
    opt.step(p, g, lr, 0.5f);
    for (size_t i = 0; i < n; ++i) {
      const double gi = 0.5 * g[i];
      P[i] *= 1.0 - lr * cfg.weight_decay;
      m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * gi;
      v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * gi * gi;
      const double mhat = m[i] / (1.0 - std::pow(cfg.beta1, step));
      P[i] -= lr * mhat / (std::sqrt(v[i]) / std::sqrt(1.0 - std::pow(cfg.beta2, step)) + cfg.eps);
    }
  }
  EXPECT_EQ(opt.steps, 5);
  for (size_t i = 0; i < n; ++i) ASSERT_NEAR(p[i], P[i], 1e-5 * (1.0 + std::fabs(P[i]))) << i;
}

// ZeRO stage 1: optimizers of the slices [0, c) and [c, n) (three slices too) give every parameter
// and moment exactly the bits of one optimizer over the whole buffer, wherever the cuts fall: at
// or off an 8-element vector boundary, inside a decay segment, inside a work block's scalar tail.
TEST(AdamW, SlicesEqualTheWholeBufferBitForBit) {
  const size_t n = 40013;  // past two 16384-parameter work blocks; segment ends off the vector grid
  const std::vector<ParamRange> decay = {{3, 17000}, {17005, 17013}, {20001, 39999}};
  std::mt19937 rng(5);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  std::vector<float> p0(n);
  for (auto& x : p0) x = n01(rng);
  std::vector<std::vector<float>> g(3, std::vector<float>(n));
  for (int s = 0; s < 3; ++s)
    for (size_t i = 0; i < n; ++i) g[s][i] = n01(rng) * (i % 5 == 0 ? 1e-6f : 1e-2f);
  const AdamWConfig cfg{2e-2, 0.9, 0.999, 1e-8, 0.1};

  std::vector<float> want = p0;
  AdamW whole(n, cfg);
  whole.set_decay_ranges(decay);
  for (int s = 0; s < 3; ++s) whole.step(want.data(), g[s].data(), cfg.lr / (s + 1), 0.75f);

  std::vector<std::vector<size_t>> cuts;
  for (size_t c : {0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17}) cuts.push_back({c});
  for (size_t c = 16370; c < 16400; ++c) cuts.push_back({c});  // around the first work block's end
  for (size_t c = 16990; c < 17020; ++c) cuts.push_back({c});  // decay segment ends (17000: tail of 2)
  for (size_t c = 39990; c <= n; ++c) cuts.push_back({c});
  for (int r = 0; r < 40; ++r) cuts.push_back({std::uniform_int_distribution<size_t>(0, n)(rng)});
  cuts.push_back({13338, 26676});  // three ranks' equal slices
  cuts.push_back({16999, 17006});
  for (const auto& cut : cuts) {
    std::vector<size_t> edges = {0};
    edges.insert(edges.end(), cut.begin(), cut.end());
    edges.push_back(n);
    std::vector<float> got = p0;
    for (size_t k = 0; k + 1 < edges.size(); ++k) {
      const ParamRange sl{edges[k], edges[k + 1]};
      AdamW part(n, cfg, sl);
      part.set_decay_ranges(decay);
      ASSERT_EQ(part.size(), sl.end - sl.begin);
      for (int s = 0; s < 3; ++s) part.step(got.data() + sl.begin, g[s].data() + sl.begin, cfg.lr / (s + 1), 0.75f);
      EXPECT_EQ(part.steps, 3);
      for (size_t i = sl.begin; i < sl.end; ++i) {
        ASSERT_EQ(std::memcmp(&part.m[i - sl.begin], &whole.m[i], 4), 0) << "m " << i << " cut " << cut[0];
        ASSERT_EQ(std::memcmp(&part.v[i - sl.begin], &whole.v[i], 4), 0) << "v " << i << " cut " << cut[0];
      }
    }
    ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(float)), 0) << "cut at " << cut[0];
  }
}

TEST(AdamW, SliceOutsideTheBufferIsRefused) {
  EXPECT_THROW(AdamW(10, {}, ParamRange{4, 11}), Error);
  EXPECT_THROW(AdamW(10, {}, ParamRange{5, 4}), Error);
  AdamW empty(10, {}, ParamRange{10, 10});
  EXPECT_EQ(empty.size(), 0u);
  empty.set_decay_ranges({{2, 8}});
  empty.step(nullptr, nullptr, 1e-3);  // a rank with nothing to update still counts the step
  EXPECT_EQ(empty.steps, 1);
}

// HF Trainer: biases and LayerNorm parameters are not decayed; everything else is.
TEST(AdamW, HfDecayMask) {
  EXPECT_TRUE(hf_decays("transformer.wte.weight"));
  EXPECT_TRUE(hf_decays("transformer.wpe.weight"));
  EXPECT_TRUE(hf_decays("transformer.h.0.attn.c_attn.weight"));
  EXPECT_TRUE(hf_decays("lm_head.weight"));
  EXPECT_FALSE(hf_decays("transformer.h.0.attn.c_attn.bias"));
  EXPECT_FALSE(hf_decays("lm_head.bias"));
  EXPECT_FALSE(hf_decays("transformer.h.3.ln_1.weight"));
  EXPECT_FALSE(hf_decays("transformer.h.3.ln_2.weight"));
  EXPECT_FALSE(hf_decays("transformer.ln_f.weight"));

  auto model = Model::load(model_dir("gptj-tiny"));
  const ModelWeights& w = model->weights();
  AdamW opt(w.params.size(), {1e-1, 0.9, 0.999, 1e-8, 0.5});
  opt.set_decay_ranges(hf_decay_ranges(w));
  std::vector<float> p = w.params;
  opt.step(p, std::vector<float>(p.size(), 0.0f));  // zero gradients: only the decay moves p
  for (const auto& s : w.slices) {
    const float factor = hf_decays(s.hf_name) ? static_cast<float>(1.0 - 0.1 * 0.5) : 1.0f;
    for (size_t i = s.offset; i < s.offset + test::slice_size(s); ++i)
      ASSERT_EQ(p[i], w.params[i] * factor) << s.hf_name;
  }
  EXPECT_THROW(opt.set_decay_ranges({{0, 10}, {5, 20}}), Error);
}

// ---- clipping -------------------------------------------------------------------------------------

TEST(ClipGradNorm, ScalesOnlyAboveTheThreshold) {
  std::vector<float> g = {3.0f, 4.0f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 1.0), 5.0);
  EXPECT_NEAR(g[0], 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(g[1], 4.0 / (5.0 + 1e-6), 1e-7);
  g = {0.3f, 0.4f};
  EXPECT_NEAR(clip_grad_norm(g, 1.0), 0.5, 1e-7);
  EXPECT_EQ(g[0], 0.3f);  // clip_coef clamped to 1
  EXPECT_EQ(clip_coefficient(0.0, 1.0), 1.0f);
}

// ---- schedule -------------------------------------------------------------------------------------

TEST(LinearSchedule, MatchesGetLinearScheduleWithWarmup) {
  // lr_lambda(step) = step / warmup while step < warmup, then (total - step) / (total - warmup), >= 0.
  EXPECT_EQ(linear_schedule_factor(0, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(linear_schedule_factor(5, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(linear_schedule_factor(10, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(linear_schedule_factor(60, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(linear_schedule_factor(109, 10, 110), 0.01);
  EXPECT_EQ(linear_schedule_factor(110, 10, 110), 0.0);
  EXPECT_EQ(linear_schedule_factor(500, 10, 110), 0.0);
  // No warmup: full rate at the first step.
  EXPECT_DOUBLE_EQ(linear_schedule_factor(0, 0, 4), 1.0);
  EXPECT_DOUBLE_EQ(linear_schedule_factor(3, 0, 4), 0.25);
  // Degenerate total == warmup: HF's max(1, .) guards the division.
  EXPECT_EQ(linear_schedule_factor(5, 5, 5), 0.0);
  const LinearSchedule s{1e-3, 2, 6};
  EXPECT_DOUBLE_EQ(s.lr(1), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr(4), 5e-4);
}

}  // namespace
}  // namespace lmforge
