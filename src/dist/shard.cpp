#include "lmforge/dist/shard.h"

#include <algorithm>
#include <string>

#include "lmforge/error.h"

namespace lmforge::dist {

Range shard_range(size_t n, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size)
    throw Error("internal: rank " + std::to_string(rank) + " of a world of " + std::to_string(size));
  const size_t r = static_cast<size_t>(rank), s = static_cast<size_t>(size);
  const size_t base = n / s, extra = n % s;
  const size_t begin = r * base + std::min(r, extra);
  return {begin, begin + base + (r < extra ? 1 : 0)};
}

}  // namespace lmforge::dist
