#pragma once
// Keys and values of many sequences in fixed-size blocks of one pool: the continuous batcher's
// cache (lmforge serve). A sequence takes the blocks its positions need when it starts and gives
// them back when it ends, so memory goes to positions sequences can actually reach, not to
// (batch slots × n_positions), and a finished request's blocks serve the next one at once.
//
// Layout: per layer, per block, [block_size, E] keys and the same for values (heads side by side
// inside E, as KVCache). The pool is one anonymous mapping faulted in as blocks are first written,
// and free blocks are reused last-freed first, so resident memory grows to the working set and
// then stays flat.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

namespace lmforge {

// One sequence in a BlockPool: position p lives in block blocks[p / block_size] at row
// p % block_size. mask[p] is 1 for a real token, 0 for padding (never attended to).
struct PagedRow {
  std::vector<int> blocks;
  std::vector<uint8_t> mask;
  int length = 0;  // positions written
};

class BlockPool {
 public:
  BlockPool(int layers, int embd, int block_size, int blocks);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int layers() const { return layers_; }
  int embd() const { return embd_; }
  int block_size() const { return block_size_; }
  int blocks() const { return blocks_; }
  int free_blocks() const;
  // Bytes of keys and values one position takes (all layers).
  size_t bytes_per_position() const { return 2 * sizeof(float) * static_cast<size_t>(layers_) * embd_; }
  // Blocks that hold `positions` positions.
  int blocks_for(int positions) const { return (positions + block_size_ - 1) / block_size_; }

  // `n` block ids, or nothing when fewer are free (the pool is unchanged then). Thread-safe.
  std::optional<std::vector<int>> take(int n);
  // Returns blocks taken with take(). Thread-safe.
  void give_back(const std::vector<int>& ids);

  // Row `row`'s key / value of position p at layer `layer`: E floats.
  float* key(const PagedRow& row, int layer, int p) { return at(k_, row, layer, p); }
  float* value(const PagedRow& row, int layer, int p) { return at(v_, row, layer, p); }

 private:
  float* at(float* base, const PagedRow& row, int layer, int p) const {
    const size_t block = static_cast<size_t>(layer) * blocks_ + row.blocks[p / block_size_];
    return base + (block * block_size_ + p % block_size_) * embd_;
  }
  int layers_, embd_, block_size_, blocks_;
  size_t bytes_ = 0;
  float* k_ = nullptr;
  float* v_ = nullptr;
  mutable std::mutex mu_;
  std::vector<int> free_;  // a stack: the last block given back is the next one taken
};

// Row r becomes a copy of row src[r] (its first `length` positions and their mask): beam search
// moving its hypotheses. All rows belong to `pool` and have room for `length` positions.
void copy_rows(BlockPool& pool, const std::vector<PagedRow*>& rows, const std::vector<int>& src, int length);

}  // namespace lmforge
