// The HTTP side of lmforge serve: routes, auth, errors in OpenAI's shape, and the hand-off of
// completion jobs to the engine (non-streamed: wait for the result; streamed: relay SSE chunks).
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "lmforge/error.h"
#include "lmforge/serve/server.h"
#include "serve/api_error.h"
#include "serve/auth.h"
#include "serve/completion_request.h"
#include "serve/completion_response.h"
#include "serve/engine.h"
#include "serve/metrics.h"

namespace lmforge::serve {
namespace {

using nlohmann::json;

// Chunks from the engine's thread to the HTTP thread writing the stream.
class Channel {
 public:
  void push(std::string piece) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pieces_.push_back(std::move(piece));
    }
    cv_.notify_one();
  }
  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_one();
  }
  // The next piece; false once closed and drained.
  bool pop(std::string& piece) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return closed_ || !pieces_.empty(); });
    if (pieces_.empty()) return false;
    piece = std::move(pieces_.front());
    pieces_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pieces_;
  bool closed_ = false;
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, e.body()); }

json parse_body(const httplib::Request& req) {
  try {
    return json::parse(req.body);
  } catch (const json::exception& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
  }
}

// Routes counted under their own name in /metrics; anything else is "other" (bounded label set).
std::string route_label(const std::string& path) {
  for (const char* r : {"/v1/completions", "/v1/models", "/health", "/metrics", "/tokenize", "/detokenize"})
    if (path == r) return r;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}


// httplib (0.11) keeps its sockets private; the helpers below find them among the process's
// descriptors by their ports.
std::vector<int> sockets_of_process() {
  std::vector<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    try {
      fds.push_back(std::stoi(entry.path().filename().string()));
    } catch (const std::exception&) {
    }
  }
  return fds;
}

