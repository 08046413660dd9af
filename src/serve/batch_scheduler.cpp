#include "serve/batch_scheduler.h"

#include <algorithm>
#include <string>

#include "lmforge/error.h"

namespace lmforge::serve {

using Clock = std::chrono::steady_clock;

// One session's forward(): rows × n tokens, run over one or more steps (chunked prefill).
struct BatchScheduler::Forward {
  std::vector<PagedRow*> rows;
  int n = 0;
  const int32_t* tokens = nullptr;
  const int32_t* positions = nullptr;
  const uint8_t* mask = nullptr;
  float* logits = nullptr;
  bool all_positions = false;
  const std::function<bool()>* cancelled = nullptr;
  int done = 0;           // columns already run (scheduler thread only)
  bool finished = false;  // set under mu_
  bool aborted = false;   // set under mu_: stopped or cancelled before it finished
  std::string error;      // why the step failed, when it did
};

class BatchScheduler::Session : public LanguageModelSession {
 public:
  Session(BatchScheduler& s, int rows, int capacity, std::function<bool()> cancelled, std::function<void()> on_cancel)
      : LanguageModelSession(rows), s_(s), capacity_(capacity), cancelled_(std::move(cancelled)),
        on_cancel_(std::move(on_cancel)), rows_store_(rows) {
    const int per_row = s_.pool_.blocks_for(capacity);
    blocks_ = s_.take_blocks(per_row * rows, cancelled_, on_cancel_);
    for (int r = 0; r < rows; ++r) {
      rows_store_[r].blocks.assign(blocks_.begin() + r * per_row, blocks_.begin() + (r + 1) * per_row);
      row_ptrs_.push_back(&rows_store_[r]);
    }
    s_.enter();
  }
  ~Session() override {
    s_.leave();
    s_.give_back(blocks_);
  }

  void forward(int n, const int32_t* tokens, const int32_t* positions, const uint8_t* mask, float* logits,
               bool all_positions) override {
    const ModelConfig& c = s_.model_.config();
    if (n <= 0) throw Error("forward: no tokens to run");
    if (length_ + n > capacity_)
      throw Error("sequence of " + std::to_string(length_ + n) + " tokens exceeds the context of " +
                  std::to_string(capacity_) + " (n_positions " + std::to_string(c.n_positions) + ")");
    check_forward_inputs(c, rows_ * n, tokens, positions);
    Forward f;
    f.rows = row_ptrs_;
    f.n = n;
    f.tokens = tokens;
    f.positions = positions;
    f.mask = mask;
    f.logits = logits;
    f.all_positions = all_positions;
    f.cancelled = &cancelled_;
    s_.run_forward(f);
    if (!f.error.empty()) throw Error(f.error);
    if (f.aborted) {
      on_cancel_();
      throw Error("the request was cancelled");
    }
    length_ += n;
  }

  void reorder(const std::vector<int>& src) override {
    if (static_cast<int>(src.size()) != rows_) throw Error("reorder: wrong number of rows");
    copy_rows(s_.pool_, row_ptrs_, src, length_);
  }

 private:
  BatchScheduler& s_;
  int capacity_;
  std::function<bool()> cancelled_;
  std::function<void()> on_cancel_;
  std::vector<int> blocks_;
  std::vector<PagedRow> rows_store_;
  std::vector<PagedRow*> row_ptrs_;
};

namespace {

class ScheduledModel : public LanguageModel {
 public:
  ScheduledModel(const Model& m, std::function<std::unique_ptr<LanguageModelSession>(int, int)> start)
      : m_(m), start_(std::move(start)) {}
  int vocab_size() const override { return m_.vocab_size(); }
  int max_positions() const override { return m_.max_positions(); }
  std::unique_ptr<LanguageModelSession> start(int rows, int capacity) const override {
    if (rows <= 0) throw Error("a session needs at least one row");
    if (capacity > m_.max_positions())
      throw Error("sequence length " + std::to_string(capacity) + " exceeds the model's context (n_positions " +
                  std::to_string(m_.max_positions()) + ")");
    return start_(rows, std::max(capacity, 1));
  }

