#pragma once
// OpenAI JSON for completions: the whole response, and the SSE chunks of a streamed one.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "serve/completion_result.h"

namespace lmforge::serve {

// Fields every response and chunk of one request share.
struct ResponseHeader {
  std::string id;  // "cmpl-..."
  int64_t created = 0;
  std::string model;
};

ResponseHeader new_response_header(const std::string& model);

nlohmann::json logprobs_json(const Logprobs& lp);
nlohmann::json completion_json(const ResponseHeader& h, const CompletionResult& r);
// One SSE event: "data: {chunk}\n\n" with a single choice.
std::string sse_chunk(const ResponseHeader& h, const ChoiceDelta& d);
// stream_options.include_usage: the last chunk before [DONE], with "choices": [] and the usage.
std::string sse_usage_chunk(const ResponseHeader& h, const CompletionResult& r);
inline const std::string kSseDone = "data: [DONE]\n\n";
// An error inside an already started stream (the status line is gone): OpenAI's error object as an event.
std::string sse_error(const nlohmann::json& error_body);

}  // namespace lmforge::serve
