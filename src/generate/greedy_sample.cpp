// HF _sample: one token per row per step, from argmax (greedy) or a draw from the warped
// distribution (do_sample). Rows that finished on an eos keep receiving pad_token_id until every row
// is finished or max_length is reached.
#include <algorithm>
#include <vector>

#include "generate/decoder.h"
#include "generate/processors.h"
#include "generate/sampler.h"
#include "generate/scores.h"
#include "generate/stopping.h"
#include "generate/strategies.h"
#include "lmforge/error.h"

namespace lmforge::gen {

namespace {

struct Choice {
  int32_t token;
  float logprob;  // only when asked for
};

// The token `row` gets this step: processors, then (sampling) warpers, then the choice. With
// `logprob`, also the token's log_softmax under those processed scores (what HF's
// compute_transition_scores with normalize_logits=True gives for it), from a copy made before
// sampling turns the scores into probabilities.
Choice choose_token(const BatchDecoder& dec, int row, const ProcessorChain& processors, const ProcessorChain& warpers,
                    bool do_sample, bool logprob, Sampler& sampler, std::vector<float>& scratch,
                    std::vector<float>& processed) {
  const int vocab = dec.vocab();
  scratch.assign(dec.logits(row), dec.logits(row) + vocab);
  processors.apply(dec.ids(row), scratch.data(), vocab);
  if (do_sample) warpers.apply(dec.ids(row), scratch.data(), vocab);
  if (logprob) processed = scratch;
  int t;
  if (!do_sample) {
    t = argmax(scratch.data(), vocab);
  } else {
    softmax_inplace(scratch.data(), vocab);
    t = sampler.sample(scratch.data(), vocab);
    if (t < 0) throw Error("sampling: every token was filtered out (check --top_k / --top_p / --no_repeat_ngram_size)");
  }
  return {t, logprob ? log_softmax_at(processed.data(), vocab, t) : 0.0f};
}

GenerationOutput collect(const BatchDecoder& dec, int prompt_length, std::vector<std::vector<float>> logprobs) {
  GenerationOutput out;
  out.prompt_length = prompt_length;
  for (int r = 0; r < dec.rows(); ++r) out.sequences.push_back(dec.ids(r));
  out.token_logprobs = std::move(logprobs);
  return out;
}

}  // namespace

GenerationOutput run_greedy_or_sample(const LanguageModel& lm, const GenerationPlan& plan,
                                      const std::vector<std::vector<int32_t>>& prompts,
                                      const GenerationCallbacks& callbacks) {
  const GenerationConfig& cfg = plan.cfg;
  BatchDecoder dec(lm, left_pad(prompts, prompt_pad_token(plan, prompts), cfg.num_return_sequences), plan.max_length);
  const ProcessorChain processors = build_logits_processors(plan);
  const ProcessorChain warpers = build_logits_warpers(plan);
  const StoppingCriteria stopping(plan, callbacks.decode);
  Sampler sampler(cfg.seed);

  const int rows = dec.rows();
  // HF pads finished rows only when an eos criterion exists; a row stopped by a stop string alone
  // keeps generating real tokens while other rows continue.
  const bool pad_finished = plan.has_eos();
  std::vector<bool> unfinished(rows, true);
  std::vector<int32_t> tokens(rows);
  std::vector<float> scratch, processed;
  std::vector<std::vector<float>> logprobs(cfg.output_scores ? rows : 0);

  dec.prefill();
  for (int step = 0;; ++step) {
    for (int r = 0; r < rows; ++r) {
      if (callbacks.on_step_logits) callbacks.on_step_logits(step, r, dec.logits(r), dec.vocab());
      if (pad_finished && !unfinished[r]) {
        tokens[r] = *plan.pad;
        continue;
      }
      const Choice c = choose_token(dec, r, processors, warpers, cfg.do_sample, cfg.output_scores, sampler, scratch,
                                    processed);
      tokens[r] = c.token;
      if (cfg.output_scores) logprobs[r].push_back(c.logprob);
    }
    dec.append(tokens);
    if (callbacks.on_tokens) callbacks.on_tokens(tokens);
    bool any_left = false;
    for (int r = 0; r < rows; ++r) {
      if (unfinished[r] && stopping.done(dec.ids(r), dec.pad_count(r))) unfinished[r] = false;
      any_left = any_left || unfinished[r];
    }
    if (!any_left) break;
    dec.forward_last();
  }
  return collect(dec, plan.prompt_length, std::move(logprobs));
}

}  // namespace lmforge::gen