bool is_listening(int fd) {
  int listening = 0;
  socklen_t len = sizeof listening;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

// The local (getsockname) or remote (getpeername) port of socket fd, -1 when it has none.
int socket_port(int fd, int (*name)(int, sockaddr*, socklen_t*)) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (name(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return -1;
}

// The connected socket of a request (its server-side and client-side ports), or -1.
int connection_socket(int local_port, int remote_port) {
  for (int fd : sockets_of_process())
    if (!is_listening(fd) && socket_port(fd, ::getsockname) == local_port &&
        socket_port(fd, ::getpeername) == remote_port)
      return fd;
  return -1;
}

// The client has closed its side (EOF) or reset the connection. A client waiting for its answer
// sends nothing, so readable data is not a hang-up (it stays unread for httplib).
bool peer_closed(int fd) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// Debian's compiled cpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed when
// the library was built): 64 clients connecting at once overflow it, and the kernel drops their
// handshakes (seen: requests of a 64-client burst failing). Linux lets listen() be called again on
// a listening socket to change its backlog; httplib keeps its socket private, so it is found here
// among the process's descriptors by the port it is bound to.
void widen_listen_backlog(int port) {
  for (int fd : sockets_of_process())
    if (is_listening(fd) && socket_port(fd, ::getsockname) == port) ::listen(fd, SOMAXCONN);
}

// httplib's server with its one-connection entry point reachable, for Server::answer_raw.
class HttpServer : public httplib::Server {
 public:
  using httplib::Server::process_request;
};

// A connection in memory: httplib reads the request's bytes and appends its response to `out`.
class MemoryStream : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size());
    std::copy_n(in_.data(), n, ptr);
    in_.remove_prefix(n);
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 0;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 0;
  }
  socket_t socket() const override { return INVALID_SOCKET; }

  std::string out;

 private:
  std::string_view in_;
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  HttpServer http;
  Metrics metrics;
  std::unique_ptr<Engine> engine;
  std::vector<std::unique_ptr<ServedModel>> models;
  std::atomic<bool> is_ready{false};
  std::thread listener;

  explicit Impl(ServerOptions o) : options(std::move(o)) {
    EngineOptions eo;
    eo.max_queue = options.max_queue;
    eo.max_batch = options.max_batch;
    eo.scheduler.kv_cache_tokens = options.kv_cache_tokens;
    eo.scheduler.max_step_tokens = options.max_step_tokens;
    engine = std::make_unique<FifoEngine>(eo, metrics);
    // Each running or waiting request holds an HTTP thread, so there must be enough of them for the
    // queue to fill (and 429 to be reachable) while /health and /metrics still answer.
    const size_t threads = std::min<size_t>(options.max_queue + std::max(options.max_batch, 1) + 8, 512);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_payload_max_length(options.max_body_bytes);
    // An idle keep-alive connection holds its thread until this timeout, and shutdown waits for those
    // threads: httplib's 5 s default would make every SIGTERM take 5 s with a pooling client.
    http.set_keep_alive_timeout(1);
    const auto timeout = std::chrono::duration<double>(options.read_timeout_seconds);
    const auto sec = static_cast<time_t>(timeout.count());
    const auto usec = static_cast<time_t>((timeout.count() - sec) * 1e6);
    http.set_read_timeout(sec, usec);
    http.set_write_timeout(sec, usec);
    routes();
  }

  const ServedModel& pick_model(const std::string& name) const {
    if (name.empty() && models.size() == 1) return *models.front();
    for (const auto& m : models)
      if (m->name == name) return *m;
    if (name.empty())
      throw ApiError(404, "this server serves several models: name one in 'model'", "invalid_request_error", "model",
                     "model_not_found");
    throw ApiError(404, "The model '" + name + "' does not exist", "invalid_request_error", "model", "model_not_found");
  }

  // Every route but /health: readiness, auth, and the OpenAI error shape for whatever goes wrong.
  httplib::Server::Handler guarded(std::function<void(const httplib::Request&, httplib::Response&)> handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        if (!authorized(options.api_key, req.get_header_value("Authorization")))
          throw ApiError(401, "Incorrect API key provided.", "invalid_request_error", "", "invalid_api_key");
        if (!is_ready) throw ApiError(503, "the server is still loading its models", "server_error");
        handler(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
      }
    };
  }

  void routes() {
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, is_ready ? 200 : 503, {{"status", is_ready ? "ok" : "loading"}});
    });
    http.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.render(engine->stats()), "text/plain; version=0.0.4");
    }));
    http.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) { list_models(res); }));
    http.Get(R"(/v1/models/(.+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      send_json(res, 200, model_json(pick_model(req.matches[1].str())));
    }));
    http.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) { complete(req, res); }));
    http.Post("/tokenize", guarded([this](const httplib::Request& req, httplib::Response& res) { tokenize(req, res); }));
    http.Post("/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) { detokenize(req, res); }));
    // httplib's own refusals (404 unknown route, 413 body too large, 400 bad request line) get
    // OpenAI's error body; responses our handlers already filled are left alone.
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      // httplib caps form-encoded bodies (curl -d's default Content-Type) at 8 KB whatever the limit.
      if (res.status == 413 && req.get_header_value("Content-Type") == "application/x-www-form-urlencoded")
        send_error(res, ApiError(413, "form-encoded bodies are limited to 8 KB: send the JSON with "
                                      "'Content-Type: application/json'"));
      else if (res.status == 413) send_error(res, ApiError(413, "the request body is larger than --max_body_bytes"));
      else if (res.status == 404) send_error(res, ApiError(404, "no route " + req.method + " " + req.path));
      else send_error(res, ApiError(res.status, "the request was refused (HTTP " + std::to_string(res.status) + ")"));
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count_request(route_label(req.path), res.status);
    });
  }

  static json model_json(const ServedModel& m) {
    return {{"id", m.name}, {"object", "model"}, {"created", m.created}, {"owned_by", "lmforge"}};
  }

  void list_models(httplib::Response& res) const {
    json data = json::array();
    for (const auto& m : models) data.push_back(model_json(*m));
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  }

  void tokenize(const httplib::Request& req, httplib::Response& res) const {
    const json body = parse_body(req);
    if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
    const ServedModel& m = pick_model(requested_model(body));
    if (!body.contains("prompt") || !body["prompt"].is_string()) throw bad_field("prompt", "'prompt' must be a string");
    const auto prompts = parse_prompts(body["prompt"], m.tokenizer, m.model->vocab_size(), "prompt");
    send_json(res, 200, {{"tokens", prompts[0]}, {"count", prompts[0].size()}});
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) const {
    const json body = parse_body(req);
    if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
    const ServedModel& m = pick_model(requested_model(body));
    const json tokens = body.value("tokens", json());
    if (!tokens.is_array()) throw bad_field("tokens", "'tokens' must be an array of token ids");
    std::vector<int32_t> ids;
    for (const json& t : tokens) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= m.model->vocab_size())
        throw bad_field("tokens", "'tokens' must be token ids of this model, found " + t.dump());
      ids.push_back(t.get<int32_t>());
    }
    send_json(res, 200, {{"prompt", m.tokenizer.decode(ids, false, false)}});
  }

  void complete(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
    const ServedModel& m = pick_model(requested_model(body));
    auto job = std::make_shared<CompletionJob>();
    if (options.request_timeout_seconds > 0) {
      job->timeout_seconds = options.request_timeout_seconds;
      job->deadline = job->arrived + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                         std::chrono::duration<double>(options.request_timeout_seconds));
    }
    job->model = &m;
    const std::optional<int32_t> start = m.defaults.bos_token_id ? m.defaults.bos_token_id : m.tokenizer.bos_id();
    job->request =
        parse_completion_request(body, m.tokenizer, m.model->vocab_size(), m.model->max_positions(), start, req.body);
    const ResponseHeader header = new_response_header(m.name);
    if (job->request.stream) stream(job, header, res);
    else wait_for(job, header, req, res);
  }

  [[noreturn]] static void queue_full() {
    throw ApiError(429, "the server's request queue is full; retry later", "server_error", "", "queue_full");
  }

  // The client of a non-streamed request is watched while its job runs: one that hangs up cancels
  // the job (a streamed one is noticed at its next write).
  void wait_for(const std::shared_ptr<CompletionJob>& job, const ResponseHeader& header, const httplib::Request& req,
                httplib::Response& res) {
    auto outcome = std::make_shared<std::promise<json>>();
    auto status = std::make_shared<int>(200);
    job->on_done = [outcome, header](CompletionResult r) { outcome->set_value(completion_json(header, r)); };
    job->on_error = [outcome, status](const ApiError& e) {
      *status = e.status;
      outcome->set_value(e.body());
    };
    if (!engine->submit(job)) queue_full();
    auto result = outcome->get_future();
    const int fd = connection_socket(req.local_port, req.remote_port);
    while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
      if (fd >= 0 && peer_closed(fd)) job->cancelled = true;  // the engine then ends it with on_error
    json body = result.get();
    send_json(res, *status, body);
  }

  void stream(const std::shared_ptr<CompletionJob>& job, const ResponseHeader& header, httplib::Response& res) {
    auto channel = std::make_shared<Channel>();
    job->on_delta = [channel, header](const ChoiceDelta& d) { channel->push(sse_chunk(header, d)); };
    job->on_done = [channel, header, usage = job->request.stream_usage](CompletionResult r) {
      if (usage) channel->push(sse_usage_chunk(header, r));
      channel->push(kSseDone);
      channel->close();
    };
    job->on_error = [channel](const ApiError& e) {
      channel->push(sse_error(e.body()));
      channel->close();
    };
    if (!engine->submit(job)) queue_full();
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [channel, job](size_t, httplib::DataSink& sink) {
          std::string piece;
          if (!channel->pop(piece)) {
            sink.done();
            return true;
          }
          // A failed write means the client went away: stop generating for it.
          if (!sink.is_writable() || !sink.write(piece.data(), piece.size())) {
            job->cancelled = true;
            return false;
          }
          return true;
        },
        [job](bool success) {
          if (!success) job->cancelled = true;
        });
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() { shutdown(); }

