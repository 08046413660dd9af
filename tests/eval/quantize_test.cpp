// The accuracy-aware search of eval/quantize.h. A synthetic metric whose value depends only on
// which matrices are int8 makes every decision checkable by hand; the perplexity case runs the
// real metric on a fixture model.
#include <gtest/gtest.h>

#include <map>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/eval/perplexity.h"
#include "lmforge/eval/quantize.h"
#include "lmforge/model/model.h"
#include "lmforge/model/weights.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::eval {
namespace {

using kernels::WeightType;

// perplexity-like: 100 + the penalty of every module still in int8.
QualityMetric penalty_metric(const std::map<std::string, double>& penalty) {
  QualityMetric m;
  m.evaluate = [penalty](const Model& model) {
    double v = 100;
    for (const auto& s : model.weights().slices) {
      if (!kernels::is_int8(s.type)) continue;
      auto it = penalty.find(s.hf_name.substr(0, s.hf_name.size() - 7));  // minus ".weight"
      if (it != penalty.end()) v += it->second;
    }
    return v;
  };
  return m;
}

class QuantizeSearch : public ::testing::Test {
 protected:
  void SetUp() override { fp32_ = Model::load(test::model_dir("gpt2-tiny"), WeightType::F32); }
  std::unique_ptr<Model> fp32_;
};

TEST_F(QuantizeSearch, AllInt8WithinToleranceStopsAtOnce) {
  QuantizeOptions o;
  o.tolerance = 0.01;
  const auto r = tune_quantization(fp32_->config(), fp32_->weights(), penalty_metric({{"transformer.h.0.mlp.c_fc", 0.5}}), o);
  ASSERT_TRUE(r.met());
  EXPECT_DOUBLE_EQ(r.baseline.metric, 100);
  ASSERT_EQ(r.trials.size(), 1u);
  EXPECT_EQ(r.trials[0].label, "int8");
  EXPECT_DOUBLE_EQ(r.trials[0].relative_loss, 0.005);
  EXPECT_TRUE(r.best_config.modules_in_higher_precision.empty());
  EXPECT_EQ(r.best_types.base, WeightType::I8_DYNAMIC);
}

TEST_F(QuantizeSearch, FallsBackTheMostSensitiveUntilWithinTolerance) {
  // Loss 2 % + 1.5 % + 0.4 % + 0.05 % = 3.95 %; tolerance 1 % needs c_fc(0) and c_attn(1) back
  // (0.45 % left), found after the 9 sensitivity runs and one cumulative try.
  const std::map<std::string, double> penalty = {{"transformer.h.0.mlp.c_fc", 2.0},
                                                 {"transformer.h.1.attn.c_attn", 1.5},
                                                 {"transformer.h.1.mlp.c_proj", 0.4},
                                                 {"transformer.wte", 0.05}};
  QuantizeOptions o;
  o.scheme = "weight_only";
  o.fallback = WeightType::F32;
  const auto r = tune_quantization(fp32_->config(), fp32_->weights(), penalty_metric(penalty), o);
  ASSERT_TRUE(r.met());
  const auto& best = r.trials[r.best];
  EXPECT_EQ(best.label, "tune 2 in float32");
  EXPECT_EQ(best.fallback, (std::vector<std::string>{"transformer.h.0.mlp.c_fc", "transformer.h.1.attn.c_attn"}));
  EXPECT_NEAR(best.relative_loss, 0.0045, 1e-12);
  EXPECT_EQ(r.trials.size(), 1u + 9u + 1u);  // int8, sensitivity of the 9 matrices, tune 2
  EXPECT_EQ(r.best_config.scheme, "weight_only");
  EXPECT_EQ(r.best_config.modules_in_higher_precision.at("transformer.h.1.attn.c_attn"), "float32");
  EXPECT_EQ(r.best_types.of("transformer.h.0.mlp.c_fc"), WeightType::F32);
  EXPECT_EQ(r.best_types.of("transformer.h.0.attn.c_attn"), WeightType::I8);
}

TEST_F(QuantizeSearch, HigherIsBetterMetricsAndUnmetTolerance) {
  QualityMetric m = penalty_metric({{"transformer.h.0.attn.c_proj", -30.0}});  // accuracy 100 -> 70
  m.higher_is_better = true;
  QuantizeOptions o;
  o.max_trials = 3;
  const auto r = tune_quantization(fp32_->config(), fp32_->weights(), m, o);
  EXPECT_FALSE(r.met());
  EXPECT_EQ(r.trials.size(), 3u);  // int8 + two sensitivity runs, then max_trials
  EXPECT_DOUBLE_EQ(r.trials[0].relative_loss, 0.3);
}

TEST_F(QuantizeSearch, RealPerplexityStaysWithinOnePercent) {
  const auto tok = Tokenizer::from_dir(test::model_dir("gpt2-tiny"));
  QualityMetric m;
  m.evaluate = [&](const Model& model) {
    return corpus_perplexity(model, tok, {"the jury said friday an investigation", "of atlanta's recent primary election"})
        .perplexity;
  };
  QuantizeOptions o;
  const auto r = tune_quantization(fp32_->config(), fp32_->weights(), m, o);
  ASSERT_TRUE(r.met());
  EXPECT_LE(r.trials[r.best].relative_loss, 0.01);
  EXPECT_NE(r.trials[0].metric, r.baseline.metric);  // int8 really changed the model
}

TEST(QuantizeOptions, BadOptionsAreNamed) {
  auto expect = [](QuantizeOptions o, const std::string& needle) {
    try {
      check_quantize_options(o);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  QuantizeOptions o;
  o.tolerance = 0;
  expect(o, "--tolerance");
  o.tolerance = -0.5;
  expect(o, "--tolerance");
  o = {};
  o.scheme = "static";
  expect(o, "--scheme");
  o = {};
  o.fallback = WeightType::I8;
  expect(o, "--fallback_dtype");
  o.fallback = WeightType::BF16_COMPUTE;  // (a compute mode, not a storage)
  expect(o, "--fallback_dtype");
  o = {};
  o.max_trials = 0;
  expect(o, "--max_trials");
}

}  // namespace
}  // namespace lmforge::eval
