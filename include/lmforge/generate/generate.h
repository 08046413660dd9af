#pragma once
// model.generate() with HF semantics: greedy, beam search and sampling, built from logits
// processors (processors.h), warpers, a strategy and stopping criteria.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lmforge/generate/generation_config.h"
#include "lmforge/generate/language_model.h"

namespace lmforge {

struct GenerationOutput {
  // batch * num_return_sequences rows, grouped by prompt, prompt included as HF returns them:
  // prompts left-padded with pad_token_id to the longest, finished rows padded with pad_token_id.
  std::vector<std::vector<int32_t>> sequences;
  std::vector<float> sequences_scores;  // beam search only, HF's scores
  // cfg.output_scores with greedy search or sampling (empty otherwise): per row, the log-probability
  // of each generated token under the scores HF returns with output_scores=True, i.e. the logits
  // after the logits processors and (sampling) the warpers: HF compute_transition_scores(sequences,
  // scores, normalize_logits=True), which takes log_softmax over the vocabulary of those scores.
  // One value per token the row generated, up to and including its eos; the pad tokens HF appends
  // to a row that finished before the others have none (their HF values are meaningless).
  std::vector<std::vector<float>> token_logprobs;
  int prompt_length = 0;                // padded prompt length (columns before the first new token)
};

struct GenerationCallbacks {
  // Called once per generated step per row with the raw (unprocessed) next-token logits.
  std::function<void(int step, int row, const float* logits, int vocab)> on_step_logits;
  // Called after each step with the token just chosen for every row (greedy/sampling only; rows that
  // already finished get pad). Used for streaming.
  std::function<void(const std::vector<int32_t>& tokens)> on_tokens;
  // Needed only for stop_strings: turns token ids into text. It is given the last few tokens of a row
  // (prompt and generated tokens, never left padding), like HF's StopStringCriteria which also looks
  // across the prompt boundary.
  std::function<std::string(const std::vector<int32_t>& ids)> decode;
};

// Generates for a batch of unpadded prompts. Validates `cfg` (and the prompts against the model's
// context: lmforge::Error when prompt or max length exceed max_positions()).
GenerationOutput generate(const LanguageModel& lm, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& cfg, const GenerationCallbacks& callbacks = {});

// The probability distribution HF would sample the first new token of `prompt` from: softmax of the
// logits after every processor and warper implied by cfg (with do_sample semantics). Filtered
// entries are exactly 0.
std::vector<float> next_token_distribution(const LanguageModel& lm, const std::vector<int32_t>& prompt,
                                           const GenerationConfig& cfg);

}  // namespace lmforge
