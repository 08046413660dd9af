#pragma once
// Which units of work (rows, batches) a rank runs: contiguous ranges in rank order, so rank 0 holds
// the first units and the results, gathered rank by rank, come back in the original order.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/dist/bytes.h"
#include "lmforge/dist/world.h"

namespace lmforge::dist {

struct Range {
  size_t begin = 0, end = 0;  // [begin, end)
  size_t size() const { return end - begin; }
  bool empty() const { return begin == end; }
};

// Units [0, n) split over `size` ranks as evenly as possible: the first n % size ranks get one
// unit more. Ranks past n get an empty range (they idle). Throws lmforge::Error when rank is not
// in [0, size).
Range shard_range(size_t n, int rank, int size);
inline Range shard_range(size_t n, const World& w) { return shard_range(n, w.rank(), w.size()); }

// Rank 0: every rank's `mine`, concatenated in rank order (the original order, shards being
// contiguous); the other ranks: empty. `put(ByteWriter&, const T&)` and `get(ByteReader&) -> T`
// give an item's byte form.
template <typename T, typename Put, typename Get>
std::vector<T> gather_items(const World& w, const std::vector<T>& mine, const std::string& what, Put put, Get get) {
  ByteWriter out;
  out.put<uint64_t>(mine.size());
  for (const T& item : mine) put(out, item);
  test_hook_before_results(w);
  std::vector<T> items;
  for (const std::string& bytes : w.gather(out.bytes(), what)) {
    ByteReader in(bytes);
    for (auto n = in.get<uint64_t>(); n > 0; --n) items.push_back(get(in));
  }
  return items;
}

}  // namespace lmforge::dist
