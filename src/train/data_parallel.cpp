#include "train/data_parallel.h"

#include <cmath>

#include "lmforge/error.h"

namespace lmforge {

void StepTally::record(int g, float loss, int64_t tokens) {
  v_[3 * g] = loss;
  v_[3 * g + 1] = 1;
  v_[3 * g + 2] = static_cast<double>(tokens);  // exact below 2^53
}

double sharded_validation_loss(const DataLoader& val, const std::function<float(const TrainBatch&)>& loss_of,
                               const dist::World& w) {
  const int64_t n = val.batches_per_epoch();
  std::vector<double> v(2 * static_cast<size_t>(n), 0.0);  // per batch: loss (NaN: no targets), rows
  for (int64_t b = w.rank(); b < n; b += w.size()) {
    const TrainBatch batch = val.batch_at(0, b);
    v[2 * b] = loss_of(batch);
    v[2 * b + 1] = batch.B;
  }
  w.allreduce_sum(v.data(), v.size(), "validation loss");
  // validation_loss's sum, term by term.
  double sum = 0;
  int64_t rows = 0;
  for (int64_t b = 0; b < n; ++b) {
    if (std::isnan(v[2 * b])) continue;
    const auto batch_rows = static_cast<int64_t>(v[2 * b + 1]);
    sum += v[2 * b] * batch_rows;
    rows += batch_rows;
  }
  return rows ? sum / rows : NAN;
}

std::vector<size_t> zero_slices(size_t n, int ranks) {
  const size_t k = static_cast<size_t>(ranks), base = n / k, extra = n % k;
  std::vector<size_t> o(k + 1, 0);
  for (size_t r = 0; r < k; ++r) o[r + 1] = o[r] + base + (r < extra ? 1 : 0);
  return o;
}

bool any_rank(const dist::World& w, bool mine, const std::string& what) {
  double flag = mine ? 1 : 0;
  w.allreduce_sum(&flag, 1, what);
  return flag > 0;
}

void check_resume_micro_batches(int64_t consumed, int64_t step, int per_step, int accumulation, int ranks) {
  if (step == 0 || consumed == step * per_step) return;
  const std::string was = consumed % step == 0 ? std::to_string(consumed / step) : "another number of";
  throw Error("--resume_from_checkpoint: the checkpoint's run took " + was +
              " micro-batches per optimizer step (gradient_accumulation_steps x ranks), this one takes " +
              std::to_string(per_step) + " (" + std::to_string(accumulation) + " x " + std::to_string(ranks) +
              " ranks): the global batch must stay the same; set --gradient_accumulation_steps so that it times the "
              "number of ranks matches (docs/SCALE_OUT.md)");
}

}  // namespace lmforge
