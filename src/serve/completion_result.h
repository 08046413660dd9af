#pragma once
// What running a completion produces, before it is rendered as OpenAI JSON (completion_response.h).
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lmforge::serve {

// OpenAI's logprobs object, one entry per returned token (echoed prompt tokens first).
struct Logprobs {
  std::vector<std::string> tokens;
  std::vector<std::optional<float>> token_logprobs;  // nullopt: the first prompt token (no context)
  // per token: the `logprobs` most likely alternatives (token text, log-prob); nullopt as above
  std::vector<std::optional<std::vector<std::pair<std::string, float>>>> top_logprobs;
  std::vector<int> text_offset;  // byte offset of each token in prompt text + completion text
};

struct Choice {
  int index = 0;
  std::string text;
  std::optional<Logprobs> logprobs;
  std::string finish_reason;  // "stop" or "length"
};

struct CompletionResult {
  std::vector<Choice> choices;
  int prompt_tokens = 0, completion_tokens = 0;
};

// One streamed piece of a choice's text; the last one of a choice carries its finish_reason.
struct ChoiceDelta {
  int index = 0;
  std::string text;
  std::optional<std::string> finish_reason;
  std::optional<Logprobs> logprobs;  // with "logprobs": the tokens this piece of text completes
};

}  // namespace lmforge::serve
