// Shard ranges and the ordered gather in a world of one (the multi-rank gather runs under mpirun
// in mpi_cli_test.cpp).
#include "lmforge/dist/shard.h"

#include <gtest/gtest.h>

#include "lmforge/error.h"

namespace lmforge::dist {
namespace {

TEST(ShardRange, SplitsEvenlyWithTheRemainderOnTheFirstRanks) {
  // 10 units over 3 ranks: 4, 3, 3.
  EXPECT_EQ(shard_range(10, 0, 3).begin, 0u);
  EXPECT_EQ(shard_range(10, 0, 3).end, 4u);
  EXPECT_EQ(shard_range(10, 1, 3).begin, 4u);
  EXPECT_EQ(shard_range(10, 1, 3).end, 7u);
  EXPECT_EQ(shard_range(10, 2, 3).begin, 7u);
  EXPECT_EQ(shard_range(10, 2, 3).end, 10u);
}

TEST(ShardRange, RangesAreContiguousAndCoverEveryUnitOnce) {
  for (size_t n : {0u, 1u, 2u, 5u, 16u, 17u})
    for (int size = 1; size <= 6; ++size) {
      size_t next = 0;
      for (int r = 0; r < size; ++r) {
        const Range range = shard_range(n, r, size);
        EXPECT_EQ(range.begin, next) << n << " units, rank " << r << " of " << size;
        EXPECT_LE(range.size(), n / size + 1);
        EXPECT_GE(range.size(), n / size);
        next = range.end;
      }
      EXPECT_EQ(next, n);
    }
}

TEST(ShardRange, RanksPastTheUnitsIdle) {
  EXPECT_EQ(shard_range(2, 0, 4).size(), 1u);
  EXPECT_EQ(shard_range(2, 1, 4).size(), 1u);
  EXPECT_TRUE(shard_range(2, 2, 4).empty());
  EXPECT_TRUE(shard_range(2, 3, 4).empty());
  EXPECT_TRUE(shard_range(0, 0, 1).empty());
}

TEST(ShardRange, ARankOutsideTheWorldIsAnError) {
  EXPECT_THROW(shard_range(4, 2, 2), Error);
  EXPECT_THROW(shard_range(4, -1, 2), Error);
  EXPECT_THROW(shard_range(4, 0, 0), Error);
}

TEST(GatherItems, AWorldOfOneGetsItsOwnItemsBack) {
  const World& w = world();
  ASSERT_EQ(w.size(), 1);
  ASSERT_TRUE(w.is_root());
  const std::vector<std::string> mine{"a", "", std::string("\xff\x00z", 3)};
  const auto got = gather_items(
      w, mine, "test", [](ByteWriter& out, const std::string& s) { out.put(s); },
      [](ByteReader& in) { return in.get_string(); });
  EXPECT_EQ(got, mine);
}

}  // namespace
}  // namespace lmforge::dist
