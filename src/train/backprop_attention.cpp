// Causal self-attention and GPT-J's rotary embedding, forward and backward (shapes in
// backprop_layers.h).
//
// Attention runs one task per (row b, head h); inside it queries go in blocks of kQueryBlock,
// each block's matmuls only spanning the keys it can see (0 .. last query of the block), which
// skips most of the causally masked half. The probabilities are not stored: backward recomputes
// them from q, k and the saved log-sum-exp, one block at a time.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "train/backprop_layers.h"
#include "train/backprop_math.h"

namespace lmforge::backprop {

// ---- rotary -----------------------------------------------------------------------------------

RotaryTable::RotaryTable(int rotary_dim, int n_positions) : dim(rotary_dim) {
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

namespace {

// Rotates each pair (x[2i], x[2i+1]) of one head by angle (sign * angle_i):
//   (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin). sign -1 applies the transpose (backward).
void rotate_pairs(float* x, const float* sn, const float* cs, int half, float sign) {
  for (int i = 0; i < half; ++i) {
    const float x0 = x[2 * i], x1 = x[2 * i + 1], s = sign * sn[i];
    x[2 * i] = x0 * cs[i] - x1 * s;
    x[2 * i + 1] = x1 * cs[i] + x0 * s;
  }
}

// q and k sit in the first 2E floats of each qkv row: rotate both with one loop over 2H heads.
void rotate_qk(float* qkv, const int32_t* pos, const RotaryTable& rope, int M, int E, int H, float sign) {
  const int hd = E / H, half = rope.dim / 2;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < M; ++r) {
    float* row = qkv + static_cast<size_t>(r) * 3 * E;
    const float* sn = rope.sin.data() + static_cast<size_t>(pos[r]) * half;
    const float* cs = rope.cos.data() + static_cast<size_t>(pos[r]) * half;
    for (int h = 0; h < 2 * H; ++h) rotate_pairs(row + h * hd, sn, cs, half, sign);
  }
}

}  // namespace

void rotary_forward(float* qkv, const int32_t* pos, const RotaryTable& rope, int M, int E, int H) {
  rotate_qk(qkv, pos, rope, M, E, H, 1.0f);
}

void rotary_backward(float* dqkv, const int32_t* pos, const RotaryTable& rope, int M, int E, int H) {
  rotate_qk(dqkv, pos, rope, M, E, H, -1.0f);  // a rotation's transpose is the opposite rotation
}

// ---- attention --------------------------------------------------------------------------------

namespace {

constexpr int kQueryBlock = 64;

// One (row, head): pointers to its q, k, v (row stride ld = 3E) and outputs (stride E).
struct HeadView {
  const float *q, *k, *v;
  int ld;
  const uint8_t* mask;  // [T]
  int T, hd;
  float scale;
};

HeadView head_view(const float* qkv, const uint8_t* mask, const AttentionShape& s, int b, int h) {
  const int hd = s.E / s.H;
  const float* base = qkv + static_cast<size_t>(b) * s.T * 3 * s.E + static_cast<size_t>(h) * hd;
  return {base, base + s.E, base + 2 * s.E, 3 * s.E, mask + static_cast<size_t>(b) * s.T, s.T, hd, s.scale};
}

// Hides the keys query `i` must not see in its score row s[0..L): later positions and padding.
// Returns whether any key stays visible.
bool mask_scores(float* s, int i, int L, const uint8_t* mask) {
  bool any = false;
  for (int j = 0; j <= i; ++j) {
    if (mask[j])
      any = true;
    else
      s[j] = -INFINITY;
  }
  for (int j = i + 1; j < L; ++j) s[j] = -INFINITY;
  return any;
}

// Softmax of one masked score row in place; returns its log-sum-exp (-inf and a zero row when no
// key is visible).
float softmax_row(float* s, int i, int L, const uint8_t* mask) {
  if (!mask_scores(s, i, L, mask)) {
    std::fill(s, s + L, 0.0f);
    return -INFINITY;
  }
  const float mx = row_max(s, i + 1);
  const float sum = exp_shift_sum(s, L, mx);
  scale_row(s, i + 1, 1.0f / sum);
  return mx + std::log(sum);
}

// Probabilities of one score row again from its log-sum-exp: exp(s - lse) on visible keys.
void probabilities_row(float* s, int i, int L, const uint8_t* mask, float lse) {
  if (lse == -INFINITY || !mask_scores(s, i, L, mask)) {
    std::fill(s, s + L, 0.0f);
    return;
  }
  exp_shift_sum(s, L, lse);
}

// Queries [q0, q1) of one head: S = scale q kᵀ over keys [0, q1), softmax, out = P v.
void forward_block(const HeadView& v, int q0, int q1, float* out, int ldo, float* lse, float* S) {
  const int nq = q1 - q0, L = q1;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, L, v.hd, v.scale, v.q + static_cast<size_t>(q0) * v.ld, v.ld,
              v.k, v.ld, 0.0f, S, L);
  for (int i = 0; i < nq; ++i) lse[q0 + i] = softmax_row(S + static_cast<size_t>(i) * L, q0 + i, L, v.mask);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, v.hd, L, 1.0f, S, L, v.v, v.ld, 0.0f,
              out + static_cast<size_t>(q0) * ldo, ldo);
}

