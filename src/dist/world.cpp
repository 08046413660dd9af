// The mpirun world: started on demand, MPI errors as lmforge::Error, and a gather to rank 0 that
// waits for each rank with a deadline and names the ranks it gave up on.
#include "lmforge/dist/world.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <thread>

#include "lmforge/error.h"

#ifdef LMFORGE_HAVE_MPI
#include <mpi.h>
#endif

namespace lmforge::dist {

namespace {

constexpr double kDefaultTimeout = 3600;
constexpr int kResultTag = 7301;
[[maybe_unused]] bool g_started = false;
bool g_finalized = false;

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return *end == '\0' && n >= 0 && n < std::numeric_limits<int>::max() ? static_cast<int>(n) : fallback;
}

// Built with or without MPI: the slice collectives check their offsets in a world of one too.
void check_offsets(const std::vector<size_t>& offsets, int size, const std::string& what) {
  bool ok = offsets.size() == static_cast<size_t>(size) + 1 && offsets[0] == 0;
  for (size_t r = 0; ok && r + 1 < offsets.size(); ++r) ok = offsets[r] <= offsets[r + 1];
  if (!ok) throw Error(what + ": slice offsets do not cut the buffer into " + std::to_string(size) + " slices");
}

#ifdef LMFORGE_HAVE_MPI
using Clock = std::chrono::steady_clock;

// A wait that polls: short sleeps first, so a fast peer costs microseconds, then at most
// `max_sleep_us` (20 ms by default).
class Poll {
 public:
  explicit Poll(double timeout, int max_sleep_us = 20000) : limit_(timeout), max_sleep_us_(max_sleep_us), t0_(Clock::now()) {}
  bool expired() const {
    return limit_ > 0 && std::chrono::duration<double>(Clock::now() - t0_).count() >= limit_;
  }
  void pause() {
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    sleep_us_ = std::min(sleep_us_ * 2, max_sleep_us_);
  }

 private:
  double limit_;
  int max_sleep_us_;
  Clock::time_point t0_;
  int sleep_us_ = 50;
};

std::string seconds_text(double s);
void check(int rc, const char* call, int rank);

// Polls `req` until it completes; past timeout_seconds(), aborts the job with
// why(" within N s (LMFORGE_DIST_TIMEOUT)").
void wait_or_abort(MPI_Request& req, int rank, int max_sleep_us, const std::function<std::string(const std::string&)>& why) {
  const double limit = timeout_seconds();
  for (Poll poll(limit, max_sleep_us);;) {
    int done = 0;
    check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test", rank);
    if (done) return;
    if (poll.expired()) abort_job(why(" within " + seconds_text(limit) + " s (LMFORGE_DIST_TIMEOUT)"), 1);
    poll.pause();
  }
}

std::string seconds_text(double s) {
  std::string t = std::to_string(s);
  t.erase(t.find_last_not_of('0') + 1);
  if (t.back() == '.') t.pop_back();
  return t;
}

void check(int rc, const char* call, int rank) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(call) + " failed on rank " + std::to_string(rank) + ": " + std::string(text, len));
}

void start_mpi(int& rank, int& size) {
  int provided = 0;
  // Only the main thread calls MPI; OpenMP threads compute between the calls.
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw Error("MPI_Init_thread failed (launched by mpirun, but MPI could not start)");
  g_started = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
}

