#pragma once
// Gradient clipping, AdamW and the learning-rate schedule, numerically as PyTorch 1.13 / HF Trainer
// compute them, over the flat parameter and gradient buffers (layout of ModelWeights::params).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/model/weights.h"

namespace lmforge {

// ---- gradient clipping (torch.nn.utils.clip_grad_norm_) -----------------------------------------

// Total L2 norm of a gradient buffer (accumulated in double): sqrt(grad_sum_squares).
double grad_norm(const float* grads, size_t n);
// Σ g² of a gradient buffer, in double (a slice's share of the norm under ZeRO stage 1).
double grad_sum_squares(const float* grads, size_t n);
// torch's factor: min(1, max_norm / (norm + 1e-6)).
float clip_coefficient(double norm, double max_norm);
// Scales `grads` in place by clip_coefficient and returns the norm before clipping (what
// clip_grad_norm_ returns). To save a pass over memory, pass clip_coefficient(grad_norm(...)) as
// AdamW::step's grad_scale instead.
double clip_grad_norm(std::vector<float>& grads, double max_norm);

// ---- AdamW (torch.optim.AdamW, torch 1.13 single-tensor implementation) -----------------------

// Defaults are HF TrainingArguments' (learning_rate 5e-5, adam_beta1/2, adam_epsilon, weight_decay).
// Doubles because torch keeps hyper-parameters as Python floats and casts each to fp32 where it
// meets a tensor.
struct AdamWConfig {
  double lr = 5e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// A range [begin, end) of the flat parameter buffer.
struct ParamRange {
  size_t begin = 0, end = 0;
};

// HF Trainer's rule: every parameter decays except biases and LayerNorm weights (names containing
// "bias", or LayerNorm modules: GPT-2/GPT-J's ln_1, ln_2, ln_f; also "layer_norm"/"layernorm").
bool hf_decays(const std::string& hf_name);
// The ranges of `w` that HF Trainer decays.
std::vector<ParamRange> hf_decay_ranges(const ModelWeights& w);

class AdamW {
 public:
  explicit AdamW(size_t n_params, AdamWConfig cfg = {});
  // The optimizer of one slice [slice.begin, slice.end) of a flat buffer of n_params (ZeRO stage 1,
  // docs/SCALE_OUT.md): m and v hold the slice alone, step() takes the slice's parameters and
  // gradients, and every element gets exactly the bits the whole-buffer optimizer gives it (the
  // whole buffer's work blocks are cut at the slice's ends, each element keeping its vector or
  // scalar arithmetic). slice {0, n_params} is the optimizer above.
  AdamW(size_t n_params, AdamWConfig cfg, ParamRange slice);

  // Weight decay applies to these ranges only (sorted, disjoint; offsets into the whole buffer of
  // n_params, also for a slice). Default: every parameter, as torch.optim.AdamW(model.parameters()).
  void set_decay_ranges(std::vector<ParamRange> ranges);

  // One update with learning rate `lr` (config().lr when negative) on grads * grad_scale:
  //   step += 1; p *= 1 - lr*wd (decayed ranges); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
  //   p -= lr/(1 - b1^step) * m / (sqrt(v)/sqrt(1 - b2^step) + eps)
  // `params` and `grads` point at the slice's first element (size() of each).
  void step(float* params, const float* grads, double lr = -1.0, float grad_scale = 1.0f);
  void step(std::vector<float>& params, const std::vector<float>& grads, double lr = -1.0, float grad_scale = 1.0f);

  const AdamWConfig& config() const { return cfg_; }
  // The parameters it updates: the slice's length.
  size_t size() const { return m.size(); }
  ParamRange slice() const { return slice_; }

  // State, public for checkpointing: the update count and the moment buffers (flat layout of the
  // slice: m[i] is parameter slice().begin + i).
  int64_t steps = 0;
  std::vector<float> m, v;

 private:
  struct Segment {
    size_t begin, end;
    bool decay;
  };
  // A work block of the whole buffer, or the part of one inside the slice (whole-buffer offsets).
  struct Block {
    size_t begin, end;  // the part to update
    size_t body_end;    // where the whole block's 8-wide vector loop ended: elements past it had scalar arithmetic
    bool cut;           // only part of the whole block
    bool decay;
  };
  AdamWConfig cfg_;
  size_t n_params_ = 0;
  ParamRange slice_;
  std::vector<Block> blocks_;  // [0, n) in order, cut into work blocks that decay or not, kept inside the slice
};

// ---- learning-rate schedule (transformers.get_linear_schedule_with_warmup) ---------------------

// Multiplier of the base learning rate for optimizer step `step` (0-based: the first update uses
// step 0, so it is 0 when warmup_steps > 0, as in HF): step/warmup during the warmup, then
// max(0, (total - step) / (total - warmup)).
double linear_schedule_factor(int64_t step, int64_t warmup_steps, int64_t total_steps);

struct LinearSchedule {
  double base_lr = 5e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double lr(int64_t step) const { return base_lr * linear_schedule_factor(step, warmup_steps, total_steps); }
};

}  // namespace lmforge
