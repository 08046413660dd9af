// The kernels' thread pool (kernels::parallel_for).
//
// Why not OpenMP: libgomp's threads spin for milliseconds at every barrier (its default spin
// count, which a program cannot change once running), and a decode step has ~60 parallel regions.
// On an idle machine that is fine; next to other busy processes on a 2-core machine, a spinning
// thread holds a core the preempted one needs (batch-1 decode: 22 tok/s next to one busy process
// against 45-52 with this pool, ~1.3 tok/s next to two; docs/PERFORMANCE.md). Here idle threads
// spin for at most kSpinWait before sleeping on a condition variable, tasks are claimed one at a
// time (a preempted thread delays at most the task it holds, the others take the rest), and a
// caller left waiting on a preempted task yields its core after kSpinWait.
//
// Job protocol: `ticket_` packs (job number, task count, next unclaimed task) into one word, so a
// thread claims a task with one compare-exchange that also proves the job is still current; the
// job's function is read only after a successful claim, when the job cannot have finished yet.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSpinWait = std::chrono::microseconds(100);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

thread_local bool t_in_task = false;  // nested parallel_for calls run serially

class ThreadPool {
 public:
  explicit ThreadPool(int threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker(); });
  }

  ~ThreadPool() {
    stop_.store(true);
    signal_.fetch_add(1);
    wake_sleepers();
    for (auto& t : workers_) t.join();
  }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void run(int tasks, TaskRef fn) {
    std::lock_guard<std::mutex> lock(mutex_);  // one job at a time, whoever calls
    fn_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    job_ = (job_ + 1) & kJobMask;
    ticket_.store(job_ << 40 | static_cast<uint64_t>(tasks) << 20, std::memory_order_release);
    signal_.fetch_add(1);
    if (sleepers_.load() > 0) wake_sleepers();
    t_in_task = true;
    drain();
    t_in_task = false;
    const auto t0 = Clock::now();
    for (int spins = 0; done_.load(std::memory_order_acquire) != tasks; ++spins) {
      if (spins < 64 || Clock::now() - t0 < kSpinWait)
        cpu_relax();
      else
        std::this_thread::yield();  // a preempted worker holds a task: let it have this core
    }
  }

  [[maybe_unused]] static constexpr int kMaxTasks = (1 << 20) - 1;  // checked by an assert

 private:
  static constexpr uint64_t kJobMask = (1ull << 24) - 1;

  // Claims and runs tasks of the current job until none is left.
  void drain() {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t next = t & 0xFFFFF, tasks = (t >> 20) & 0xFFFFF;
      if (next >= tasks) return;
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      (*fn_)(static_cast<int>(next));
      done_.fetch_add(1, std::memory_order_release);
      t = ticket_.load(std::memory_order_acquire);
    }
  }

  void worker() {
    t_in_task = true;
    omp_set_num_threads(1);  // OpenBLAS called from a task runs single-threaded
    uint32_t seen = 0;  // signal_'s value at construction: a job or stop posted before this thread ran counts
    for (;;) {
      const auto t0 = Clock::now();
      for (int spins = 0; signal_.load(std::memory_order_acquire) == seen; ++spins) {
        if (spins % 64 != 63 || Clock::now() - t0 < kSpinWait) {
          cpu_relax();
          continue;
        }
        // Sleep on a condition variable, not std::atomic::wait: libstdc++ 12's atomic wait can
        // lose a wake-up (seen here: a worker asleep forever at exit, hanging the process).
        std::unique_lock<std::mutex> lk(sleep_mutex_);
        sleepers_.fetch_add(1);
        sleep_cv_.wait(lk, [&] { return signal_.load() != seen; });
        sleepers_.fetch_sub(1);
      }
      seen = signal_.load(std::memory_order_acquire);
      if (stop_.load()) return;
      drain();
    }
  }

  // Taking the sleep mutex before notifying means a worker between its predicate check and its
  // wait cannot miss the signal.
  void wake_sleepers() {
    { std::lock_guard<std::mutex> lk(sleep_mutex_); }
    sleep_cv_.notify_all();
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  uint64_t job_ = 0;
  const TaskRef* fn_ = nullptr;
  alignas(64) std::atomic<uint64_t> ticket_{0};  // job:24 | tasks:20 | next:20
  alignas(64) std::atomic<int> done_{0};
  alignas(64) std::atomic<uint32_t> signal_{0};  // bumped for every job; sleeping workers wait on it
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

std::mutex g_pool_mutex;
// Never destroyed at exit: joining sleeping workers from a static destructor hung processes at
// exit (seen ~1 run in 150); the OS ends the threads with the process.
ThreadPool* g_pool = nullptr;
int g_threads = 0;  // 0: omp_get_max_threads() when the pool is first needed

ThreadPool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) {
    if (g_threads <= 0) g_threads = std::max(1, omp_get_max_threads());
    g_pool = new ThreadPool(g_threads);
  }
  return *g_pool;
}

// OpenBLAS's OpenMP build runs single-threaded when the calling thread's OpenMP thread count
// (a per-thread setting) is 1: that is what a task wants, without changing it for the rest of the
// program, which may call OpenBLAS or OpenMP itself.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreadedBlas() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

void run_serially(int tasks, TaskRef fn) {
  for (int t = 0; t < tasks; ++t) fn(t);
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  n = std::max(1, n);
  // For OpenMP and OpenBLAS users elsewhere in the program (calls from our tasks stay at 1).
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_threads = n;
  if (g_pool && g_pool->size() != n) {  // rebuilt on next use
    delete g_pool;
    g_pool = nullptr;
  }
}

void parallel_for(int tasks, TaskRef fn) {
  if (tasks <= 0) return;
  assert(tasks <= ThreadPool::kMaxTasks);
  if (t_in_task || omp_in_parallel()) return run_serially(tasks, fn);  // already on a worker
  ThreadPool& p = pool();  // before SingleThreadedBlas: the default size reads omp_get_max_threads()
  SingleThreadedBlas blas;
  if (tasks == 1 || p.size() == 1) return run_serially(tasks, fn);
  p.run(tasks, fn);
}

}  // namespace lmforge::kernels
