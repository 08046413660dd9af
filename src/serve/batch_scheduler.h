#pragma once
// Continuous (in-flight) batching for one model. Each running request keeps its own thread and
// runs the ordinary library code (generate(), beam search, scoring) against a LanguageModel whose
// sessions do not compute anything themselves: a session's forward() hands its tokens to the
// scheduler and waits. The scheduler's thread gathers the forwards of every running request into
// one step of model/ragged_batch.h, so new requests join the decode batch at the next step and
// finished ones leave it, and every request keeps HF semantics and `lmforge generate`'s decoding
// code unchanged.
//
// - KV cache: one BlockPool of fixed-size blocks. A session takes the blocks of rows × capacity
//   positions when it starts (waiting, first come first served, while too few are free) and gives
//   them back when it ends, so no request is ever preempted mid-way.
// - Chunked prefill: a step runs every waiting decode token, then prompt tokens up to
//   max_step_tokens (at least prefill_floor of them, so prompts progress under a full decode
//   batch); a long prompt goes in over several steps while the running streams keep decoding.
// - Batch invariance: a request's numbers do not depend on the step it shares (ragged_batch.h),
//   and its sampling runs on its own thread with its own seed: alone or among 63 others, the same
//   request gives the same bytes.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "lmforge/generate/language_model.h"
#include "lmforge/model/model.h"
#include "model/paged_kv_cache.h"
#include "model/ragged_batch.h"

namespace lmforge::serve {

struct SchedulerOptions {
  int block_size = 16;            // positions per KV block
  int64_t kv_cache_tokens = 0;    // positions the pool holds (all sequences together); 0: one context
  int max_step_tokens = 128;      // tokens per step beyond the decode tokens (prompt chunks)
  int prefill_floor = 16;         // prompt tokens a step takes even when decodes fill max_step_tokens
  // How long a step waits for running requests still busy between two forwards (sampling, stop
  // strings) before it starts without them.
  std::chrono::milliseconds gather_wait{50};
};

// Positions of a default pool: 4 GiB of keys and values, at least one full context, at most
// `max_batch` full contexts.
int64_t default_kv_tokens(const ModelConfig& c, int max_batch);

class BatchScheduler {
 public:
  BatchScheduler(const Model& model, SchedulerOptions options);
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // The model a request runs on: sessions it starts are batched here. `cancelled` is polled while
  // its forwards wait, so a request whose client went away stops within a step (its forward()
  // then throws `on_cancel()`'s exception).
  std::unique_ptr<LanguageModel> model_for(std::function<bool()> cancelled, std::function<void()> on_cancel);

  // Refuses new forwards and fails the waiting ones (their requests end as cancelled), then joins.
  void stop();

  // For /metrics: sequences in the last step, and KV blocks in use / in all.
  int last_step_rows() const { return last_rows_.load(); }
  // Steps run, and sequences summed over them (their ratio: the mean batch occupancy).
  uint64_t steps() const { return steps_.load(); }
  uint64_t rows_run() const { return rows_run_.load(); }
  int blocks_in_use() const { return pool_.blocks() - pool_.free_blocks(); }
  int blocks_total() const { return pool_.blocks(); }

  struct Forward;  // one session's forward(), waiting for its steps
  class Session;

 private:
  friend class Session;
  // Session side (request threads).
  std::vector<int> take_blocks(int n, const std::function<bool()>& cancelled, const std::function<void()>& on_cancel);
  void give_back(const std::vector<int>& blocks);
  void run_forward(Forward& f);  // blocks until the scheduler has run all of f
  void enter();                  // a session starts / ends: the step waits for live sessions only
  void leave();

  // Scheduler thread.
  void loop();
  bool gather(std::unique_lock<std::mutex>& lock);
  void step(std::vector<Forward*>& work);

  const Model& model_;
  SchedulerOptions options_;
  BlockPool pool_;
  RaggedScratch scratch_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_, blocks_cv_;
  std::vector<Forward*> pending_;
  std::deque<uint64_t> block_waiters_;  // tickets of sessions waiting for blocks, oldest first
  uint64_t next_ticket_ = 0;
  int live_ = 0;  // sessions that exist (each either busy on its thread or waiting in pending_)
  bool stopping_ = false;
  std::atomic<int> last_rows_{0};
  std::atomic<uint64_t> steps_{0}, rows_run_{0};
  std::thread thread_;
};

}  // namespace lmforge::serve
