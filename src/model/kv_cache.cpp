#include "model/kv_cache.h"

#include <cstring>
#include <map>

namespace lmforge {

KVCache::KVCache(int layers, int rows, int capacity, int embd)
    : layers_(layers), rows_(rows), capacity_(capacity), embd_(embd),
      k_(static_cast<size_t>(layers) * rows * capacity * embd),
      v_(k_.size()),
      mask_(static_cast<size_t>(rows) * capacity, 0) {}

void KVCache::reorder(const std::vector<int>& src, int length) {
  // Only rows that feed another row are snapshotted (their first `length` positions), then copied.
  std::map<int, size_t> snap_index;
  for (int r = 0; r < rows_; ++r)
    if (src[r] != r && !snap_index.count(src[r])) snap_index.emplace(src[r], snap_index.size());
  if (snap_index.empty()) return;
  const size_t row_floats = static_cast<size_t>(length) * embd_;
  std::vector<float> snap(snap_index.size() * row_floats);
  for (LargeBuffer<float>* buf : {&k_, &v_})
    for (int l = 0; l < layers_; ++l) {
      for (auto [row, i] : snap_index)
        std::memcpy(snap.data() + i * row_floats, buf->data() + offset(l, row), row_floats * sizeof(float));
      for (int r = 0; r < rows_; ++r)
        if (src[r] != r)
          std::memcpy(buf->data() + offset(l, r), snap.data() + snap_index[src[r]] * row_floats,
                      row_floats * sizeof(float));
    }
  std::vector<uint8_t> old_mask = mask_;
  for (int r = 0; r < rows_; ++r)
    std::memcpy(mask(r), old_mask.data() + static_cast<size_t>(src[r]) * capacity_, capacity_);
}

void KVCache::copy_rows_from(const KVCache& from, const std::vector<int>& src, int length) {
  const size_t row_floats = static_cast<size_t>(length) * embd_;
  for (int l = 0; l < layers_; ++l)
    for (int r = 0; r < rows_; ++r) {
      std::memcpy(k_.data() + offset(l, r), from.k_.data() + from.offset(l, src[r]), row_floats * sizeof(float));
      std::memcpy(v_.data() + offset(l, r), from.v_.data() + from.offset(l, src[r]), row_floats * sizeof(float));
    }
  for (int r = 0; r < rows_; ++r)
    std::memcpy(mask(r), from.mask_.data() + static_cast<size_t>(src[r]) * from.capacity_, length);
}

}  // namespace lmforge