void send_to_root(const std::string& mine, const std::string& what, int rank) {
  if (mine.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw Error(what + ": rank " + std::to_string(rank) + "'s results are over 2 GiB, more than one MPI message holds");
  MPI_Request req;
  check(MPI_Isend(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, 0, kResultTag, MPI_COMM_WORLD, &req), "MPI_Isend",
        rank);
  wait_or_abort(req, rank, 20000,
                [&](const std::string& within) { return what + ": rank 0 took no results from rank " + std::to_string(rank) + within; });
}

// Receives from rank r when its message has arrived; false while it has not.
bool try_receive(int r, std::string& into) {
  int arrived = 0;
  MPI_Status status;
  check(MPI_Iprobe(r, kResultTag, MPI_COMM_WORLD, &arrived, &status), "MPI_Iprobe", 0);
  if (!arrived) return false;
  int n = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &n), "MPI_Get_count", 0);
  into.resize(static_cast<size_t>(n));
  check(MPI_Recv(into.data(), n, MPI_BYTE, r, kResultTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv", 0);
  return true;
}

std::string rank_list(const std::vector<bool>& pending) {
  std::string out;
  int n = 0;
  for (size_t r = 0; r < pending.size(); ++r)
    if (pending[r]) out += (n++ ? ", " : "") + std::to_string(r);
  return (n == 1 ? "rank " : "ranks ") + out;
}

// First a barrier polled with the gather's deadline, so a dead or stuck rank never blocks the job
// forever; then, everyone being there, blocking in-place all-reduces (in pieces, below), which MPI
// progresses at full speed (a non-blocking one would only
// move while polled). The barrier's polls sleep at most 1 ms: a step waits little for the last rank.
void barrier_or_abort(const std::string& what, int rank, int size) {
  MPI_Request req;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier", rank);
  wait_or_abort(req, rank, 1000, [&](const std::string& within) {
    return what + ": not every one of the " + std::to_string(size) + " ranks arrived" + within + "; aborting the job";
  });
}

void allreduce(void* data, size_t n, MPI_Datatype type, size_t elem, const std::string& what, int rank, int size) {
  barrier_or_abort(what, rank, size);
  // In 4 MiB pieces: OpenMPI's all-reduce allocates a temporary as large as the message, and past
  // glibc's mmap threshold (32 MiB at most) every call maps fresh pages and faults them in. Measured
  // with bench_allreduce, 2 ranks on one machine: 0.3 GB/s for 64-256 MiB in one call, 3.1-3.9 GB/s
  // in 4 MiB pieces (1 and 16 MiB pieces: 2.2-3.0).
  const size_t kChunk = (size_t{4} << 20) / elem;
  for (size_t at = 0; at < n; at += kChunk)
    check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + at * elem, static_cast<int>(std::min(kChunk, n - at)),
                        type, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce", rank);
}

// Largest element count (and offset) one slice collective passes to MPI as an int; smaller under
// the test hook, which sends the buffers through the chunked path.
size_t max_count() {
  static const size_t k = static_cast<size_t>(
      std::max(1, env_int("LMFORGE_DIST_TEST_MAX_COUNT", std::numeric_limits<int>::max())));
  return k;
}

// Whether every count and offset fits one MPI call (int counts and displacements).
bool fits_int(const std::vector<size_t>& offsets) { return offsets.back() <= max_count(); }

std::vector<int> int_counts(const std::vector<size_t>& offsets) {
  std::vector<int> c(offsets.size() - 1);
  for (size_t r = 0; r < c.size(); ++r) c[r] = static_cast<int>(offsets[r + 1] - offsets[r]);
  return c;
}

std::vector<int> int_displs(const std::vector<size_t>& offsets) {
  return std::vector<int>(offsets.begin(), offsets.end() - 1);
}

// Calls f(at, count) for the chunks of [begin, end), at most max_count() elements each.
template <class F>
void chunks(size_t begin, size_t end, F f) {
  for (size_t at = begin; at < end; at += max_count()) f(at, static_cast<int>(std::min(max_count(), end - at)));
}

std::vector<std::string> receive_all(const std::string& mine, const std::string& what, int size) {
  std::vector<std::string> all(static_cast<size_t>(size));
  all[0] = mine;
  std::vector<bool> pending(static_cast<size_t>(size), true);
  pending[0] = false;
  int left = size - 1;
  const double limit = timeout_seconds();
  for (Poll poll(limit); left > 0;) {
    bool got = false;
    for (int r = 1; r < size; ++r)
      if (pending[r] && try_receive(r, all[r])) pending[r] = false, --left, got = true;
    if (left == 0) break;
    if (poll.expired())
      abort_job(what + ": no results from " + rank_list(pending) + " within " + seconds_text(limit) +
                    " s (LMFORGE_DIST_TIMEOUT); aborting the job", 1);
    if (!got) poll.pause();
  }
  return all;
}
#endif

}  // namespace

