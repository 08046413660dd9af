// The body of POST /v1/completions from arbitrary bytes, through what lmforge serve runs before a
// request reaches the engine: JSON parsing (as the route does), routing by "model", the parser and
// validator (parse_completion_request: prompts as text or token ids, sampling and beam fields,
// stop, logit_bias, response_format / regex / grammar compiled over GPT-2's vocabulary), then the
// generation settings the engine derives (generation_config_for + validate). A bad body must end as
// an ApiError (a 4xx answer) or an lmforge::Error (which the engine answers with a 400); anything else
// would be a 500 or a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/generate/generation_config.h"
#include "lmforge/serve/served_model.h"
#include "serve/api_error.h"
#include "serve/completion_request.h"
#include "serve/completion_runner.h"

namespace {
// GPT-2's tokenizer and generation defaults; no weights (nothing here runs the model).
const lmforge::serve::ServedModel& served() {
  static const lmforge::serve::ServedModel m{"gpt2", nullptr,
                                             lmforge::Tokenizer::from_dir(LMFORGE_SOURCE_DIR "/tests/data/tokenizer"),
                                             lmforge::generation_defaults(50256, 50256, std::nullopt, ""), 0};
  return m;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string raw(reinterpret_cast<const char*>(data), size);
  const nlohmann::json body = nlohmann::json::parse(raw, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return 0;  // the route's 400 before any of our code
  const auto& m = served();
  try {
    (void)lmforge::serve::requested_model(body);
    const auto r = lmforge::serve::parse_completion_request(body, m.tokenizer, 50257, 1024, 50256, raw);
    lmforge::GenerationConfig g = lmforge::serve::generation_config_for(m, r);
    g.validate();
  } catch (const lmforge::serve::ApiError&) {
  } catch (const lmforge::Error&) {
  }
  return 0;
}
