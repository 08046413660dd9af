// transformers.get_linear_schedule_with_warmup's multiplier (LambdaLR calls it with the number of
// optimizer steps taken so far).
#include <algorithm>

#include "lmforge/train/optimizer.h"

namespace lmforge {

double linear_schedule_factor(int64_t step, int64_t warmup_steps, int64_t total_steps) {
  if (step < warmup_steps) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  return std::max(0.0, static_cast<double>(total_steps - step) /
                           static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps)));
}

}  // namespace lmforge
