// generate() and next_token_distribution(): resolve the HF settings, then hand over to a strategy.
#include "lmforge/generate/generate.h"

#include <string>

#include "generate/decoder.h"
#include "generate/plan.h"
#include "generate/processors.h"
#include "generate/scores.h"
#include "generate/strategies.h"
#include "lmforge/error.h"

namespace lmforge {

namespace {
void check_prompts(const std::vector<std::vector<int32_t>>& prompts) {
  if (prompts.empty()) throw Error("generate: no prompt given");
  for (const auto& p : prompts)
    if (p.empty()) throw Error("the prompt is empty: generation needs at least one prompt token");
}
}  // namespace

GenerationOutput generate(const LanguageModel& lm, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& cfg, const GenerationCallbacks& callbacks) {
  check_prompts(prompts);
  const gen::GenerationPlan plan = gen::resolve_plan(cfg, gen::padded_length(prompts));
  gen::check_fits_model(plan, lm, prompts);
  if (plan.cfg.num_beams > 1) return gen::run_beam_search(lm, plan, prompts, callbacks);
  return gen::run_greedy_or_sample(lm, plan, prompts, callbacks);
}

std::vector<float> next_token_distribution(const LanguageModel& lm, const std::vector<int32_t>& prompt,
                                           const GenerationConfig& cfg) {
  check_prompts({prompt});
  // The first step of a sampling run: one new token, do_sample semantics.
  GenerationConfig one = cfg;
  one.do_sample = true;
  one.max_new_tokens = 1;
  one.num_return_sequences = 1;
  one.num_beams = 1;
  const int len = static_cast<int>(prompt.size());
  const gen::GenerationPlan plan = gen::resolve_plan(one, len);
  if (len > lm.max_positions())
    throw Error("the prompt (" + std::to_string(len) + " tokens) is longer than the model's context (" +
                std::to_string(lm.max_positions()) + " positions)");
  const int vocab = lm.vocab_size();
  for (int32_t t : prompt)
    if (t < 0 || t >= vocab)
      throw Error("prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");

  auto session = lm.start(1, len);
  std::vector<int32_t> positions(len);
  for (int i = 0; i < len; ++i) positions[i] = i;
  const std::vector<uint8_t> mask(len, 1);
  std::vector<float> scores(vocab);
  session->forward(len, prompt.data(), positions.data(), mask.data(), scores.data(), false);

  gen::build_logits_processors(plan).apply(prompt, scores.data(), vocab);
  gen::build_logits_warpers(plan).apply(prompt, scores.data(), vocab);
  gen::softmax_inplace(scores.data(), vocab);
  return scores;
}

}  // namespace lmforge
