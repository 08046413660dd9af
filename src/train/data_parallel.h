#pragma once
// Data-parallel fine-tuning across mpirun ranks (docs/SCALE_OUT.md). The rule that keeps N ranks
// equal to one process: the loader serves micro-batches in the single-process order on every rank;
// optimizer step s consumes the G = accumulation x N micro-batches [s*G, (s+1)*G), and rank r
// computes those whose index within the step is = r (mod N). One process with accumulation G
// computes the same micro-batches with the same weights, loss scale 1/G and dropout seeds, so only
// the order in which float gradients are summed differs.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lmforge/dist/world.h"
#include "lmforge/train/batch.h"
#include "lmforge/train/data.h"

namespace lmforge {

// Whether micro-batch `g` of a step (0 <= g < G) is this rank's.
inline bool owns_micro_batch(const dist::World& w, int g) { return g % w.size() == w.rank(); }

// What each micro-batch of one step gave (its loss and real tokens; skipped ones: nothing), filled
// in by the rank that computed it and then summed over ranks: each slot has one contributor and
// zeros elsewhere, so every rank ends with the exact single-process values, in micro-batch order.
// One more slot carries ZeRO stage 1's sums of squared gradients (each rank its slice's), so the
// global gradient norm costs no collective of its own.
class StepTally {
 public:
  explicit StepTally(int micro_batches) : v_(3 * static_cast<size_t>(micro_batches) + 1, 0.0) {}
  void record(int g, float loss, int64_t tokens);
  void add_grad_squares(double s) { v_.back() += s; }
  void reduce(const dist::World& w, const std::string& what) { w.allreduce_sum(v_.data(), v_.size(), what); }
  int size() const { return static_cast<int>(v_.size() / 3); }
  bool counted(int g) const { return v_[3 * g + 1] != 0; }
  float loss(int g) const { return static_cast<float>(v_[3 * g]); }
  int64_t tokens(int g) const { return static_cast<int64_t>(v_[3 * g + 2]); }
  double grad_squares() const { return v_.back(); }

 private:
  std::vector<double> v_;  // per micro-batch: loss, counted (0/1), real tokens; then Σ g² (ZeRO-1)
};

// ZeRO stage 1's cut of the n trainable parameters into `ranks` contiguous slices, as offsets
// (ranks + 1 of them; rank r owns [o[r], o[r + 1])): n / ranks each, the first n mod ranks ranks
// one more (the rule the sharded commands use for their units). Every rank computes the same cut
// from n and the world size alone, so a checkpoint (always the whole state) resumes at any size.
std::vector<size_t> zero_slices(size_t n, int ranks);

// validation_loss (run_clm.h) with the batches split across ranks (batch b on rank b mod N) and
// every batch's loss summed to every rank before the same row-weighted mean in batch order: the
// same bits as one process computing them all.
double sharded_validation_loss(const DataLoader& val, const std::function<float(const TrainBatch&)>& loss_of,
                               const dist::World& w);

// True on every rank when any rank's `mine` is: a Ctrl-C seen by one rank stops all of them after
// the same step (none waits in a collective the others have left).
bool any_rank(const dist::World& w, bool mine, const std::string& what);

// A resumed checkpoint at `step` whose data position is `consumed` micro-batches into the order
// must have been written with the same number of micro-batches per optimizer step as this run
// (per_device_train_batch_size x gradient_accumulation_steps x ranks): otherwise steps, schedule
// and data would no longer line up. lmforge::Error naming the flags otherwise.
void check_resume_micro_batches(int64_t consumed, int64_t step, int per_step, int accumulation, int ranks);

}  // namespace lmforge
