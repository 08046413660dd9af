#pragma once
// HF GenerationConfig: the arguments of model.generate(), with HF's names and defaults.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmforge::structured {
class TokenConstraint;
}

namespace lmforge {

enum class EarlyStopping { False, True, Never };

struct GenerationConfig {
  // Length. HF: max_new_tokens wins over max_length when both are set.
  std::optional<int> max_length;      // HF default 20 (prompt included) when neither is set
  std::optional<int> max_new_tokens;
  int min_length = 0;                 // prompt included
  std::optional<int> min_new_tokens;

  // Strategy
  bool do_sample = false;
  int num_beams = 1;
  int num_return_sequences = 1;
  float length_penalty = 1.0f;
  EarlyStopping early_stopping = EarlyStopping::False;

  // Processors / warpers
  float temperature = 1.0f;
  int top_k = 50;       // HF default; 0 disables
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  int no_repeat_ngram_size = 0;
  // OpenAI's penalties (lmforge serve; HF has no such processors): for every token already generated
  // (prompt excluded) logit -= count * frequency_penalty + presence_penalty. 0 disables.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // OpenAI logit_bias: (token id, bias) added to that token's logit at every step.
  std::vector<std::pair<int32_t, float>> logit_bias;

  // Special tokens
  std::vector<int32_t> eos_token_id;  // any of them ends a sequence
  std::optional<int32_t> pad_token_id;
  std::optional<int32_t> bos_token_id;

  // Stop strings (HF StopStringCriteria): a row ends when its newest token completes one of them; the
  // match may begin in earlier tokens (even the prompt) and the token may run past the string's end.
  std::vector<std::string> stop_strings;

  std::optional<uint64_t> seed;  // sampling RNG seed

  // Structured output (docs/STRUCTURED.md): a compiled regex / grammar / JSON Schema over the
  // tokenizer's vocabulary (structured::compile_constraint). Each generated token must keep the
  // output a prefix of its language; eos is allowed exactly when the output is complete. Shared,
  // so copies of the config are cheap; null: unconstrained. Needs an eos token.
  std::shared_ptr<const structured::TokenConstraint> constraint;

  // HF output_scores: greedy search and sampling also return GenerationOutput::token_logprobs.
  // Not read from generation_config.json (it changes what generate() returns, not which tokens).
  bool output_scores = false;

  // Throws lmforge::Error naming the flag (HF name, e.g. "--top_p") for impossible values:
  // temperature <= 0 with do_sample, top_p outside (0, 1], top_k < 0, num_beams < 1,
  // num_return_sequences > num_beams (beam search) or < 1, repetition_penalty <= 0, a constraint
  // without an eos token, ...
  void validate() const;
};

// Applies the keys of a generation_config.json (HF format) over `cfg`. Unknown keys are ignored
// (HF writes many we do not use); wrong types throw lmforge::Error naming the file and key.
void apply_generation_config_file(const std::filesystem::path& file, GenerationConfig& cfg);
// The same for keys already parsed (e.g. from a YAML file): `where` names their source in errors.
void apply_generation_config_json(const nlohmann::json& keys, const std::string& where, GenerationConfig& cfg);

// HF's starting point for generate(): the model config's special token ids, then the keys of
// `model_dir`/generation_config.json when the folder has one.
GenerationConfig generation_defaults(std::optional<int> eos_token_id, std::optional<int> bos_token_id,
                                     std::optional<int> pad_token_id, const std::filesystem::path& model_dir);

}  // namespace lmforge
