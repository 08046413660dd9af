#pragma once
// The HF generate() flags (names and meanings verbatim), shared by every subcommand that generates
// (generate, task): one definition, so `task --top_k 5` means what `generate --top_k 5` means.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lmforge/generate/generation_config.h"
#include "lmforge/model/config.h"

namespace lmforge::cli {

struct GenerationFlags {
  std::optional<int> max_length, max_new_tokens, min_length, min_new_tokens, num_beams, num_return_sequences, top_k,
      no_repeat_ngram_size, pad_token_id, bos_token_id;
  std::vector<int> eos_token_id;
  std::optional<float> temperature, top_p, repetition_penalty, length_penalty;
  std::optional<bool> do_sample;
  std::optional<std::string> early_stopping;
  std::vector<std::string> stop_strings;
  std::optional<uint64_t> seed;

  // Adds --max_length ... --seed to `app`. `max_new_tokens_names` lets a subcommand add aliases
  // ("--max_new_tokens,--output_length").
  void add(CLI::App& app, const std::string& max_new_tokens_names = "--max_new_tokens");

  // HF's order for every architecture: GenerationConfig defaults (with config.json's special token
  // ids, as GenerationConfig.from_model_config) -> the folder's generation_config.json -> these
  // flags, each overriding the one before. Validated.
  GenerationConfig build(const ModelConfig& config, const std::string& model_dir) const;
};

}  // namespace lmforge::cli
