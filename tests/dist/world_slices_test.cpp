// World's slice collectives (ZeRO stage 1) in a world of one, as every run without mpirun sees them:
// the gather is a copy, the reduce-scatter and the all-gather change nothing, and offsets that do
// not cut the buffer into one slice per rank are refused. Under mpirun they are tested through
// finetune --zero_stage 1 (mpi_finetune_test.cpp).
#include <gtest/gtest.h>

#include <vector>

#include "lmforge/dist/world.h"
#include "lmforge/error.h"

namespace lmforge::dist {
namespace {

TEST(WorldSlices, AWorldOfOneCopies) {
  const World& w = world();
  if (w.distributed()) GTEST_SKIP() << "run under mpirun";
  const std::vector<float> data = {1, 2, 3, 4, 5};
  std::vector<float> mine = data;
  w.reduce_scatter_sum(mine.data(), {0, 5}, "test");
  EXPECT_EQ(mine, data);
  std::vector<float> params = data;
  w.allgather(params.data(), {0, 5}, "test");
  EXPECT_EQ(params, data);
  std::vector<float> all(5, 0.0f);
  w.gather_to_root(data.data(), all.data(), {0, 5}, "test");
  EXPECT_EQ(all, data);
  EXPECT_THROW(w.allgather(params.data(), {0, 2, 5}, "test"), Error);
  EXPECT_THROW(w.allgather(params.data(), {1, 5}, "test"), Error);
}

}  // namespace
}  // namespace lmforge::dist
