#pragma once
// A GPT-2 or GPT-J causal LM loaded from an HF checkpoint folder, weights in our own layout.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/generate/language_model.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/config.h"

namespace lmforge {

struct ModelWeights;  // model/weights.h
struct MatrixTypes;   // model/weights.h
struct BlockWeights;  // model/weights.h
struct LoraAdapter;   // model/lora.h
struct Rope;          // GPT-J rotary tables

class Model : public LanguageModel {
 public:
  // Reads config.json and the weights (any format Checkpoint::open reads) from `dir`. `dtype`:
  // how the weight matrices are held for inference, whatever the checkpoint stores (float32 is
  // HF's default and what parity is checked in; bfloat16 / float16 halve the memory traffic; int8
  // quarters it, per-row symmetric, weight-only or with dynamic int8 activations); biases, norms
  // and the rest of the activations stay fp32. Without a dtype the matrices stay as the folder
  // stores them: a folder written by `lmforge quantize` loads with its plan (int8, and the layers
  // its accuracy check kept in higher precision), any other folder in float32.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir,
                                     std::optional<kernels::WeightType> dtype = std::nullopt);
  // Each matrix in the type `types` gives it.
  static std::unique_ptr<Model> load_with_types(const std::filesystem::path& dir, const MatrixTypes& types);
  // A model over weights already in memory (allocate_weights / convert_weights layout for cfg).
  static std::unique_ptr<Model> from_weights(ModelConfig cfg, ModelWeights w);
  ~Model() override;

  const ModelConfig& config() const { return config_; }
  int vocab_size() const override { return config_.vocab_size; }
  int max_positions() const override { return config_.n_positions; }
  std::unique_ptr<LanguageModelSession> start(int rows, int capacity) const override;

  // Logits of one unpadded sequence, all positions: [T, vocab] (positions 0..T-1, no mask).
  std::vector<float> logits(const std::vector<int32_t>& ids) const;

  // The base weights (without any adapter).
  const ModelWeights& weights() const { return *weights_; }
  // Block `l`'s weights as the forward pass uses them (with the adapter's views when there is one).
  const BlockWeights& block(int l) const;

  // This model with a LoRA adapter (model/lora.h) applied unmerged on top: the new model shares
  // this one's base weights (no copy), so several adapters can run over one base in memory.
  // Throws lmforge::Error when this model already has an adapter.
  std::unique_ptr<Model> with_adapter(std::shared_ptr<const LoraAdapter> adapter) const;
  const LoraAdapter* adapter() const { return adapter_.get(); }
  // GPT-J's rotary tables (nullptr for GPT-2).
  const Rope* rope() const { return rope_.get(); }

 private:
  Model(ModelConfig cfg, std::shared_ptr<const ModelWeights> w);
  // The weights of `dir` (config already read) in `types`.
  static std::unique_ptr<Model> load_folder(const std::filesystem::path& dir, ModelConfig cfg, const MatrixTypes& types);
  ModelConfig config_;
  std::shared_ptr<const ModelWeights> weights_;
  std::shared_ptr<const LoraAdapter> adapter_;
  std::vector<BlockWeights> blocks_;  // with an adapter: weights_'s blocks plus its views
  std::unique_ptr<Rope> rope_;
};

}  // namespace lmforge
