// Raw HTTP requests from arbitrary bytes through lmforge serve's whole front (Server::answer_raw):
// cpp-httplib's request parser as the server configures it (body limit, keep-alive), the routes,
// --api_key checks, JSON bodies, and for a well-formed completion the engine itself on the tiny
// GPT-2 (requests are cut at 0.5 s). The server must answer every input (any status) or drop the
// connection; never crash, leak or hang.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "lmforge/generate/generation_config.h"
#include "lmforge/model/model.h"
#include "lmforge/serve/server.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace {
const std::string kModel = LMFORGE_SOURCE_DIR "/tests/data/models/gpt2-tiny";

lmforge::serve::Server& server() {
  static lmforge::serve::Server* s = [] {
    lmforge::serve::ServerOptions o;
    o.api_key = "sk-fuzz";
    o.max_batch = 4;
    o.max_queue = 4;
    o.kv_cache_tokens = 4096;
    o.max_body_bytes = 1 << 16;
    o.request_timeout_seconds = 0.5;
    o.read_timeout_seconds = 0.2;
    auto* server = new lmforge::serve::Server(o);  // never destroyed: the engine's threads live on
    auto model = lmforge::Model::load(kModel);
    const auto& c = model->config();
    lmforge::GenerationConfig defaults = lmforge::generation_defaults(c.eos_token_id, c.bos_token_id, c.pad_token_id, kModel);
    server->add_model({"gpt2-tiny", std::move(model), lmforge::Tokenizer::from_dir(kModel), std::move(defaults), 0});
    server->ready();
    return server;
  }();
  return *s;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string response = server().answer_raw(std::string_view(reinterpret_cast<const char*>(data), size));
  // An answer, when there is one, is an HTTP/1.1 status line.
  if (!response.empty() && response.rfind("HTTP/1.1 ", 0) != 0) __builtin_trap();
  return 0;
}
