#pragma once
// Causal self-attention over the KV cache with a per-row key mask.
#include "lmforge/model/config.h"
#include "model/kv_cache.h"

namespace lmforge {

// qkv: [rows*n, 3E] (q | k | v per token; k and v already copied into the cache)
// out: [rows*n, E]. Query i of row r sits at cache position past+i and sees cache positions
// 0..past+i whose mask is 1. A padding query (mask 0) gets a zero output: nothing reads it.
void attention_forward(const ModelConfig& c, int layer, const float* qkv, int rows, int n, int past,
                       KVCache& cache, float* out);

// The factor HF multiplies q·k by, for layer `layer` (0-based).
float attention_scale(const ModelConfig& c, int layer);

}  // namespace lmforge