// Gradients of one head's output rows, for queries [q0, q1) (keys [0, q1)):
//   P recomputed; dv += Pᵀ dO; dP = dO vᵀ; dS = P ∘ (dP - rowsum(dO ∘ O)); dq = scale dS k;
//   dk += scale dSᵀ q. dq/dk/dv have the row stride of qkv.
void backward_block(const HeadView& v, int q0, int q1, const float* dout, const float* out, int ldo, const float* lse,
                    float* dq, float* dk, float* dv, float* P, float* dS) {
  const int nq = q1 - q0, L = q1, hd = v.hd;
  const float* qb = v.q + static_cast<size_t>(q0) * v.ld;
  const float* dob = dout + static_cast<size_t>(q0) * ldo;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, L, hd, v.scale, qb, v.ld, v.k, v.ld, 0.0f, P, L);
  for (int i = 0; i < nq; ++i) probabilities_row(P + static_cast<size_t>(i) * L, q0 + i, L, v.mask, lse[q0 + i]);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, hd, nq, 1.0f, P, L, dob, ldo, 1.0f, dv, v.ld);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, L, hd, 1.0f, dob, ldo, v.v, v.ld, 0.0f, dS, L);
  for (int i = 0; i < nq; ++i) {
    // Σ_j P_ij dP_ij = dO_i · O_i (O = P v), the cheaper form.
    const float* o = out + static_cast<size_t>(q0 + i) * ldo;
    const float* d = dob + static_cast<size_t>(i) * ldo;
    float D = 0.0f;
    for (int e = 0; e < hd; ++e) D += d[e] * o[e];
    float* ds = dS + static_cast<size_t>(i) * L;
    const float* p = P + static_cast<size_t>(i) * L;
    for (int j = 0; j < L; ++j) ds[j] = p[j] * (ds[j] - D);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, L, v.scale, dS, L, v.k, v.ld, 0.0f,
              dq + static_cast<size_t>(q0) * v.ld, v.ld);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, hd, nq, v.scale, dS, L, qb, v.ld, 1.0f, dk, v.ld);
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, const uint8_t* mask, const AttentionShape& s) {
  const int hd = s.E / s.H, tasks = s.B * s.H;
  // sgemm runs single-threaded inside the parallel region (OpenBLAS's OpenMP build does so).
#pragma omp parallel
  {
    std::vector<float> S(static_cast<size_t>(std::min(s.T, kQueryBlock)) * s.T);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < tasks; ++t) {
      const int b = t / s.H, h = t % s.H;
      const HeadView v = head_view(qkv, mask, s, b, h);
      float* o = out + static_cast<size_t>(b) * s.T * s.E + static_cast<size_t>(h) * hd;
      float* l = lse + static_cast<size_t>(t) * s.T;
      for (int q0 = 0; q0 < s.T; q0 += kQueryBlock)
        forward_block(v, q0, std::min(s.T, q0 + kQueryBlock), o, s.E, l, S.data());
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                        const uint8_t* mask, const AttentionShape& s) {
  const int hd = s.E / s.H, tasks = s.B * s.H;
#pragma omp parallel
  {
    const size_t block = static_cast<size_t>(std::min(s.T, kQueryBlock)) * s.T;
    std::vector<float> P(block), dS(block);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < tasks; ++t) {
      const int b = t / s.H, h = t % s.H;
      const HeadView v = head_view(qkv, mask, s, b, h);
      const size_t head_off = static_cast<size_t>(b) * s.T * 3 * s.E + static_cast<size_t>(h) * hd;
      float *dq = dqkv + head_off, *dk = dq + s.E, *dv = dq + 2 * s.E;
      for (int i = 0; i < s.T; ++i) {  // dk, dv accumulate over the query blocks
        std::fill(dk + static_cast<size_t>(i) * 3 * s.E, dk + static_cast<size_t>(i) * 3 * s.E + hd, 0.0f);
        std::fill(dv + static_cast<size_t>(i) * 3 * s.E, dv + static_cast<size_t>(i) * 3 * s.E + hd, 0.0f);
      }
      const size_t out_off = static_cast<size_t>(b) * s.T * s.E + static_cast<size_t>(h) * hd;
      const float* l = lse + static_cast<size_t>(t) * s.T;
      for (int q0 = 0; q0 < s.T; q0 += kQueryBlock)
        backward_block(v, q0, std::min(s.T, q0 + kQueryBlock), dout + out_off, out + out_off, s.E, l, dq, dk, dv,
                       P.data(), dS.data());
    }
  }
}

}  // namespace lmforge::backprop
