#include "serve/engine.h"

#include <algorithm>
#include <cstdio>

#include "lmforge/error.h"
#include "serve/completion_runner.h"

namespace lmforge::serve {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

FifoEngine::FifoEngine(EngineOptions options, Metrics& metrics) : options_(options), metrics_(metrics) {
  options_.max_batch = std::max(options_.max_batch, 1);
  for (int w = 0; w < options_.max_batch; ++w) workers_.emplace_back([this] { work(); });
}

FifoEngine::~FifoEngine() { stop(); }

bool FifoEngine::submit(std::shared_ptr<CompletionJob> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= options_.max_queue) return false;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

EngineStats FifoEngine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStats s;
  s.queue_length = static_cast<int>(queue_.size());
  s.running = static_cast<int>(running_.size());
  for (const auto& [model, sched] : schedulers_) {
    s.step_rows += sched->last_step_rows();
    s.steps += sched->steps();
    s.step_rows_total += sched->rows_run();
    s.kv_blocks_used += sched->blocks_in_use();
    s.kv_blocks_total += sched->blocks_total();
  }
  return s;
}

void FifoEngine::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& job : queue_) job->cancelled = true;
    for (auto& job : running_) job->cancelled = true;
  }
  cv_.notify_all();
  for (std::thread& w : workers_)
    if (w.joinable()) w.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [model, sched] : schedulers_) sched->stop();
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
      running_.push_back(job);
    }
    run(*job);
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(running_, job);
  }
}

BatchScheduler* FifoEngine::scheduler_for(const ServedModel& m) {
  if (options_.max_batch == 1) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = schedulers_.find(&m); it != schedulers_.end()) return it->second.get();
  SchedulerOptions o = options_.scheduler;
  if (o.kv_cache_tokens <= 0) o.kv_cache_tokens = default_kv_tokens(m.model->config(), options_.max_batch);
  // Made before it is inserted: a model the scheduler refuses leaves no empty entry behind.
  auto sched = std::make_unique<BatchScheduler>(*m.model, o);
  return schedulers_.emplace(&m, std::move(sched)).first->second.get();
}

// Runs one job and always ends it with on_done or on_error: an exception here must not kill the
// worker, or every later client would hang.
void FifoEngine::run(CompletionJob& job) {
  auto end_cancelled = [&] {
    metrics_.count_cancelled();
    if (job.expired() && !job.cancelled) {
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%g", job.timeout_seconds);
      return job.on_error(ApiError(408, std::string("the request did not finish within the server's --request_timeout (") +
                                            seconds + " s)",
                                   "server_error", "", "request_timeout"));
    }
    job.on_error(ApiError(503, "the request was cancelled (client gone or server shutting down)", "server_error"));
  };
  if (job.cancelled || job.expired()) return end_cancelled();
  bool first = true;
  Clock::time_point last = Clock::now();
  RunHooks hooks;
  hooks.on_delta = job.on_delta;
  hooks.cancelled = [&job] { return job.cancelled.load() || job.expired(); };
  hooks.on_step = [&] {
    if (first) metrics_.time_to_first_token().observe(seconds_since(job.arrived));
    else metrics_.time_per_token().observe(seconds_since(last));
    first = false;
    last = Clock::now();
  };
  try {
    BatchScheduler* sched = scheduler_for(*job.model);
    std::unique_ptr<LanguageModel> batched;
    if (sched) batched = sched->model_for(hooks.cancelled, [] { throw Cancelled{}; });
    CompletionResult result = run_completion(*job.model, batched ? *batched : *job.model->model, job.request, hooks);
    metrics_.add_tokens(result.prompt_tokens, result.completion_tokens);
    job.on_done(std::move(result));
  } catch (const Cancelled&) {
    end_cancelled();
  } catch (const Error& e) {
    job.on_error(ApiError(400, e.what()));  // the library refused the settings (e.g. an impossible combination)
  } catch (const std::exception& e) {
    job.on_error(ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
  }
}

}  // namespace lmforge::serve
