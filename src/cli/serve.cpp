// lmforge serve: the OpenAI-compatible completion server (docs/SERVE.md). This front-end parses the
// flags, loads the models while /health says 503, prints the one "listening" line once /health
// answers 200, and turns SIGTERM/SIGINT into a graceful shutdown (exit 0).
#include <httplib.h>

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <thread>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/usage.h"
#include "lmforge/error.h"
#include "lmforge/model/lora.h"
#include "lmforge/serve/server.h"

namespace lmforge::cli {
namespace {

struct Args {
  std::vector<std::string> models, adapters;
  std::string host = "127.0.0.1", api_key, api_key_file, dtype = "auto";
  int port = 8080, threads = 0;
  size_t max_queue = 64, max_body_bytes = 1 << 20;
  int max_batch = 64, max_step_tokens = 128;
  int64_t kv_cache_tokens = 0;
  double shutdown_grace = 10, read_timeout = 10, request_timeout = 600;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.models,
                 "Model folder to serve (named by its folder name), or NAME=DIR; repeat to serve several")
      ->required()
      ->allow_extra_args(false);  // one folder per --model
  app.add_option("--adapter", args.adapters,
                 "PEFT LoRA adapter folder served as its own model, NAME=DIR (or DIR, named by its folder): applied "
                 "unmerged over the served --model its adapter_config.json names as base_model_name_or_path (or "
                 "the only --model), sharing its weights; repeat for several")
      ->allow_extra_args(false);
  app.add_option("--host", args.host, "Address to listen on (default 127.0.0.1)");
  app.add_option("--port", args.port, "Port (default 8080; 0 picks a free one, printed in the listening line)");
  auto* key = app.add_option("--api_key", args.api_key, "Require 'Authorization: Bearer KEY' on every route but /health");
  app.add_option("--api_key_file", args.api_key_file, "Read the API key from this file (first line)")->excludes(key);
  app.add_option("--max_queue", args.max_queue, "Completion requests that may wait for the engine (default 64; 429 past it)");
  app.add_option("--max_batch", args.max_batch,
                 "Requests decoded together: continuous batching, new requests join the running batch at the next "
                 "step (default 64; 1 runs one request at a time)")
      ->check(CLI::PositiveNumber);
  app.add_option("--kv_cache_tokens", args.kv_cache_tokens,
                 "KV-cache positions per model, shared by the running requests in blocks of 16; a request takes "
                 "rows x (prompt + max_tokens) of them while it runs (default: 4 GiB of keys and values, at least one "
                 "context, at most --max_batch contexts)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max_step_tokens", args.max_step_tokens,
                 "Prompt tokens a batched step adds to its decode tokens: longer prompts go in chunks while the "
                 "running streams keep decoding (default 128)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max_body_bytes", args.max_body_bytes, "Largest request body (default 1048576; 413 past it)");
  app.add_option("--shutdown_grace", args.shutdown_grace,
                 "Seconds in-flight requests get to finish after SIGTERM (default 10)");
  app.add_option("--read_timeout", args.read_timeout,
                 "Seconds a connection may stay silent while the server reads a request, or stall a write, "
                 "before it is closed (default 10; bounds slow clients)")
      ->check(CLI::PositiveNumber);
  app.add_option("--request_timeout", args.request_timeout,
                 "Seconds a completion may take from arrival (queueing included) before it ends with 408 "
                 "request_timeout (default 600; 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", args.threads, "Compute threads (default: all cores)");
  add_dtype_option(app, args.dtype);
  app.footer(
      "Routes: POST /v1/completions (OpenAI completions: prompt, max_tokens, temperature, top_p, n, best_of, stream, "
      "logprobs, echo, stop, presence_penalty, frequency_penalty, logit_bias, seed; HF extensions top_k, "
      "repetition_penalty, no_repeat_ngram_size, min_tokens, num_beams, length_penalty, early_stopping), GET /v1/models, "
      "GET /health, GET /metrics, POST /tokenize, POST /detokenize. Prints 'lmforge serve: listening on "
      "http://HOST:PORT' once ready; SIGTERM finishes the requests in flight and exits 0. See docs/SERVE.md.");
  // The shared --model check (usage.cpp) resolves each value as a folder while parsing and records a
  // pending error for "NAME=DIR", which it does not know. Serve resolves its models itself in run()
  // (load_model gives the same message for a missing folder), so that pending error is dropped here.
  app.parse_complete_callback([] { pending_model_error().clear(); });
}

// "NAME=DIR" or "DIR" (named by the folder's name, trailing slashes ignored).
std::pair<std::string, std::string> name_and_dir(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq != std::string::npos && eq > 0) return {spec.substr(0, eq), spec.substr(eq + 1)};
  std::filesystem::path p(spec);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();
  return {p.filename().string(), spec};
}

serve::ServedModel load_served(const std::string& name, const std::string& dir, std::unique_ptr<Model> model,
                               const std::string& spec);

serve::ServedModel load(const std::string& spec) {
  auto [name, dir] = name_and_dir(spec);
  return load_served(name, dir, load_model(dir, args.dtype), spec);
}

