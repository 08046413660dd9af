#pragma once
// A GPT-2 or GPT-J causal LM loaded from an HF checkpoint folder, weights in our own layout.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/generate/language_model.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/config.h"

namespace lmforge {

struct ModelWeights;  // model/weights.h
struct Rope;          // GPT-J rotary tables

class Model : public LanguageModel {
 public:
  // Reads config.json and the weights (any format Checkpoint::open reads) from `dir`. `dtype`:
  // how the weight matrices are held for inference, whatever the checkpoint stores (float32 is
  // HF's default and what parity is checked in; bfloat16 / float16 halve the memory traffic; int8
  // quarters it, per-row symmetric); biases, norms and activations stay fp32.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir,
                                     kernels::WeightType dtype = kernels::WeightType::F32);
  ~Model() override;

  const ModelConfig& config() const { return config_; }
  int vocab_size() const override { return config_.vocab_size; }
  int max_positions() const override { return config_.n_positions; }
  std::unique_ptr<LanguageModelSession> start(int rows, int capacity) const override;

  // Logits of one unpadded sequence, all positions: [T, vocab] (positions 0..T-1, no mask).
  std::vector<float> logits(const std::vector<int32_t>& ids) const;

  const ModelWeights& weights() const { return *weights_; }

 private:
  Model(ModelConfig cfg, std::unique_ptr<ModelWeights> w);
  ModelConfig config_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Rope> rope_;
};

}  // namespace lmforge
