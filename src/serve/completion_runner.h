#pragma once
// Runs one validated completion request through the library: generate() per prompt, OpenAI's stop
// handling, best_of selection, logprobs and echo. This is the unit of work an Engine schedules; a
// continuous batcher would replace it with per-step scheduling but keep its output contract.
#include <functional>

#include "serve/completion_request.h"
#include "serve/completion_result.h"
#include "lmforge/serve/served_model.h"

namespace lmforge::serve {

// Thrown out of a run when `Hooks::cancelled` turns true (client gone, server shutting down).
struct Cancelled {};

struct RunHooks {
  std::function<void(const ChoiceDelta&)> on_delta;  // streaming: text as it becomes final
  std::function<void()> on_step;                      // once per generated token step (metrics)
  std::function<bool()> cancelled;                    // polled every step
};

CompletionResult run_completion(const ServedModel& m, const CompletionRequest& r, const RunHooks& hooks);
// The same with the model steps run by `lm` (the continuous batcher's sessions; m.model's weights).
CompletionResult run_completion(const ServedModel& m, const LanguageModel& lm, const CompletionRequest& r,
                                const RunHooks& hooks);

// The GenerationConfig a request runs with: the folder's defaults (m.defaults) with the request's
// settings over them. OpenAI samples from the whole distribution, so HF's top_k default of 50 is
// off unless the request sets top_k. Without a seed, a fresh random one.
GenerationConfig generation_config_for(const ServedModel& m, const CompletionRequest& r);

// While streaming: how much of `text` can be sent now. Text that may still become a stop string,
// and the bytes of a character the next token completes (decoded as U+FFFD), are held back.
size_t streamable_length(const std::string& text, const std::vector<std::string>& stop);

// log_softmax of the model's raw logits at every position of `ids` (one forward pass): entry i - 1
// is the distribution that predicts ids[i]. Row-major [ids.size() - 1, vocab].
std::vector<float> position_logprobs(const LanguageModel& lm, const std::vector<int32_t>& ids);

}  // namespace lmforge::serve
