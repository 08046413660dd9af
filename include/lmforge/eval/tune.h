#pragma once
// Decoding grid search, seed 001's tune_hyperparameters: for every (top_k, top_p, temperature) of a
// grid, sample continuations of one prompt and score each by its perplexity under the same model.
//
// As the seed, per sample:
//   sequence = model.generate(prompt, do_sample=True, top_k=k, top_p=p, temperature=t, ...)[i]
//   text     = tokenizer.decode(sequence, skip_special_tokens=True)      # prompt + continuation
//   score    = calculate_perplexity(model, text, tokenizer)              # eval::perplexity of
//                                                                        # tokenizer.encode(text)
// i.e. the scored text is the prompt plus the continuation, decoded and re-encoded, scored by the
// model that generated it (eval/perplexity.h: exp of the mean shifted NLL; a text that fits the
// context is one window, exactly the seed's value).
//
// Grid order: the cartesian product with top_k outermost and temperature innermost, each list in
// the order given (the seed's three nested loops). Setting i's samples come from one generate()
// call with num_return_sequences = samples_per_setting, all with the same seed, so a setting's
// samples do not depend on which other settings are in the grid (common random numbers).
//
// A setting's perplexity is the mean of its samples' perplexities (each sample scored as the seed
// scores its single sample; with samples_per_setting = 1 it is the seed's number). The pooled,
// token-weighted exp(total NLL / total tokens) is reported as pooled_perplexity. A sample whose
// text has fewer than 2 tokens cannot be scored (the seed skips such a setting): it is left out of
// both; a setting with no scored sample has perplexity NaN and is never the best.
// The best setting is the lowest perplexity; ties go to the earlier setting in grid order.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/eval/perplexity.h"  // also declares LanguageModel and Tokenizer
#include "lmforge/generate/generation_config.h"

namespace lmforge::eval {

struct TuneGrid {
  std::vector<int> top_k = {0, 25, 50};             // seed 001's search space
  std::vector<float> top_p = {0.8f, 0.9f, 0.95f};
  std::vector<float> temperature = {0.7f, 0.8f, 1.0f};
};

struct TuneSetting {
  int top_k = 0;
  float top_p = 1.0f;
  float temperature = 1.0f;
};

// The grid's settings in grid order (top_k outer, top_p, temperature inner).
std::vector<TuneSetting> grid_settings(const TuneGrid& grid);

struct TuneOptions {
  // Everything generate() needs besides the grid: special ids, lengths, seed, processors. Its
  // do_sample, top_k, top_p, temperature and num_return_sequences are replaced per setting.
  GenerationConfig generation;
  int samples_per_setting = 1;
  PerplexityOptions perplexity;  // scoring window (default: the model's context, one window)
  std::optional<bool> clean_up_tokenization_spaces;  // decode; nullopt = the tokenizer's default
};

struct TuneSample {
  std::vector<int32_t> sequence;  // prompt + generated ids, cut after the first EOS (no padding)
  std::string continuation;       // decode(generated ids, skip_special_tokens)
  std::string text;               // decode(sequence, skip_special_tokens): the scored text
  int64_t tokens = 0;             // scored tokens of `text` (0: fewer than 2 tokens, not scored)
  double nll_sum = 0;             // their summed NLL
  double perplexity = 0;          // NaN when not scored
};

struct TuneResult {
  TuneSetting setting;
  std::vector<TuneSample> samples;
  double perplexity = 0;         // mean of the scored samples' perplexities; NaN when none
  double pooled_perplexity = 0;  // exp(sum of their NLL / sum of their tokens); NaN when none
  int scored = 0;                // samples with a perplexity
};

struct TuneReport {
  std::vector<TuneResult> results;  // grid order
  std::optional<size_t> best;       // index into results; nullopt when no setting was scored
};

// The checks of the grid alone (no model needed): every list non-empty, each setting valid for
// sampling (top_k >= 0, top_p in (0, 1], temperature > 0: GenerationConfig::validate's messages),
// samples_per_setting >= 1. Throws lmforge::Error naming the flag.
void check_grid(const TuneGrid& grid, int samples_per_setting);

// Runs the grid. Everything is checked before the first generate() call: every list non-empty,
// each setting valid for sampling (top_k >= 0, top_p in (0, 1], temperature > 0: the
// GenerationConfig::validate messages), samples_per_setting >= 1, the prompt non-empty and
// prompt + max length within the model's context. Throws lmforge::Error naming the flag.
// `on_result` (optional) is called after each setting, with its index and the grid size.
TuneReport tune(const LanguageModel& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt_ids,
                const TuneGrid& grid, const TuneOptions& options,
                const std::function<void(size_t index, size_t total, const TuneResult&)>& on_result = {});

// The best setting as a `lmforge synth --model_config` YAML: `model: {path: ...}`, `do_sample:
// true`, `top_k`, `top_p`, `temperature` (floats in their shortest round-trip form, e.g. 0.95),
// after a comment block with `comment` (one line per '\n'-separated line), and `prefix: "..."` when
// `prefix` (the one the samples were prompted with) is not empty, so synth prompts the same way.
std::string synth_yaml(const TuneSetting& best, const std::string& model_path, const std::string& comment = "",
                       const std::string& prefix = "");

// The value as written in a table or YAML: the shortest form that reads back as the same float,
// with ".0" added to a whole number (0.95 -> "0.95", 1 -> "1.0").
std::string format_float(float v);

}  // namespace lmforge::eval
