#pragma once
// Writing models back out as HF checkpoint folders (config.json + model.safetensors +
// generation_config.json) that HF's from_pretrained and lmforge both load.
#include <cstdint>
#include <filesystem>
#include <string>

#include "lmforge/model/config.h"
#include "lmforge/model/weights.h"

namespace lmforge {

// config.json text as HF writes it for this architecture.
std::string model_config_json(const ModelConfig& c);

// HF's initialisation in memory, for from-scratch training (random checkpoint folders of any size
// are written by write_random_checkpoint, random_checkpoint.h): N(0, 0.02) matrices (GPT-2's
// residual projections scaled by 1/sqrt(2 n_layer)), zero biases, unit layer-norm gains.
// Deterministic for a seed.
void init_random_weights(const ModelConfig& c, ModelWeights& w, uint64_t seed);

// Writes config.json, generation_config.json and model.safetensors (HF names and layouts, a tied
// head left out as HF does) into `dir`, each file atomically. Tensors keep the type they are held
// in: fp32 for a trained model; a quantized model's matrices as int8 with a "<name>_scale" tensor
// of per-row fp32 scales (and bf16/fp16/fp32 for the ones kept in higher precision), with c's
// quantization_config in config.json.
void save_pretrained(const std::filesystem::path& dir, const ModelConfig& c, const ModelWeights& w);

// Copies the tokenizer files HF reads (vocab.json, merges.txt, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, added_tokens.json) that exist in `from` into
// `to`, each atomically. Throws lmforge::Error naming the file that cannot be copied.
void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

// Writes `text` to `path` atomically: "<path>.tmp", then rename. Throws lmforge::Error naming it.
void write_text_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace lmforge
