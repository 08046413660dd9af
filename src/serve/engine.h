#pragma once
// The engine runs completion jobs. The HTTP side only submits jobs and receives callbacks, so this
// first engine (one worker, a bounded FIFO, one request at a time) can later be replaced by a
// continuous batcher with the same interface.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "serve/api_error.h"
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
};

class Engine {
 public:
  virtual ~Engine() = default;
  // False when the queue is full (the caller answers 429); the job is then not owned by the engine.
  virtual bool submit(std::shared_ptr<CompletionJob> job) = 0;
  virtual int queue_length() const = 0;
  // Refuses new jobs, cancels the waiting and running ones (their on_error is called) and joins.
  virtual void stop() = 0;
};

// One worker thread, a FIFO of at most `max_queue` waiting jobs.
class FifoEngine : public Engine {
 public:
  FifoEngine(size_t max_queue, Metrics& metrics);
  ~FifoEngine() override;
  bool submit(std::shared_ptr<CompletionJob> job) override;
  int queue_length() const override;
  void stop() override;

 private:
  void work();
  void run(CompletionJob& job);

  size_t max_queue_;
  Metrics& metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<CompletionJob>> queue_;
  std::shared_ptr<CompletionJob> running_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace lmforge::serve