 private:
  const Model& m_;
  std::function<std::unique_ptr<LanguageModelSession>(int, int)> start_;
};

}  // namespace

int64_t default_kv_tokens(const ModelConfig& c, int max_batch) {
  const int64_t per_position = 2 * static_cast<int64_t>(sizeof(float)) * c.n_layer * c.n_embd;
  const int64_t budget = (int64_t{4} << 30) / per_position;
  return std::clamp<int64_t>(budget, c.n_positions, static_cast<int64_t>(std::max(max_batch, 1)) * c.n_positions);
}

namespace {
int pool_blocks(const Model& m, const SchedulerOptions& o) {
  const int64_t tokens = o.kv_cache_tokens > 0 ? o.kv_cache_tokens : default_kv_tokens(m.config(), 1);
  return static_cast<int>((tokens + o.block_size - 1) / o.block_size);
}
}  // namespace

BatchScheduler::BatchScheduler(const Model& model, SchedulerOptions options)
    : model_(model), options_(options),
      pool_(model.config().n_layer, model.config().n_embd, options.block_size, pool_blocks(model, options)) {
  thread_ = std::thread([this] { loop(); });
}

BatchScheduler::~BatchScheduler() { stop(); }

std::unique_ptr<LanguageModel> BatchScheduler::model_for(std::function<bool()> cancelled, std::function<void()> on_cancel) {
  return std::make_unique<ScheduledModel>(model_, [this, cancelled, on_cancel](int rows, int capacity) {
    return std::make_unique<Session>(*this, rows, capacity, cancelled, on_cancel);
  });
}

// The scheduler's thread ends the waiting forwards itself once its current step is over: a
// forward in a running step must not be ended, or its session could free rows the step writes.
void BatchScheduler::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  blocks_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<int> BatchScheduler::take_blocks(int n, const std::function<bool()>& cancelled,
                                             const std::function<void()>& on_cancel) {
  if (n > pool_.blocks())
    throw Error("the request needs " + std::to_string(static_cast<int64_t>(n) * pool_.block_size()) +
                " KV-cache positions (rows x (prompt + max_tokens)), more than the server's --kv_cache_tokens " +
                std::to_string(static_cast<int64_t>(pool_.blocks()) * pool_.block_size()));
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t ticket = next_ticket_++;
  block_waiters_.push_back(ticket);
  auto leave_queue = [&] {
    block_waiters_.erase(std::find(block_waiters_.begin(), block_waiters_.end(), ticket));
    blocks_cv_.notify_all();
  };
  for (;;) {
    if (stopping_ || (cancelled && cancelled())) {
      leave_queue();
      lock.unlock();
      on_cancel();
      throw Error("the request was cancelled");
    }
    // First come, first served: a large request is not overtaken forever by small ones.
    if (block_waiters_.front() == ticket)
      if (auto blocks = pool_.take(n)) {
        leave_queue();
        return *blocks;
      }
    blocks_cv_.wait_for(lock, std::chrono::milliseconds(20));  // also polls `cancelled`
  }
}

void BatchScheduler::give_back(const std::vector<int>& blocks) {
  pool_.give_back(blocks);
  std::lock_guard<std::mutex> lock(mu_);
  blocks_cv_.notify_all();
}

void BatchScheduler::enter() {
  std::lock_guard<std::mutex> lock(mu_);
  ++live_;
}

void BatchScheduler::leave() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --live_;
  }
  work_cv_.notify_all();  // the step may have been waiting for this session
}

void BatchScheduler::run_forward(Forward& f) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    f.aborted = true;
    return;
  }
  pending_.push_back(&f);
  work_cv_.notify_all();
  done_cv_.wait(lock, [&] { return f.finished || f.aborted; });
}

void BatchScheduler::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (gather(lock)) {
    std::vector<Forward*> work = pending_;
    lock.unlock();
    step(work);
    lock.lock();
    std::erase_if(pending_, [](const Forward* f) { return f->finished || f->aborted; });
    done_cv_.notify_all();
  }
  for (Forward* f : pending_) f->aborted = true;  // stopping
  pending_.clear();
  done_cv_.notify_all();
}

// Waits for forwards to run: every live session's, or those there are once gather_wait has passed
// since the first (a session busy between two forwards does not hold the others up for longer).
// Forwards whose request was cancelled are ended here. False when stopping.
bool BatchScheduler::gather(std::unique_lock<std::mutex>& lock) {
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (stopping_) return false;
    work_cv_.wait_until(lock, Clock::now() + options_.gather_wait,
                        [&] { return stopping_ || static_cast<int>(pending_.size()) >= live_; });
    if (stopping_) return false;
    bool any_cancelled = false;
    for (Forward* f : pending_)
      if (*f->cancelled && (*f->cancelled)()) f->aborted = any_cancelled = true;
    if (any_cancelled) {
      std::erase_if(pending_, [](const Forward* f) { return f->aborted; });
      done_cv_.notify_all();
    }
    if (!pending_.empty()) return true;
  }
}

// One model step: every decode token of `work`, then prompt chunks within the token budget.
void BatchScheduler::step(std::vector<Forward*>& work) {
  const int V = model_.vocab_size();
  struct Take {
    Forward* f;
    int c0, c1;
  };
  std::vector<Take> takes;
  int decode_tokens = 0;
  for (Forward* f : work)
    if (f->n == 1) {
      takes.push_back({f, 0, 1});
      decode_tokens += static_cast<int>(f->rows.size());
    }
  int budget = std::max(options_.max_step_tokens - decode_tokens, options_.prefill_floor);
  for (Forward* f : work) {  // oldest prompt first
    if (f->n == 1 || budget <= 0) continue;
    const int R = static_cast<int>(f->rows.size());
    const int cols = std::min(f->n - f->done, std::max(budget / R, 1));
    takes.push_back({f, f->done, f->done + cols});
    budget -= cols * R;
  }
  std::vector<RaggedSegment> segs;
  for (const Take& t : takes) {
    Forward& f = *t.f;
    for (size_t r = 0; r < f.rows.size(); ++r) {
      const size_t at = r * f.n + t.c0;
      float* logits = nullptr;
      if (f.all_positions) logits = f.logits + at * V;
      else if (t.c1 == f.n) logits = f.logits + r * V;
      segs.push_back({f.rows[r], t.c1 - t.c0, f.tokens + at, f.positions + at, f.mask + at, logits, f.all_positions});
    }
  }
  last_rows_ = static_cast<int>(segs.size());
  ++steps_;
  rows_run_ += segs.size();
  std::string error;
  try {
    ragged_forward(model_, pool_, segs, scratch_);
  } catch (const std::exception& e) {
    error = std::string("model step failed: ") + e.what();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const Take& t : takes) {
    t.f->done = t.c1;
    if (!error.empty()) {
      t.f->error = error;
      t.f->aborted = true;
    } else if (t.f->done == t.f->n) {
      t.f->finished = true;
    }
  }
}

}  // namespace lmforge::serve
