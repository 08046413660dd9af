// Accuracy-aware quantization: baseline, all-int8, per-matrix sensitivity, cumulative fallback.
#include "lmforge/eval/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "lmforge/error.h"
#include "lmforge/model/model.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::eval {
namespace {

double relative_loss(double baseline, double value, bool higher_is_better) {
  return (higher_is_better ? baseline - value : value - baseline) / std::fabs(baseline);
}

std::vector<std::string> flatten(const std::vector<std::vector<std::string>>& units) {
  std::vector<std::string> out;
  for (const auto& u : units) out.insert(out.end(), u.begin(), u.end());
  return out;
}

}  // namespace

void check_quantize_options(const QuantizeOptions& o) {
  if (!(o.tolerance > 0) || !std::isfinite(o.tolerance))
    throw Error("--tolerance: must be a positive relative loss (e.g. 0.01 for 1 %), got " + std::to_string(o.tolerance));
  if (o.scheme != "dynamic" && o.scheme != "weight_only")
    throw Error("--scheme: dynamic or weight_only, not '" + o.scheme + "'");
  if (kernels::is_int8(o.fallback) || o.fallback == kernels::WeightType::BF16_COMPUTE)
    throw Error("--fallback_dtype: bfloat16, float16 or float32");
  if (o.max_trials < 1) throw Error("--max_trials: must be at least 1");
}

namespace {

// Evaluates the metric on cfg's model with `types`, timing it.
class Evaluator {
 public:
  Evaluator(const ModelConfig& cfg, const ModelWeights& fp32, const QualityMetric& metric)
      : cfg_(cfg), fp32_(fp32), metric_(metric) {}

  QuantizeTrial run(const std::string& label, const MatrixTypes& types) const {
    const auto model = Model::from_weights(cfg_, convert_weights(cfg_, fp32_, types));
    const auto t0 = std::chrono::steady_clock::now();
    QuantizeTrial t;
    t.label = label;
    t.metric = metric_.evaluate(*model);
    t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return t;
  }

 private:
  const ModelConfig& cfg_;
  const ModelWeights& fp32_;
  const QualityMetric& metric_;
};

}  // namespace

MatrixTypes quantization_plan(const std::string& scheme, const std::vector<std::vector<std::string>>& fallback_units,
                              kernels::WeightType fallback) {
  MatrixTypes t(scheme == "weight_only" ? kernels::WeightType::I8 : kernels::WeightType::I8_DYNAMIC);
  for (const auto& unit : fallback_units)
    for (const auto& module : unit) t.overrides[module] = fallback;
  return t;
}

QuantizeResult tune_quantization(const ModelConfig& cfg, const ModelWeights& fp32, const QualityMetric& metric,
                                 const QuantizeOptions& o, const std::function<void(const QuantizeTrial&)>& on_trial) {
  check_quantize_options(o);
  const Evaluator eval(cfg, fp32, metric);
  QuantizeResult r;
  r.baseline = eval.run("baseline", MatrixTypes(kernels::WeightType::F32));
  if (!std::isfinite(r.baseline.metric) || r.baseline.metric == 0)
    throw Error("quantize: the fp32 " + metric.name + " is " + std::to_string(r.baseline.metric) +
                ", nothing to compare against");
  if (on_trial) on_trial(r.baseline);

  const auto units = matrix_modules(cfg);
  // One evaluation: records it, and accepts it when within the tolerance.
  auto attempt = [&](const std::string& label, const std::vector<std::vector<std::string>>& fallback) {
    QuantizeTrial t = eval.run(label, quantization_plan(o.scheme, fallback, o.fallback));
    t.relative_loss = relative_loss(r.baseline.metric, t.metric, metric.higher_is_better);
    t.fallback = flatten(fallback);
    t.accepted = std::isfinite(t.metric) && t.relative_loss <= o.tolerance;
    r.trials.push_back(t);
    if (on_trial) on_trial(t);
    if (t.accepted && r.best < 0) r.best = static_cast<int>(r.trials.size()) - 1;
    return t;
  };
  auto spent = [&] { return static_cast<int>(r.trials.size()) >= o.max_trials; };

  attempt("int8", {});
  if (!r.met() && !spent()) {
    // Sensitivity: the metric with one matrix back in higher precision, all others int8.
    std::vector<double> with_fallback(units.size(), NAN);
    for (size_t i = 0; i < units.size() && !r.met() && !spent(); ++i)
      with_fallback[i] = attempt("sensitivity of " + units[i].front(), {units[i]}).relative_loss;
    // Most sensitive first: the matrix whose fallback alone recovers the most.
    std::vector<size_t> order(units.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const double la = std::isnan(with_fallback[a]) ? INFINITY : with_fallback[a];
      const double lb = std::isnan(with_fallback[b]) ? INFINITY : with_fallback[b];
      return la < lb;
    });
    std::vector<std::vector<std::string>> fallback;
    for (size_t k = 0; k < order.size() && !r.met() && !spent(); ++k) {
      fallback.push_back(units[order[k]]);
      if (k == 0) continue;  // one matrix alone was already measured above
      attempt("tune " + std::to_string(fallback.size()) + " in " + kernels::to_string(o.fallback), fallback);
    }
  }
  if (r.met()) {
    const QuantizeTrial& best = r.trials[r.best];
    r.best_config.scheme = o.scheme;
    for (const auto& m : best.fallback) r.best_config.modules_in_higher_precision[m] = kernels::to_string(o.fallback);
    r.best_types = MatrixTypes(o.scheme == "weight_only" ? kernels::WeightType::I8 : kernels::WeightType::I8_DYNAMIC);
    for (const auto& m : best.fallback) r.best_types.overrides[m] = o.fallback;
  }
  return r;
}