// A served model: `model` with the tokenizer and generation defaults of folder `dir`.
serve::ServedModel load_served(const std::string& name, const std::string& dir, std::unique_ptr<Model> model,
                               const std::string& spec) {
  auto tok = load_tokenizer_for_model(dir, model->vocab_size());
  if (!tok) throw Error("--model " + spec + ": the folder has no tokenizer (vocab.json + merges.txt or tokenizer.json)");
  const ModelConfig& c = model->config();
  GenerationConfig defaults = generation_defaults(c.eos_token_id, c.bos_token_id, c.pad_token_id, dir);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  return serve::ServedModel{name, std::move(model), std::move(*tok), std::move(defaults), now};
}

std::string read_key_file(const std::string& path) {
  std::ifstream in(path);
  std::string key;
  if (!in || !std::getline(in, key)) throw Error("--api_key_file: cannot read '" + path + "'");
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (key.empty()) throw Error("--api_key_file: '" + path + "' has an empty first line");
  return key;
}

// Our own GET /health until it answers 200: the listening line promises a server that is up.
void wait_until_healthy(const std::string& host, int port) {
  httplib::Client client(host == "0.0.0.0" ? "127.0.0.1" : host, port);
  for (int i = 0; i < 200; ++i) {
    if (auto r = client.Get("/health"); r && r->status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  throw Error("serve: the server does not answer its own /health");
}

// The served --model an adapter goes over: the one its base_model_name_or_path names (by folder or
// by served name), else the only one.
size_t base_of(const std::string& spec, const std::string& base_name, const std::vector<serve::ServedModel>& served,
               const std::vector<std::string>& dirs, size_t bases) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (size_t i = 0; i < bases; ++i)
    if (served[i].name == base_name || (fs::exists(base_name, ec) && fs::equivalent(base_name, dirs[i], ec)))
      return i;
  if (bases == 1) return 0;
  throw Error("--adapter " + spec + ": its base_model_name_or_path '" + base_name +
              "' is none of the served --model folders or names; serve its base with --model");
}

serve::ServedModel load_adapter(const std::string& spec, const std::vector<serve::ServedModel>& served,
                                const std::vector<std::string>& dirs, size_t bases) {
  auto [name, dir] = name_and_dir(spec);
  if (!std::filesystem::is_directory(dir)) throw Error("--adapter " + spec + ": '" + dir + "' is not a folder");
  const size_t b = base_of(spec, read_lora_config(dir).base_model_name_or_path, served, dirs, bases);
  const Model& base = *served[b].model;
  auto adapter = std::make_shared<LoraAdapter>(load_lora_adapter(dir, base.config()));
  return load_served(name, dirs[b], base.with_adapter(std::move(adapter)), spec);
}

int run() {
  // Block the stop signals in every thread (threads inherit this mask) and wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the server

  apply_threads(args.threads);
  serve::ServerOptions o;
  o.host = args.host;
  o.port = args.port;
  o.api_key = args.api_key_file.empty() ? args.api_key : read_key_file(args.api_key_file);
  o.max_queue = args.max_queue;
  o.max_batch = args.max_batch;
  o.kv_cache_tokens = args.kv_cache_tokens;
  o.max_step_tokens = args.max_step_tokens;
  o.max_body_bytes = args.max_body_bytes;
  o.shutdown_grace_seconds = args.shutdown_grace;
  o.read_timeout_seconds = args.read_timeout;
  o.request_timeout_seconds = args.request_timeout;
  // The stop signals are taken by this thread from the start: a SIGTERM while the models load
  // (minutes for a large one) ends the process then, not once loading is over. Nothing is written
  // and no request can be in flight before ready(), so there is nothing to finish. Detached: an
  // error return from run() must not wait for a signal (and so the state it shares is static:
  // it outlives run()).
  static std::atomic<bool> serving{false};
  static std::promise<int> stop;
  std::thread([stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    if (!serving) {
      const std::string line = std::string("lmforge serve: ") + name + " while loading the models, exiting\n";
      [[maybe_unused]] const auto n = ::write(2, line.data(), line.size());
      std::_Exit(0);
    }
    stop.set_value(sig);
  }).detach();
  serve::Server server(o);
  const int port = server.start();
  std::vector<serve::ServedModel> served;
  std::vector<std::string> dirs;  // of each --model
  for (const std::string& spec : args.models) {
    served.push_back(load(spec));
    dirs.push_back(name_and_dir(spec).second);
  }
  const size_t bases = served.size();
  for (const std::string& spec : args.adapters) served.push_back(load_adapter(spec, served, dirs, bases));
  for (size_t i = 0; i < served.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (served[i].name == served[j].name)
        throw Error(std::string(i < bases ? "--model" : "--adapter") + ": two models are named '" + served[i].name +
                    "'; use NAME=DIR");
  for (serve::ServedModel& m : served) server.add_model(std::move(m));
  serving = true;  // from here a signal means a normal shutdown
  server.ready();
  wait_until_healthy(args.host, port);
  std::cout << "lmforge serve: listening on http://" << args.host << ":" << port << std::endl;

  const int sig = stop.get_future().get();
  std::cerr << "lmforge serve: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", shutting down\n";
  server.shutdown();
  return 0;
}

Command command{"serve", "OpenAI-compatible completion server (POST /v1/completions; docs/SERVE.md)", setup, run};

}  // namespace
}  // namespace lmforge::cli
