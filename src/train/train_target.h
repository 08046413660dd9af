#pragma once
// What a fine-tuning run trains: the whole model (full fine-tuning, fp32 weights) or, with LoRA,
// the adapters over a frozen base held in --base_dtype. The trainer's loop sees one flat buffer
// of trainable parameters either way; this class hides which it is (model loading, the passes,
// weight decay, checkpoints and the final folder).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/model/config.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/backprop.h"
#include "lmforge/train/optimizer.h"
#include "lmforge/train/train_config.h"
#include "lmforge/train/train_state.h"

namespace lmforge {

class TrainTarget {
 public:
  // Loads (or, init: random, initialises) the model of `mc` for `cfg` and, with cfg.lora, lays out
  // and initialises the adapter. Throws lmforge::Error naming the flag for a bad LoRA setting.
  TrainTarget(const TrainConfig& cfg, const ModelConfig& mc);

  bool lora() const { return adapter_ != nullptr; }
  float* params() { return lora() ? adapter_->params.data() : weights_.params.data(); }
  size_t size() const { return lora() ? adapter_->params.size() : weights_.params.size(); }
  const ModelWeights& weights() const { return weights_; }

  // The workspace options for this target: --bf16 / --fp16 (full fine-tuning: bf16 matmuls over a
  // bf16 copy; LoRA: never, the base type decides) and --gradient_checkpointing.
  TrainOptions workspace_options() const { return options_; }
  // The ranges AdamW decays: HF Trainer's rule for the model; every adapter tensor (their names,
  // lora_A.weight / lora_B.weight, are neither biases nor norms).
  std::vector<ParamRange> decay_ranges() const;

  // forward_backward / evaluate_loss on this target. `dropout_seed` varies LoRA's dropout masks
  // per micro-batch (the trainer derives it from the seed and the step).
  float forward_backward(const TrainBatch& b, std::vector<float>& grads, TrainWorkspace& ws, float grad_scale,
                         uint64_t dropout_seed) const;
  float evaluate_loss(const TrainBatch& b, TrainWorkspace& ws) const;

  // Resumes from a checkpoint of this kind (full or LoRA, same shape); the moments and state.
  LoadedCheckpoint load_checkpoint(const std::filesystem::path& dir);
  // Points the checkpoint options at the adapter (LoRA); no-op for full fine-tuning.
  void prepare_save(CheckpointSaveOptions& so) const { so.lora = adapter_.get(); }
  // The final model into `dir`: save_pretrained, or the PEFT adapter files.
  void save_final(const std::filesystem::path& dir) const;
  // "124,439,808 parameters" or "LoRA r 8 (lora_alpha 16) on q_proj, v_proj: 1,835,008 trainable
  // of 6,050,882,784 (0.03 %), base in bfloat16".
  std::string describe() const;

 private:
  const ModelConfig& mc_;
  ModelWeights weights_;
  std::unique_ptr<LoraAdapter> adapter_;
  kernels::WeightType base_type_ = kernels::WeightType::F32;
  TrainOptions options_;
};

}  // namespace lmforge
