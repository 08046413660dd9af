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

// The token `row` gets this step: processors, then (sampling) warpers, then the choice.
int32_t choose_token(const BatchDecoder& dec, int row, const ProcessorChain& processors, const ProcessorChain& warpers,
                     bool do_sample, Sampler& sampler, std::vector<float>& scratch) {
  const int vocab = dec.vocab();
  scratch.assign(dec.logits(row), dec.logits(row) + vocab);
  processors.apply(dec.ids(row), scratch.data(), vocab);
  if (!do_sample) return argmax(scratch.data(), vocab);
  warpers.apply(dec.ids(row), scratch.data(), vocab);
  softmax_inplace(scratch.data(), vocab);
  const int t = sampler.sample(scratch.data(), vocab);
  if (t < 0) throw Error("sampling: every token was filtered out (check --top_k / --top_p / --no_repeat_ngram_size)");
  return t;
}

GenerationOutput collect(const BatchDecoder& dec, int prompt_length) {
  GenerationOutput out;
  out.prompt_length = prompt_length;
  for (int r = 0; r < dec.rows(); ++r) out.sequences.push_back(dec.ids(r));
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
  std::vector<float> scratch;

  dec.prefill();
  for (int step = 0;; ++step) {
    for (int r = 0; r < rows; ++r) {
      if (callbacks.on_step_logits) callbacks.on_step_logits(step, r, dec.logits(r), dec.vocab());
      tokens[r] = (pad_finished && !unfinished[r])
                      ? *plan.pad
                      : choose_token(dec, r, processors, warpers, cfg.do_sample, sampler, scratch);
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
  return collect(dec, plan.prompt_length);
}

}  // namespace lmforge::gen
