#pragma once
// lmforge serve: an OpenAI-compatible completion server (docs/SERVE.md). The Server owns the HTTP
// listener, the models and the engine that runs requests; the CLI front-end (src/cli/serve.cpp)
// loads the models and handles signals.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "lmforge/serve/served_model.h"

namespace lmforge::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0: any free port (bind() returns it)
  std::string api_key;                  // empty: no authentication
  size_t max_queue = 64;                // completion requests waiting beyond the running ones (429 past it)
  // Requests decoded together (continuous batching); 1 runs one request at a time.
  int max_batch = 64;
  int64_t kv_cache_tokens = 0;          // KV-cache positions per model, all requests together; 0: default
  int max_step_tokens = 128;            // prompt tokens a batched step may add to its decode tokens
  size_t max_body_bytes = 1 << 20;      // 413 past it
  double shutdown_grace_seconds = 10;   // shutdown(): how long in-flight requests may take to finish
  // A connection whose client sends nothing (or cannot take a write) for this long is closed:
  // a slow-loris client holds an HTTP thread for at most this long per byte.
  double read_timeout_seconds = 10;
  // A completion not finished this long after it arrived (queueing included) ends with 408
  // request_timeout (streamed: an error event after what was sent). 0: no limit.
  double request_timeout_seconds = 600;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket and starts answering (/health says 503 until ready()). Returns the
  // port. Throws lmforge::Error when the address cannot be bound.
  int start();
  // Adds a model before ready(); the name is what requests put in "model".
  void add_model(ServedModel model);
  // Models are loaded: /health answers 200 and the API routes accept requests.
  void ready();
  // One HTTP exchange without a socket: `request`'s bytes go through the same HTTP parser, routes,
  // auth and error handling as a connection's first request, and the response's bytes come back
  // (the fuzz target fuzz/fuzz_http.cpp; works with or without start()).
  std::string answer_raw(std::string_view request);
  // Stops accepting connections, lets in-flight requests finish for the grace period, then cancels
  // what is left and returns once every thread is done.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmforge::serve
