#pragma once
// Keys and values of every layer for `rows` sequences of at most `capacity` positions, plus which
// positions are real tokens (the attention mask). Layout per layer: [rows, capacity, E], heads
// side by side inside E (head h at columns h*hd .. h*hd+hd).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/large_buffer.h"

namespace lmforge {

class KVCache {
 public:
  KVCache(int layers, int rows, int capacity, int embd);

  float* keys(int layer, int row) { return k_.data() + offset(layer, row); }
  float* values(int layer, int row) { return v_.data() + offset(layer, row); }
  uint8_t* mask(int row) { return mask_.data() + static_cast<size_t>(row) * capacity_; }
  int capacity() const { return capacity_; }
  int rows() const { return rows_; }

  // Row r takes row src[r]'s first `length` positions (beam search).
  void reorder(const std::vector<int>& src, int length);
  // Row r takes row src[r] of `from` (same layers and width): its first `length` positions and
  // its mask there (a session fork; `from` may have other rows and capacity).
  void copy_rows_from(const KVCache& from, const std::vector<int>& src, int length);

 private:
  size_t offset(int layer, int row) const {
    return (static_cast<size_t>(layer) * rows_ + row) * capacity_ * embd_;
  }
  int layers_, rows_, capacity_, embd_;
  LargeBuffer<float> k_, v_;
  std::vector<uint8_t> mask_;
};

}  // namespace lmforge
