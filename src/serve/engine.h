#pragma once
// The engine runs completion jobs. The HTTP side only submits jobs and receives callbacks; the
// engine runs up to max_batch of them at once, each on a worker thread, and with max_batch > 1 a
// BatchScheduler (batch_scheduler.h) fuses their model steps: continuous batching.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "serve/api_error.h"
#include "serve/batch_scheduler.h"
#include "serve/completion_request.h"
#include "serve/completion_result.h"
#include "serve/metrics.h"
#include "lmforge/serve/served_model.h"

namespace lmforge::serve {

struct CompletionJob {
  const ServedModel* model = nullptr;
  CompletionRequest request;
  // Called from the engine's thread. Exactly one of on_done / on_error ends every submitted job.
  std::function<void(const ChoiceDelta&)> on_delta;  // streaming only
  std::function<void(CompletionResult)> on_done;
  std::function<void(const ApiError&)> on_error;
  std::atomic<bool> cancelled{false};  // set by the HTTP side when the client goes away
  std::chrono::steady_clock::time_point arrived = std::chrono::steady_clock::now();
  // --request_timeout: a job not finished by then (waiting or running) ends with a 408.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  double timeout_seconds = 0;  // what the 408 message names
  bool expired() const { return std::chrono::steady_clock::now() >= deadline; }
};

// What /metrics shows of the engine.
struct EngineStats {
  int queue_length = 0;     // jobs waiting for a worker
  int running = 0;          // jobs on a worker
  int step_rows = 0;        // sequences in the last batched model step (continuous batching)
  uint64_t steps = 0;       // batched model steps run, and sequences summed over them
  uint64_t step_rows_total = 0;
  int kv_blocks_used = 0;   // KV-cache blocks held, all models
  int kv_blocks_total = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // False when the queue is full (the caller answers 429); the job is then not owned by the engine.
  virtual bool submit(std::shared_ptr<CompletionJob> job) = 0;
  virtual EngineStats stats() const = 0;
  // Refuses new jobs, cancels the waiting and running ones (their on_error is called) and joins.
  virtual void stop() = 0;
};

struct EngineOptions {
  size_t max_queue = 64;  // waiting jobs beyond the running ones (429 past it)
  // Jobs running at once. 1: one request at a time, straight on the model (lmforge generate's
  // kernels and bits). More: continuous batching, the running jobs' model steps fused by a
  // BatchScheduler per model.
  int max_batch = 1;
  SchedulerOptions scheduler;
};

// `max_batch` worker threads taking jobs from a FIFO of at most `max_queue` waiting jobs.
class FifoEngine : public Engine {
 public:
  FifoEngine(EngineOptions options, Metrics& metrics);
  ~FifoEngine() override;
  bool submit(std::shared_ptr<CompletionJob> job) override;
  EngineStats stats() const override;
  void stop() override;

 private:
  void work();
  void run(CompletionJob& job);
  BatchScheduler* scheduler_for(const ServedModel& m);

  EngineOptions options_;
  Metrics& metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<CompletionJob>> queue_;
  std::vector<std::shared_ptr<CompletionJob>> running_;
  bool stopping_ = false;
  // One per served model, made on its first job; they outlive the workers (stop() joins those first).
  std::map<const ServedModel*, std::unique_ptr<BatchScheduler>> schedulers_;
  std::vector<std::thread> workers_;
};

}  // namespace lmforge::serve
