#pragma once
// The processes of one `mpirun` job (docs/SCALE_OUT.md). A command that shards its work asks for
// world(): launched by mpirun (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment),
// the first call starts MPI; otherwise nothing MPI is touched and the world is this process alone,
// rank 0 of 1, exactly as lmforge runs without mpirun.
//
// A rank that is dead or stuck never hangs the job: MPI errors come back as lmforge::Error naming
// the rank (MPI_ERRORS_RETURN), and the gather waits at most timeout_seconds() for each rank, then
// aborts the job naming the ranks it still waits for.
#include <cstddef>
#include <string>
#include <vector>

namespace lmforge::dist {

// Set by mpirun or a PMI launcher for each process it starts.
bool launched_by_mpirun();
// This process's rank as the launcher's environment says (0 without one); usable before MPI starts,
// e.g. so that only rank 0 prints a usage error.
int launch_rank();
// The number of processes the launcher started (1 without one, or when it does not say).
int launch_size();

class World {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  // Rank 0 gets every rank's bytes, indexed by rank (its own included); the others get an empty
  // vector. Every rank must call it, in the same order. `what` names the step in error messages.
  std::vector<std::string> gather(const std::string& mine, const std::string& what) const;

  // Element-wise sum over every rank, in place; every rank gets the same sums (in-place
  // MPI_Allreduce calls of 4 MiB each: see world.cpp). Every rank must call it, in the same order, with
  // the same n. A rank that does not arrive makes the others abort the job after timeout_seconds(),
  // naming `what`. A no-op in a world of one.
  void allreduce_sum(float* data, size_t n, const std::string& what) const;
  void allreduce_sum(double* data, size_t n, const std::string& what) const;

  // Collectives over a flat float buffer cut into size() contiguous slices: rank r's slice is
  // [offsets[r], offsets[r + 1]) (offsets has size() + 1 entries, offsets[0] = 0). Each first waits
  // at a barrier like allreduce_sum (LMFORGE_DIST_TIMEOUT, errors naming `what` and the rank), then
  // runs MPI_Reduce_scatter, MPI_Allgatherv or MPI_Gatherv. The reduce-scatter goes in rounds of at
  // most 2^22 elements in all (one for smaller buffers) through a packed copy of that size, so
  // neither lmforge nor MPI holds a temporary of the whole buffer; the other two, past 2^31
  // elements, where MPI's int counts end, make one rooted call per rank and chunk instead. Every
  // rank must call them, in the same order, with the same offsets. In a world of one: copies, or
  // nothing.
  //
  // In place, element-wise sum over every rank of `data` (offsets.back() elements): this rank's
  // slice of it holds the sums; the other slices are left as they were.
  void reduce_scatter_sum(float* data, const std::vector<size_t>& offsets, const std::string& what) const;
  // In place: every rank's slice of `data` (offsets.back() elements) to every rank.
  void allgather(float* data, const std::vector<size_t>& offsets, const std::string& what) const;
  // Every rank's slice `mine` to rank 0's `all` (offsets.back() elements; unused on the others).
  void gather_to_root(const float* mine, float* all, const std::vector<size_t>& offsets, const std::string& what) const;

 private:
  friend World& world();
  World() = default;
  int rank_ = 0, size_ = 1;
};

// The job's world; the first call starts MPI when launched by mpirun (lmforge::Error when this
// build has no MPI and the launcher started more than one rank).
World& world();

// Seconds a rank waits at a gather before it aborts the job: $LMFORGE_DIST_TIMEOUT (0 = no limit),
// default 3600. lmforge::Error naming the variable when it is not a number.
double timeout_seconds();

// Test hook for tests/dist, at the point no outside timer could hit reliably (the rank's work done,
// its results not sent): the rank named by $LMFORGE_DIST_TEST_KILL_RANK dies by SIGKILL (as under
// the OOM killer), the one named by $LMFORGE_DIST_TEST_HANG_RANK stops answering (as a wedged
// host). Nothing happens in a world of one or when neither is set.
void test_hook_before_results(const World& w);

// Test hook: $LMFORGE_DIST_TEST_MAX_COUNT=K makes the slice collectives above take their paths for
// big buffers (rounds / rooted calls of at most K elements) from K elements on.

// Ends MPI cleanly when it was started (after the command finished on this rank).
void finalize();

// A failed rank of a distributed job: prints "error: [rank R: ]message" on stderr and aborts every
// rank with `exit_code`. Returns only when MPI was not started; the caller then exits as usual.
void abort_job(const std::string& message, int exit_code);

}  // namespace lmforge::dist
