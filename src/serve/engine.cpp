#include "serve/engine.h"

#include "lmforge/error.h"
#include "serve/completion_runner.h"

namespace lmforge::serve {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

FifoEngine::FifoEngine(size_t max_queue, Metrics& metrics)
    : max_queue_(max_queue), metrics_(metrics), worker_([this] { work(); }) {}

FifoEngine::~FifoEngine() { stop(); }

bool FifoEngine::submit(std::shared_ptr<CompletionJob> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= max_queue_) return false;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

int FifoEngine::queue_length() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

void FifoEngine::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
    for (auto& job : queue_) job->cancelled = true;
    if (running_) running_->cancelled = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void FifoEngine::work() {
  for (;;) {
    std::shared_ptr<CompletionJob> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      running_ = job;
    }
    run(*job);
    std::lock_guard<std::mutex> lock(mu_);
    running_.reset();
  }
}

// Runs one job and always ends it with on_done or on_error: an exception here must not kill the
// worker, or every later client would hang.
void FifoEngine::run(CompletionJob& job) {
  if (job.cancelled) {
    metrics_.count_cancelled();
    job.on_error(ApiError(503, "the request was cancelled (client gone or server shutting down)", "server_error"));
    return;
  }
  bool first = true;
  Clock::time_point last = Clock::now();
  RunHooks hooks;
  hooks.on_delta = job.on_delta;
  hooks.cancelled = [&job] { return job.cancelled.load(); };
  hooks.on_step = [&] {
    if (first) metrics_.time_to_first_token().observe(seconds_since(job.arrived));
    else metrics_.time_per_token().observe(seconds_since(last));
    first = false;
    last = Clock::now();
  };
  try {
    CompletionResult result = run_completion(*job.model, job.request, hooks);
    metrics_.add_tokens(result.prompt_tokens, result.completion_tokens);
    job.on_done(std::move(result));
  } catch (const Cancelled&) {
    metrics_.count_cancelled();
    job.on_error(ApiError(503, "the request was cancelled (client gone or server shutting down)", "server_error"));
  } catch (const Error& e) {
    job.on_error(ApiError(400, e.what()));  // the library refused the settings (e.g. an impossible combination)
  } catch (const std::exception& e) {
    job.on_error(ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
  }
}

}  // namespace lmforge::serve
