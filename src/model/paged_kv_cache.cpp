#include "model/paged_kv_cache.h"

#include <sys/mman.h>

#include <cstring>
#include <map>
#include <new>
#include <numeric>

namespace lmforge {
namespace {

// An anonymous mapping of `bytes`, reserved but not touched: pages are faulted in on first write.
// MAP_NORESERVE: a pool sized for the worst case must not be refused for memory it may never use.
float* map_floats(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, bytes, MADV_HUGEPAGE);  // fewer faults; the kernel falls back to 4 KiB pages
  return static_cast<float*>(p);
}

}  // namespace

BlockPool::BlockPool(int layers, int embd, int block_size, int blocks)
    : layers_(layers), embd_(embd), block_size_(block_size), blocks_(blocks),
      bytes_(sizeof(float) * static_cast<size_t>(layers) * blocks * block_size * embd) {
  k_ = map_floats(bytes_);
  try {
    v_ = map_floats(bytes_);
  } catch (...) {
    ::munmap(k_, bytes_);
    throw;
  }
  free_.resize(blocks);
  std::iota(free_.rbegin(), free_.rend(), 0);  // block 0 on top: low addresses first
}

BlockPool::~BlockPool() {
  ::munmap(k_, bytes_);
  ::munmap(v_, bytes_);
}

int BlockPool::free_blocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(free_.size());
}

std::optional<std::vector<int>> BlockPool::take(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (n > static_cast<int>(free_.size())) return std::nullopt;
  std::vector<int> ids(free_.end() - n, free_.end());
  free_.resize(free_.size() - n);
  return ids;
}

void BlockPool::give_back(const std::vector<int>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.insert(free_.end(), ids.rbegin(), ids.rend());
}

void copy_rows(BlockPool& pool, const std::vector<PagedRow*>& rows, const std::vector<int>& src, int length) {
  // Only rows that feed another row are snapshotted, then copied (a row may feed several, and a
  // row may both feed and be overwritten).
  std::map<int, size_t> snap_index;
  for (size_t r = 0; r < rows.size(); ++r)
    if (src[r] != static_cast<int>(r) && !snap_index.count(src[r])) snap_index.emplace(src[r], snap_index.size());
  if (snap_index.empty()) return;
  const size_t E = pool.embd(), per_row = 2 * static_cast<size_t>(pool.layers()) * length * E;
  std::vector<float> snap(snap_index.size() * per_row);
  std::vector<std::vector<uint8_t>> masks(snap_index.size());
  for (const auto& [s, i] : snap_index) {
    float* out = snap.data() + i * per_row;
    for (int l = 0; l < pool.layers(); ++l)
      for (int p = 0; p < length; ++p, out += 2 * E) {
        std::memcpy(out, pool.key(*rows[s], l, p), E * sizeof(float));
        std::memcpy(out + E, pool.value(*rows[s], l, p), E * sizeof(float));
      }
    masks[i] = rows[s]->mask;
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    if (src[r] == static_cast<int>(r)) continue;
    const size_t i = snap_index.at(src[r]);
    const float* in = snap.data() + i * per_row;
    for (int l = 0; l < pool.layers(); ++l)
      for (int p = 0; p < length; ++p, in += 2 * E) {
        std::memcpy(pool.key(*rows[r], l, p), in, E * sizeof(float));
        std::memcpy(pool.value(*rows[r], l, p), in + E, E * sizeof(float));
      }
    rows[r]->mask = masks[i];
    rows[r]->length = length;
  }
}

}  // namespace lmforge
