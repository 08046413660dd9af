#pragma once
// POST /v1/completions: the JSON body parsed and validated into a CompletionRequest. Every problem is
// an ApiError(400) naming the field, before any model work is queued. Unknown fields are ignored, as
// OpenAI's API does.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmforge/generate/generation_config.h"

namespace lmforge {
class Tokenizer;
}
namespace lmforge::structured {
class TokenConstraint;
}

namespace lmforge::serve {

// Bounds that are server policy rather than OpenAI's: n and best_of past these would tie the single
// worker up for every other client.
inline constexpr int kMaxChoices = 16;
inline constexpr int kMaxStops = 4;
inline constexpr int kMaxLogprobs = 5;
inline constexpr int kMaxPrompts = 256;  // prompts in one request (each runs in turn on the worker)

struct CompletionRequest {
  std::string model;                         // empty: not given
  std::vector<std::vector<int32_t>> prompts;  // tokenized; one entry per prompt of the request
  int max_tokens = 16;
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;
  int n = 1, best_of = 1;
  bool stream = false, echo = false;
  bool stream_usage = false;  // stream_options.include_usage: a last chunk with usage and no choices
  std::optional<int> logprobs;  // 0..5 top alternatives per token; nullopt: no logprobs object
  std::vector<std::string> stop;
  float presence_penalty = 0, frequency_penalty = 0;
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::optional<uint64_t> seed;
  // HF-named extensions
  std::optional<int> top_k, no_repeat_ngram_size, min_tokens, num_beams;
  std::optional<float> repetition_penalty, length_penalty;
  std::optional<EarlyStopping> early_stopping;
  bool use_beam_search = false;
  // Structured output (docs/STRUCTURED.md): response_format {"type": "json_object"} or
  // {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}, or the extensions "regex"
  // (a string) and "grammar" (GBNF text), compiled over the model's vocabulary while parsing (a bad
  // one is a 400). Null: unconstrained.
  std::shared_ptr<const structured::TokenConstraint> constraint;

  bool beam_search() const { return use_beam_search || num_beams.value_or(1) > 1; }
};

// Reads the body's "model" only (routing happens before the rest is parsed with the model's tokenizer).
std::string requested_model(const nlohmann::json& body);

// Parses and validates the body. `vocab` bounds token ids; `max_positions` is the model's context:
// a prompt whose length plus max_tokens exceeds it is refused as OpenAI does. An empty prompt starts
// from `start_token` (the model's bos, as OpenAI starts "" from <|endoftext|> and HF generate() from
// bos_token_id); without one it is refused. `raw_body`, the text `body` was parsed from, when given,
// is where a json_schema's key order is read (nlohmann::json sorts keys).
CompletionRequest parse_completion_request(const nlohmann::json& body, const Tokenizer& tokenizer, int vocab,
                                           int max_positions, std::optional<int32_t> start_token,
                                           const std::string& raw_body = "");

// Copies the request's structured-output constraint into the generation settings.
void apply_structured_output(const CompletionRequest& r, GenerationConfig& g);

// {"prompt": ...} of /v1/completions and /tokenize: a string, an array of strings, a token array or an
// array of token arrays, as token lists. `field` names the key in errors.
std::vector<std::vector<int32_t>> parse_prompts(const nlohmann::json& value, const Tokenizer& tokenizer, int vocab,
                                                const std::string& field);

}  // namespace lmforge::serve