double choice_accuracy(const Model& model, const Tokenizer& tok, const std::vector<std::string>& prompts,
                       const std::vector<std::string>& labels) {
  const size_t correct = choice_correct(model, tok, prompts, labels, 0, prompts.size());
  return static_cast<double>(correct) / static_cast<double>(prompts.size());
}

size_t choice_correct(const Model& model, const Tokenizer& tok, const std::vector<std::string>& prompts,
                      const std::vector<std::string>& labels, size_t begin, size_t end) {
  if (prompts.empty() || prompts.size() != labels.size())
    throw Error("accuracy: " + std::to_string(prompts.size()) + " prompts and " + std::to_string(labels.size()) +
                " labels (need the same, non-zero number)");
  if (begin > end || end > prompts.size())
    throw Error("accuracy: rows [" + std::to_string(begin) + ", " + std::to_string(end) + ") of " +
                std::to_string(prompts.size()));
  std::vector<std::string> choices = labels;
  std::sort(choices.begin(), choices.end());
  choices.erase(std::unique(choices.begin(), choices.end()), choices.end());
  const int V = model.vocab_size();
  size_t correct = 0;
  for (size_t i = begin; i < end; ++i) {
    const std::vector<int32_t> context = tok.encode(prompts[i]);
    if (context.empty()) throw Error("accuracy: prompt " + std::to_string(i + 1) + " is empty");
    double best = -INFINITY;
    const std::string* predicted = nullptr;
    for (const std::string& choice : choices) {
      std::vector<int32_t> ids = context;
      const std::vector<int32_t> cont = tok.encode(" " + choice);
      ids.insert(ids.end(), cont.begin(), cont.end());
      if (static_cast<int>(ids.size()) > model.max_positions())
        throw Error("accuracy: prompt " + std::to_string(i + 1) + " with label '" + choice + "' is " +
                    std::to_string(ids.size()) + " tokens, beyond the context of " + std::to_string(model.max_positions()));
      const std::vector<float> logits = model.logits(ids);
      double score = 0;
      for (size_t k = context.size(); k < ids.size(); ++k) {  // token k predicted at position k - 1
        const float* row = logits.data() + (k - 1) * static_cast<size_t>(V);
        const float mx = *std::max_element(row, row + V);
        double z = 0;
        for (int v = 0; v < V; ++v) z += std::exp(static_cast<double>(row[v]) - mx);
        score += row[ids[k]] - mx - std::log(z);
      }
      if (score > best) {
        best = score;
        predicted = &choice;
      }
    }
    if (predicted && *predicted == labels[i]) ++correct;
  }
  return correct;
}

std::string format_quantize_table(const QuantizeResult& r, const std::string& metric_name) {
  const QuantizeTrial* last = r.trials.empty() ? nullptr : &r.trials.back();
  const QuantizeTrial* best = r.met() ? &r.trials[r.best] : nullptr;
  char buf[256];
  std::string out;
  auto row = [&](const char* name, double b, const QuantizeTrial* l, const QuantizeTrial* x, bool metric) {
    auto cell = [&](const QuantizeTrial* t) {
      char c[32];
      if (!t) return std::string("-");
      std::snprintf(c, sizeof c, "%.4f", metric ? t->metric : t->seconds);
      return std::string(c);
    };
    std::snprintf(buf, sizeof buf, "| %-18s | %12.4f | %14s | %16s |\n", name, b, cell(l).c_str(), cell(x).c_str());
    out += buf;
  };
  const std::string rule = "+--------------------+--------------+----------------+------------------+\n";
  out += rule;
  std::snprintf(buf, sizeof buf, "| %-18s | %12s | %14s | %16s |\n", "Info Type", "Baseline",
                last ? (last->label.size() > 14 ? "Last tune" : last->label.c_str()) : "-", "Best tune result");
  out += buf;
  out += rule;
  row(metric_name.c_str(), r.baseline.metric, last, best, true);
  row("Duration (seconds)", r.baseline.seconds, last, best, false);
  out += rule;
  return out;
}

}  // namespace lmforge::eval
