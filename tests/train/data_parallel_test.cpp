// The pieces of data-parallel fine-tuning that need no mpirun: ZeRO stage 1's cut of the
// parameters into slices and the step tally's slot for the slices' squared gradients.
#include "train/data_parallel.h"

#include <gtest/gtest.h>

#include <vector>

namespace lmforge {
namespace {

TEST(ZeroSlices, EqualSizesTheFirstRanksOneMore) {
  EXPECT_EQ(zero_slices(10, 1), (std::vector<size_t>{0, 10}));
  EXPECT_EQ(zero_slices(10, 2), (std::vector<size_t>{0, 5, 10}));
  EXPECT_EQ(zero_slices(10, 3), (std::vector<size_t>{0, 4, 7, 10}));
  EXPECT_EQ(zero_slices(11, 4), (std::vector<size_t>{0, 3, 6, 9, 11}));
  EXPECT_EQ(zero_slices(2, 3), (std::vector<size_t>{0, 1, 2, 2}));  // more ranks than parameters: empty slices
}

TEST(StepTally, CarriesTheGradientSquaresBesideTheMicroBatches) {
  StepTally t(3);
  EXPECT_EQ(t.size(), 3);
  t.record(2, 1.5f, 7);
  t.add_grad_squares(2.25);
  EXPECT_FALSE(t.counted(0));
  EXPECT_TRUE(t.counted(2));
  EXPECT_EQ(t.loss(2), 1.5f);
  EXPECT_EQ(t.tokens(2), 7);
  EXPECT_EQ(t.grad_squares(), 2.25);
}

}  // namespace
}  // namespace lmforge
