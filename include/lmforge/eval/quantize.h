#pragma once
// Accuracy-aware int8 quantization (seed 000's Intel Neural Compressor step, done natively).
//
//   1. baseline: the fp32 model's metric (perplexity by default) and how long it took;
//   2. try every weight matrix in int8 (scheme "dynamic": per-token int8 activations and int8 x
//      int8 products; "weight_only": fp32 activations);
//   3. while the relative loss exceeds the tolerance: measure each matrix's sensitivity, one at a
//      time (everything int8 except that matrix, which falls back to `fallback`), then fall back
//      the most sensitive matrices cumulatively, most sensitive first, one more per try, until a
//      try is within the tolerance or `max_trials` is spent.
// relative loss = (metric - baseline) / baseline when lower is better (perplexity), and
// (baseline - metric) / baseline when higher is better (accuracy); a try is accepted when it is
// <= tolerance. The best try is the accepted one with the fewest matrices in higher precision
// (the first found); when none is accepted the result says so (met == false).
#include <functional>
#include <string>
#include <vector>

#include "lmforge/kernels/kernels.h"
#include "lmforge/model/config.h"
#include "lmforge/model/weights.h"

namespace lmforge {
class Model;
class Tokenizer;
}

namespace lmforge::eval {

// A model-quality metric: evaluate(model) -> value.
struct QualityMetric {
  std::string name = "perplexity";
  bool higher_is_better = false;
  std::function<double(const Model&)> evaluate;
};

struct QuantizeOptions {
  std::string scheme = "dynamic";  // or "weight_only"
  double tolerance = 0.01;         // > 0: the relative metric loss allowed
  kernels::WeightType fallback = kernels::WeightType::BF16;  // or F16 / F32
  int max_trials = 100;            // metric evaluations after the baseline (sensitivity included)
};

struct QuantizeTrial {
  std::string label;                  // "baseline", "int8", "sensitivity of <module>", "tune 3"
  double metric = 0;
  double seconds = 0;                 // time the metric took (the seed table's "Duration")
  double relative_loss = 0;
  std::vector<std::string> fallback;  // modules kept in higher precision
  bool accepted = false;
};

struct QuantizeResult {
  QuantizeTrial baseline;
  std::vector<QuantizeTrial> trials;  // every evaluation after the baseline, in order
  int best = -1;                      // index into trials of the chosen try (-1: none accepted)
  bool met() const { return best >= 0; }
  MatrixTypes best_types;             // the plan of trials[best]
  QuantizationConfig best_config;     // the same, as config.json's quantization_config
};

// Throws lmforge::Error naming the flag for a tolerance <= 0, an unknown scheme, an int8 fallback
// type or max_trials < 1.
void check_quantize_options(const QuantizeOptions& options);

// The matrix types of `scheme` with the modules of `fallback_units` in `fallback`.
MatrixTypes quantization_plan(const std::string& scheme, const std::vector<std::vector<std::string>>& fallback_units,
                              kernels::WeightType fallback);

// Runs the search on `fp32` (an fp32 model of cfg). `on_trial` sees each evaluation as it ends
// (progress). Throws lmforge::Error for bad options (check_quantize_options) or a metric that is
// not finite on the fp32 baseline.
QuantizeResult tune_quantization(const ModelConfig& cfg, const ModelWeights& fp32, const QualityMetric& metric,
                                 const QuantizeOptions& options,
                                 const std::function<void(const QuantizeTrial&)>& on_trial = {});

// Multiple-choice accuracy of a labelled set, as LM evaluation harnesses score classification with
// a causal LM: for each prompt, every distinct label is scored by log p(" " + label | prompt)
// (the sum over its tokens; tokenizer.encode(prompt) then tokenizer.encode(" " + label)), the
// highest-scoring label is the prediction, and accuracy = correct / rows (0..1). Throws
// lmforge::Error for empty or mismatched inputs, or when prompt + label exceeds the context.
double choice_accuracy(const Model& model, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                       const std::vector<std::string>& labels);
// The number of rows in [begin, end) that choice_accuracy counts as correct, the choices being every
// distinct label of the whole set (so rows split across processes are scored as in one).
size_t choice_correct(const Model& model, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                      const std::vector<std::string>& labels, size_t begin, size_t end);

// The seed's result table: Baseline | the accepted (or last) try | Best tune result, rows metric
// and duration.
std::string format_quantize_table(const QuantizeResult& r, const std::string& metric_name);

}  // namespace lmforge::eval
