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

// log_softmax of the model's raw logits at every position of `ids` (one forward pass): entry i - 1
// is the distribution that predicts ids[i]. Row-major [ids.size() - 1, vocab].
std::vector<float> position_logprobs(const LanguageModel& lm, const std::vector<int32_t>& ids);

}  // namespace lmforge::serve