bool launched_by_mpirun() { return env("OMPI_COMM_WORLD_SIZE") || env("PMI_SIZE") || env("PMIX_RANK"); }

int launch_size() {
  return env("OMPI_COMM_WORLD_SIZE") ? env_int("OMPI_COMM_WORLD_SIZE", 1) : env_int("PMI_SIZE", 1);
}

int launch_rank() {
  if (env("OMPI_COMM_WORLD_RANK")) return env_int("OMPI_COMM_WORLD_RANK", 0);
  if (env("PMI_RANK")) return env_int("PMI_RANK", 0);
  return env_int("PMIX_RANK", 0);
}

World& world() {
  static World w;
  static bool ready = false;
  if (ready) return w;
  ready = true;
  if (!launched_by_mpirun()) return w;
#ifdef LMFORGE_HAVE_MPI
  start_mpi(w.rank_, w.size_);
#else
  if (launch_size() > 1)
    throw Error("this lmforge was built without MPI (libopenmpi-dev), so it cannot share work between the " +
                std::to_string(launch_size()) + " processes mpirun started; rebuild with MPI or run it without mpirun");
#endif
  return w;
}

std::vector<std::string> World::gather(const std::string& mine, const std::string& what) const {
  if (size_ == 1) return {mine};
#ifdef LMFORGE_HAVE_MPI
  if (rank_ != 0) {
    send_to_root(mine, what, rank_);
    return {};
  }
  return receive_all(mine, what, size_);
#else
  return {mine};
#endif
}

void World::allreduce_sum(float* data, size_t n, const std::string& what) const {
#ifdef LMFORGE_HAVE_MPI
  if (size_ > 1) allreduce(data, n, MPI_FLOAT, sizeof(float), what, rank_, size_);
#endif
}

void World::allreduce_sum(double* data, size_t n, const std::string& what) const {
#ifdef LMFORGE_HAVE_MPI
  if (size_ > 1) allreduce(data, n, MPI_DOUBLE, sizeof(double), what, rank_, size_);
#endif
}

void World::reduce_scatter_sum(float* data, const std::vector<size_t>& offsets, const std::string& what) const {
  check_offsets(offsets, size_, what);
  if (size_ == 1) return;
#ifdef LMFORGE_HAVE_MPI
  barrier_or_abort(what, rank_, size_);
  // In rounds: round k reduces the k-th piece of at most `round` elements of every slice, packed one
  // after the other as MPI_Reduce_scatter takes them, into this rank's slice in place (its piece was
  // packed already; later rounds read later pieces). The packed copy is at most 2^22 elements (one
  // round for smaller buffers): OpenMPI's MPI_Reduce_scatter of a whole buffer allocates a temporary
  // of that size (seen: +31 MiB peak RSS per rank for 16 M parameters), which would eat what
  // sharding AdamW saves; and the int counts never overflow.
  constexpr size_t kRoundElements = size_t{1} << 22;
  size_t longest = 0;
  for (int r = 0; r < size_; ++r) longest = std::max(longest, offsets[r + 1] - offsets[r]);
  const size_t round =
      std::min({max_count(), longest, std::max<size_t>(1, kRoundElements / static_cast<size_t>(size_))});
  const size_t my_len = offsets[rank_ + 1] - offsets[rank_];
  float* mine = data + offsets[rank_];
  std::vector<int> counts(static_cast<size_t>(size_));
  std::vector<float> packed(round * static_cast<size_t>(size_));
  for (size_t at = 0; at < longest; at += round) {
    size_t fill = 0;
    for (int r = 0; r < size_; ++r) {
      const size_t len = offsets[r + 1] - offsets[r], n = at < len ? std::min(round, len - at) : 0;
      std::copy_n(data + offsets[r] + std::min(at, len), n, packed.data() + fill);
      counts[r] = static_cast<int>(n);
      fill += n;
    }
    check(MPI_Reduce_scatter(packed.data(), mine + std::min(at, my_len), counts.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Reduce_scatter", rank_);
  }
#endif
}

void World::allgather(float* data, const std::vector<size_t>& offsets, const std::string& what) const {
  check_offsets(offsets, size_, what);
  if (size_ == 1) return;
#ifdef LMFORGE_HAVE_MPI
  barrier_or_abort(what, rank_, size_);
  if (fits_int(offsets)) {
    const std::vector<int> counts = int_counts(offsets), displs = int_displs(offsets);
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displs.data(), MPI_FLOAT, MPI_COMM_WORLD),
          "MPI_Allgatherv", rank_);
    return;
  }
  for (int r = 0; r < size_; ++r)
    chunks(offsets[r], offsets[r + 1],
           [&](size_t at, int n) { check(MPI_Bcast(data + at, n, MPI_FLOAT, r, MPI_COMM_WORLD), "MPI_Bcast", rank_); });
#endif
}

