#pragma once
// What generate() settles before decoding, the way HF's generate() does in _prepare_special_tokens
// and _prepare_generated_length: the pad token, the eos set, and the absolute min/max lengths
// (prompt included) measured on the left-padded batch.
#include <cstdint>
#include <optional>
#include <vector>

#include "lmforge/generate/generation_config.h"
#include "lmforge/generate/language_model.h"

namespace lmforge::gen {

struct GenerationPlan {
  GenerationConfig cfg;      // validated copy of the user's config
  int prompt_length = 0;     // columns of the left-padded prompt (HF input_ids.shape[-1])
  int max_length = 0;        // HF generation_config.max_length after max_new_tokens is applied
  int min_length = 0;        // HF generation_config.min_length after min_new_tokens is applied
  std::optional<int32_t> pad;  // pad_token_id, or eos[0] when unset (HF warns and does this)
  double length_penalty = 1.0;  // cfg.length_penalty as the decimal the user wrote (see decimal_value)
  double top_p = 1.0;           // same for top_p

  const std::vector<int32_t>& eos() const { return cfg.eos_token_id; }
  bool has_eos() const { return !cfg.eos_token_id.empty(); }
  bool is_eos(int32_t t) const;
  // The pad token; throws lmforge::Error when there is none but one is needed.
  int32_t pad_token() const;
};

// Validates `cfg` and resolves lengths and special tokens for a padded prompt of `prompt_length`
// columns. Throws lmforge::Error when max_length leaves no room for a new token.
GenerationPlan resolve_plan(const GenerationConfig& cfg, int prompt_length);

// Throws lmforge::Error (naming the flag that set the length) when the plan's sequences do not fit
// the model's context, or when a token id is outside the vocabulary.
void check_fits_model(const GenerationPlan& plan, const LanguageModel& lm,
                      const std::vector<std::vector<int32_t>>& prompts);

// HF computes with Python doubles (length penalty exponent, 1 - top_p), while our config stores
// floats. The float was parsed from a short decimal, so the shortest decimal that round-trips to it
// recovers the double HF saw (0.7f -> 0.7, not 0.699999988).
double decimal_value(float v);

}  // namespace lmforge::gen
