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

  const ModelWeights& weights() const { return *weights_; }

 private:
  Model(ModelConfig cfg, std::unique_ptr<ModelWeights> w);
  // The weights of `dir` (config already read) in `types`.
  static std::unique_ptr<Model> load_folder(const std::filesystem::path& dir, ModelConfig cfg, const MatrixTypes& types);
  ModelConfig config_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Rope> rope_;
};

}  // namespace lmforge