void World::gather_to_root(const float* mine, float* all, const std::vector<size_t>& offsets, const std::string& what) const {
  check_offsets(offsets, size_, what);
  if (size_ == 1) {
    if (all != mine) std::copy(mine, mine + offsets[1], all);
    return;
  }
#ifdef LMFORGE_HAVE_MPI
  barrier_or_abort(what, rank_, size_);
  const size_t my_count = offsets[rank_ + 1] - offsets[rank_];
  if (fits_int(offsets)) {
    const std::vector<int> counts = int_counts(offsets), displs = int_displs(offsets);
    check(MPI_Gatherv(mine, static_cast<int>(my_count), MPI_FLOAT, all, counts.data(), displs.data(), MPI_FLOAT, 0,
                      MPI_COMM_WORLD),
          "MPI_Gatherv", rank_);
    return;
  }
  if (rank_ == 0) std::copy(mine, mine + my_count, all);
  for (int r = 1; r < size_; ++r)
    chunks(offsets[r], offsets[r + 1], [&](size_t at, int n) {
      if (rank_ == 0)
        check(MPI_Recv(all + at, n, MPI_FLOAT, r, kResultTag + 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv", rank_);
      else if (rank_ == r)
        check(MPI_Send(mine + (at - offsets[r]), n, MPI_FLOAT, 0, kResultTag + 1, MPI_COMM_WORLD), "MPI_Send", rank_);
    });
#endif
}

double timeout_seconds() {
  const char* v = env("LMFORGE_DIST_TIMEOUT");
  if (!v) return kDefaultTimeout;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (*end != '\0' || !(s >= 0))
    throw Error(std::string("LMFORGE_DIST_TIMEOUT: expected seconds (0 = no limit), got '") + v + "'");
  return s;
}

void test_hook_before_results(const World& w) {
  if (!w.distributed()) return;
  if (env_int("LMFORGE_DIST_TEST_KILL_RANK", -1) == w.rank()) raise(SIGKILL);
  if (env_int("LMFORGE_DIST_TEST_HANG_RANK", -1) == w.rank())
    for (;;) pause();  // until mpirun ends it
}

void finalize() {
#ifdef LMFORGE_HAVE_MPI
  if (g_started && !g_finalized) MPI_Finalize();
#endif
  g_finalized = true;
}

void abort_job(const std::string& message, int exit_code) {
#ifdef LMFORGE_HAVE_MPI
  if (!g_started || g_finalized) return;
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size == 1) {
    finalize();
    return;
  }
  // An error every rank meets (a bad flag value, a missing file) is printed once, by rank 0: the
  // other ranks wait a moment, and rank 0's abort ends them before they print. An error of one
  // rank alone (its own model folder) is printed after that moment, with its rank.
  if (rank != 0) std::this_thread::sleep_for(std::chrono::seconds(2));
  std::cout.flush();
  // One write: mpirun forwards a rank's stderr in the chunks it was written in, and its own abort
  // banner would otherwise land inside the line.
  const std::string line = "error: " + (rank != 0 ? "rank " + std::to_string(rank) + ": " : std::string()) + message + "\n";
  std::cerr.flush();
  if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
    // nothing more to do: the job is being aborted either way
  }
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  _exit(exit_code);
#else
  (void)message;
  (void)exit_code;
#endif
}

}  // namespace lmforge::dist