int Server::start() {
  Impl& s = *impl_;
  int port = s.options.port;
  if (port == 0) port = s.http.bind_to_any_port(s.options.host);
  else if (!s.http.bind_to_port(s.options.host, port)) port = -1;
  if (port < 0) throw Error("serve: cannot listen on " + s.options.host + ":" + std::to_string(s.options.port));
  widen_listen_backlog(port);
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  // httplib's stop() does nothing until the listener thread marks itself running: wait for that, so a
  // shutdown right after start() (a model that fails to load) is not lost.
  while (!s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

std::string Server::answer_raw(std::string_view request) {
  MemoryStream connection(request);
  bool closed = false;
  impl_->http.process_request(connection, /*close_connection=*/true, closed, nullptr);
  return std::move(connection.out);
}

void Server::add_model(ServedModel model) { impl_->models.push_back(std::make_unique<ServedModel>(std::move(model))); }

void Server::ready() { impl_->is_ready = true; }

void Server::shutdown() {
  Impl& s = *impl_;
  if (!s.listener.joinable()) return;
  s.http.stop();  // no new connections; handlers already running go on
  // listen_after_bind returns once the running handlers finish; give them the grace period, then
  // cancel the engine's jobs so their handlers answer and the listener can return.
  std::promise<void> done;
  auto finished = done.get_future();
  std::thread joiner([&] {
    s.listener.join();
    done.set_value();
  });
  const auto grace = std::chrono::duration<double>(s.options.shutdown_grace_seconds);
  if (finished.wait_for(grace) != std::future_status::ready) s.engine->stop();
  joiner.join();
  s.engine->stop();
}

}  // namespace lmforge::serve
