#include "train/train_target.h"

#include <cstdio>

#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/save.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;

std::string with_commas(size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// LoRA with --bf16 / --fp16 and the default float32 base: the base is held in bfloat16 (what those
// flags mean for a frozen model); an explicit --base_dtype always decides.
kernels::WeightType base_type_of(const TrainConfig& cfg) {
  if (!cfg.lora) return kernels::WeightType::F32;
  if (cfg.base_dtype == "float32" && (cfg.bfloat16 || cfg.fp16)) return kernels::WeightType::BF16;
  const auto t = kernels::weight_type_from_string(cfg.base_dtype);
  if (!t) throw Error("--base_dtype must be float32, bfloat16 or int8, got '" + cfg.base_dtype + "'");
  return *t;
}

}  // namespace

TrainTarget::TrainTarget(const TrainConfig& cfg, const ModelConfig& mc)
    : mc_(mc), base_type_(base_type_of(cfg)), options_{!cfg.lora && (cfg.bfloat16 || cfg.fp16), cfg.gradient_checkpointing} {
  if (cfg.init == InitMode::Random) {
    weights_ = allocate_weights(mc);
    init_random_weights(mc, weights_, cfg.seed);
    if (base_type_ != kernels::WeightType::F32) weights_ = convert_weights(mc, weights_, MatrixTypes(base_type_));
  } else {
    weights_ = allocate_weights(mc, MatrixTypes(base_type_));  // converted tensor by tensor while loading
    load_weights(Checkpoint::open(cfg.model), mc, weights_);
  }
  if (!cfg.lora) return;
  LoraConfig lc;
  lc.r = cfg.lora_r;
  lc.lora_alpha = cfg.lora_alpha;
  lc.lora_dropout = cfg.lora_dropout;
  lc.target_modules = cfg.lora_target;
  std::error_code ec;
  if (!cfg.model.empty()) lc.base_model_name_or_path = fs::absolute(cfg.model, ec).lexically_normal().string();
  try {
    adapter_ = std::make_unique<LoraAdapter>(make_lora_adapter(mc, lc));
  } catch (const Error& e) {
    throw Error(std::string("--lora_target: ") + e.what());
  }
  init_lora_weights(*adapter_, cfg.seed);
}

std::vector<ParamRange> TrainTarget::decay_ranges() const {
  if (lora()) return {{0, adapter_->params.size()}};
  return hf_decay_ranges(weights_);
}

float TrainTarget::forward_backward(const TrainBatch& b, std::vector<float>& grads, TrainWorkspace& ws,
                                    float grad_scale, uint64_t dropout_seed) const {
  if (lora()) return forward_backward_lora(mc_, weights_, *adapter_, b, grads, ws, grad_scale, dropout_seed);
  return lmforge::forward_backward(mc_, weights_, b, grads, ws, grad_scale);
}

float TrainTarget::evaluate_loss(const TrainBatch& b, TrainWorkspace& ws) const {
  if (lora()) return evaluate_loss_lora(mc_, weights_, *adapter_, b, ws);
  return lmforge::evaluate_loss(mc_, weights_, b, ws);
}

LoadedCheckpoint TrainTarget::load_checkpoint(const fs::path& dir) {
  if (lora()) return load_lora_checkpoint(dir, mc_, *adapter_);
  return lmforge::load_checkpoint(dir, mc_, weights_);
}

void TrainTarget::save_final(const fs::path& dir) const {
  if (lora())
    save_lora_adapter(dir, *adapter_);
  else
    save_pretrained(dir, mc_, weights_);
}

std::string TrainTarget::describe() const {
  size_t base = 0;
  for (const auto& s : weights_.slices) {
    size_t n = 1;
    for (auto d : s.hf_shape) n *= static_cast<size_t>(d);
    base += n;
  }
  if (!lora()) return with_commas(weights_.num_parameters()) + " parameters";
  std::string targets;
  for (const auto& t : adapter_->config.target_modules) targets += (targets.empty() ? "" : ", ") + t;
  char share[32];
  std::snprintf(share, sizeof share, "%.2f", 100.0 * static_cast<double>(size()) / static_cast<double>(base));
  char alpha[32];
  std::snprintf(alpha, sizeof alpha, "%g", adapter_->config.lora_alpha);
  return "LoRA r " + std::to_string(adapter_->config.r) + " (lora_alpha " + alpha + ") on " + targets + ": " +
         with_commas(size()) + " trainable of " + with_commas(base) + " (" + share + " %), base in " +
         kernels::to_string(base_type_);
}

}  // namespace lmforge
