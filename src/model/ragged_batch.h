#pragma once
// One forward step over a ragged batch: any number of sequences, each at its own length in a
// paged cache, each bringing any number of new tokens (a decode step's one, a chunk of a prompt).
// The continuous batcher of lmforge serve runs every step through this.
//
// Batch invariance: every number a token gets here depends on its own sequence only, never on
// the other sequences of the step or on how its prompt was cut into chunks. The matrix products
// are row-invariant (kernels::matmul_wt_rows), layer norms and activations are per row, and each
// query attends through the same dot / softmax / weighted-sum code over its own sequence's keys,
// whether it is a prompt token or a decoded one. So a request gets byte-identical output alone or
// among 63 others.
#include <cstdint>
#include <vector>

#include "lmforge/model/model.h"
#include "model/block.h"
#include "model/large_buffer.h"
#include "model/paged_kv_cache.h"

namespace lmforge {

struct RaggedSegment {
  PagedRow* row = nullptr;           // its new positions go at row->length .. row->length + n - 1
  int n = 0;                         // new positions (>= 1)
  const int32_t* tokens = nullptr;   // [n], inside the vocabulary
  const int32_t* positions = nullptr;  // [n] position ids, < n_positions
  const uint8_t* mask = nullptr;     // [n] 1 = real token, 0 = padding (its key is never attended to)
  // [n, vocab] when all_positions, else [vocab] for the last new position; nullptr: no logits (a
  // chunk of a prompt that is not its last). Padding positions get 0.
  float* logits = nullptr;
  bool all_positions = false;
};

// Work buffers reused across steps.
struct RaggedScratch {
  BlockScratch block;
  LargeBuffer<float> x, h, logits;
  std::vector<int> seg_of, slot_of, pos_of;  // per real token: its segment, cache position, position id
  std::vector<int> first_real;               // per segment: the row's first position with mask 1
};

// Throws lmforge::Error for a token id outside the vocabulary or a position id past n_positions
// (`count` entries of each): what every forward checks before running anything.
void check_forward_inputs(const ModelConfig& c, int count, const int32_t* tokens, const int32_t* positions);

// Runs the segments' new tokens through `m` (a LoRA adapter included), appending their
// keys and values to each row's blocks in `pool` and advancing row->length. Inputs are assumed
// valid (the caller checks ids, positions and that each row has room: a throw here would fail a
// whole step). Two segments must not share a row.
void ragged_forward(const Model& m, BlockPool& pool, const std::vector<RaggedSegment>& segments, RaggedScratch& s);

}  // namespace lmforge
