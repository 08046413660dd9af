#pragma once
// The transformer block shared by GPT-2 and GPT-J. The architectures differ only in flags:
//   GPT-2: x += attn(ln_1(x)); x += mlp(ln_2(x)); learned positions (wpe) added at the embedding.
//   GPT-J: h = ln_1(x); x += attn(h) + mlp(h); rotary positions applied to q and k inside attn.
#include <cstdint>
#include <functional>
#include <vector>

#include "lmforge/model/config.h"
#include "lmforge/model/weights.h"
#include "model/kv_cache.h"
#include "model/large_buffer.h"

namespace lmforge {

// GPT-J rotary embedding tables, HF's create_sinusoidal_positions in fp32.
struct Rope {
  int dim = 0;             // rotary_dim: the first `dim` features of each head rotate
  std::vector<float> sin;  // [n_positions, dim/2]
  std::vector<float> cos;
  Rope() = default;
  Rope(int rotary_dim, int n_positions);
  // Rotates one head vector in HF's interleaved (rotate-every-two) layout.
  void apply(float* head, int position) const;
};

// Work buffers reused across layers and steps.
struct BlockScratch {
  LargeBuffer<float> h, qkv, attn, proj, mlp, mlp_out;
  LargeBuffer<float> qkv_all, attn_all;  // [rows*n, ...] views of a packed batch (padding rows 0)
  void reserve(int M, const ModelConfig& c);
};

// One block over the rows * n new tokens. x: [rows*n, E] (row-major by row, then token), updated
// in place. `past` positions of each row are already in `cache`; the new keys/values are written at
// past .. past+n-1. cache.mask() must already hold the mask of the new tokens.
// Packed batch: with `real` non-null, x holds only the tokens real lists ([real.size(), E]; real[k]
// is token k's index r*n + i in the rows * n grid, ascending), the others being padding. Only they
// go through the layers; a padding position's key and value in the cache are 0 (its mask is 0, so
// no query ever sees them).
void block_forward(const ModelConfig& c, int layer, const BlockWeights& w, const Rope* rope, float* x, int rows,
                   int n, const int32_t* positions, int past, KVCache& cache, BlockScratch& s,
                   const std::vector<int>* real = nullptr);

// What a block's attention does with the M tokens' q, k and v: qkv [M, 3E] (q | k | v per token,
// before any rotary) in, attention output attn [M, E] out. The session's grid cache and the
// serving engine's paged cache each supply their own.
using AttendFn = std::function<void(float* qkv, float* attn)>;

// The block around its attention over M tokens: ln_1, the qkv projection, `attend`, the output
// projection and the MLP, x [M, E] updated in place. row_invariant: every matrix product gives a
// token's row the same bits whatever the other rows are (kernels::matmul_wt_rows), the continuous
// batcher's need; otherwise the faster matmul_wt.
void block_body(const ModelConfig& c, const BlockWeights& w, float* x, int M, BlockScratch& s, bool row_invariant,
                const AttendFn& attend);

}  // namespace lmforge
