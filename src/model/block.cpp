#include "model/block.h"

#include <cmath>
#include <cstring>

#include "lmforge/kernels/kernels.h"
#include "lmforge/model/lora.h"
#include "model/attention.h"

namespace lmforge {

Rope::Rope(int rotary_dim, int n_positions) : dim(rotary_dim) {
  const int half = dim / 2;
  sin.resize(static_cast<size_t>(n_positions) * half);
  cos.resize(sin.size());
  // HF: inv_freq = 1 / 10000^(arange(0, dim, 2) / dim); angle = position * inv_freq, all in fp32.
  for (int i = 0; i < half; ++i) {
    const float inv_freq = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / static_cast<float>(dim));
    for (int p = 0; p < n_positions; ++p) {
      const float angle = static_cast<float>(p) * inv_freq;
      sin[static_cast<size_t>(p) * half + i] = std::sin(angle);
      cos[static_cast<size_t>(p) * half + i] = std::cos(angle);
    }
  }
}

void Rope::apply(float* head, int position) const {
  const int half = dim / 2;
  const float* s = sin.data() + static_cast<size_t>(position) * half;
  const float* c = cos.data() + static_cast<size_t>(position) * half;
  // rotate_every_two: (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin) for each pair.
  for (int i = 0; i < half; ++i) {
    const float x0 = head[2 * i], x1 = head[2 * i + 1];
    head[2 * i] = x0 * c[i] - x1 * s[i];
    head[2 * i + 1] = x1 * c[i] + x0 * s[i];
  }
}

void BlockScratch::reserve(int M, const ModelConfig& c) {
  const size_t E = c.n_embd, I = c.inner_dim();
  h.resize(M * E);
  qkv.resize(M * 3 * E);
  attn.resize(M * E);
  proj.resize(M * E);
  mlp.resize(M * I);
  mlp_out.resize(M * E);
}

namespace {

void linear(const float* x, int M, const LinearWeights& w, float* y, bool row_invariant) {
  if (row_invariant) {
    kernels::matmul_wt_rows(x, M, w.matrix(), w.b, y);
    if (!w.lora.empty()) add_lora_rows(w, x, M, y, w.out);
    return;
  }
  kernels::matmul_wt(x, M, w.matrix(), w.b, y);
  if (!w.lora.empty()) add_lora(w, x, M, y, w.out);
}

// Rotary positions on q and k (GPT-J), then k and v into the cache at past .. past+n-1.
void store_keys_values(const ModelConfig& c, int layer, const Rope* rope, float* qkv, int rows, int n,
                       const int32_t* positions, int past, KVCache& cache) {
  const int E = c.n_embd, H = c.n_head, hd = c.head_dim();
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) {
      float* t = qkv + (static_cast<size_t>(r) * n + i) * 3 * E;
      if (rope)
        for (int h = 0; h < H; ++h) {
          rope->apply(t + h * hd, positions[r * n + i]);
          rope->apply(t + E + h * hd, positions[r * n + i]);
        }
      std::memcpy(cache.keys(layer, r) + static_cast<size_t>(past + i) * E, t + E, E * sizeof(float));
      std::memcpy(cache.values(layer, r) + static_cast<size_t>(past + i) * E, t + 2 * E, E * sizeof(float));
    }
}

void mlp_forward(const ModelConfig& c, const BlockWeights& w, const float* h, int M, BlockScratch& s, bool row_invariant) {
  linear(h, M, w.fc_in, s.mlp.data(), row_invariant);
  kernels::activate(c.activation, s.mlp.data(), static_cast<size_t>(M) * c.inner_dim());
  linear(s.mlp.data(), M, w.fc_out, s.mlp_out.data(), row_invariant);
}

// Packed batch: qkv rows of the real tokens into their places in the rows * n grid, zeros for the
// padding rows (their keys and values go into the cache, where nothing reads them; zeros keep the
// attention's products finite).
void unpack_rows(const float* packed, const std::vector<int>& real, int all, size_t width, float* out) {
  size_t k = 0;
  for (int i = 0; i < all; ++i) {
    float* dst = out + static_cast<size_t>(i) * width;
    if (k < real.size() && real[k] == i)
      std::memcpy(dst, packed + k++ * width, width * sizeof(float));
    else
      std::memset(dst, 0, width * sizeof(float));
  }
}

}  // namespace

void block_body(const ModelConfig& c, const BlockWeights& w, float* x, int M, BlockScratch& s, bool row_invariant,
                const AttendFn& attend) {
  const int E = c.n_embd;
  const size_t ME = static_cast<size_t>(M) * E;
  s.reserve(M, c);
  kernels::layer_norm(x, M, E, w.ln_1.w, w.ln_1.b, c.layer_norm_epsilon, s.h.data());
  linear(s.h.data(), M, w.qkv, s.qkv.data(), row_invariant);
  attend(s.qkv.data(), s.attn.data());
  linear(s.attn.data(), M, w.attn_out, s.proj.data(), row_invariant);
  if (c.arch == Arch::GPTJ) {
    // Parallel block: attention and MLP both read ln_1(x).
    mlp_forward(c, w, s.h.data(), M, s, row_invariant);
    for (size_t i = 0; i < ME; ++i) x[i] += s.proj[i] + s.mlp_out[i];
    return;
  }
  for (size_t i = 0; i < ME; ++i) x[i] += s.proj[i];
  kernels::layer_norm(x, M, E, w.ln_2.w, w.ln_2.b, c.layer_norm_epsilon, s.h.data());
  mlp_forward(c, w, s.h.data(), M, s, row_invariant);
  for (size_t i = 0; i < ME; ++i) x[i] += s.mlp_out[i];
}

void block_forward(const ModelConfig& c, int layer, const BlockWeights& w, const Rope* rope, float* x, int rows,
                   int n, const int32_t* positions, int past, KVCache& cache, BlockScratch& s,
                   const std::vector<int>* real) {
  const int all = rows * n, M = real ? static_cast<int>(real->size()) : all, E = c.n_embd;
  if (M == 0) {  // nothing but padding: zero keys and values
    s.qkv_all.assign(static_cast<size_t>(all) * 3 * E, 0.0f);
    return store_keys_values(c, layer, rope, s.qkv_all.data(), rows, n, positions, past, cache);
  }
  block_body(c, w, x, M, s, false, [&](float* packed_qkv, float* packed_attn) {
    float* qkv = packed_qkv;
    float* attn = packed_attn;
    if (real) {
      s.qkv_all.resize(static_cast<size_t>(all) * 3 * E);
      s.attn_all.resize(static_cast<size_t>(all) * E);
      unpack_rows(packed_qkv, *real, all, 3 * static_cast<size_t>(E), s.qkv_all.data());
      qkv = s.qkv_all.data();
      attn = s.attn_all.data();
    }
    store_keys_values(c, layer, rope, qkv, rows, n, positions, past, cache);
    attention_forward(c, layer, qkv, rows, n, past, cache, attn);
    if (real)
      for (int k = 0; k < M; ++k)
        std::memcpy(packed_attn + static_cast<size_t>(k) * E, attn + static_cast<size_t>((*real)[k]) * E,
                    E * sizeof(float));
  });
}

}  // namespace lmforge
