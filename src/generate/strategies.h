#pragma once
// Decoding strategies (HF's _sample and _beam_search). Each takes a resolved plan and the unpadded
// prompts and returns generate()'s output.
#include <cstdint>
#include <vector>

#include "generate/plan.h"
#include "lmforge/generate/generate.h"

namespace lmforge::gen {

// Greedy search or multinomial sampling (plan.cfg.do_sample), num_return_sequences rows per prompt.
GenerationOutput run_greedy_or_sample(const LanguageModel& lm, const GenerationPlan& plan,
                                      const std::vector<std::vector<int32_t>>& prompts,
                                      const GenerationCallbacks& callbacks);

// Beam search (or beam sampling with do_sample), num_beams rows per prompt.
GenerationOutput run_beam_search(const LanguageModel& lm, const GenerationPlan& plan,
                                 const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerationCallbacks& callbacks);

}  // namespace lmforge::gen
