#pragma once
// The row-invariant product behind kernels::matmul_wt_rows, written once over a vector type V and
// included by rows_avx2.cpp (8 lanes) and rows_avx512.cpp (16 lanes), each compiled with its flags.
//
// Every output is one fma chain over k in order:
//   s = 0; for k = 0 .. K-1: s = fma(x[m, k], w[n, k], s); y[m, n] = s + bias[n]
// (int8: fma(s, scale[n], bias[n]), the chain over the stored integers)
// so it has the same bits whatever M is, whatever tile or thread it falls in, and on every ISA
// level (the portable loop in kernels.cpp is the same chain with std::fma).
//
// The vector lanes hold activation rows, not k: x arrives packed in P panels of V::L rows, the
// panels of one k side by side (xp[(k * P + p) * L + l] = x[p * L + l, k], zero past M), so one
// pointer addresses a whole tile's activations; a weight is broadcast to all lanes,
// and a register tile of MR panels × NR weight rows is MR × NR independent chains. No horizontal
// sums, and each weight row is read from memory once per call for up to MR × L activation rows
// (64 on AVX-512), where the GEMV kernel's register tiles read it once per 4.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/isa.h"

namespace lmforge::kernels::rows {

// As the GEMV kernels, the end of every chain: int8 gets its row scale in one fma with the bias,
// other types add the bias: fma(s, scale, bias) or s + bias (bias 0 when there is none).

// y[(p * L + l) * ldy + n + j] for the MR panels at `xp` (of P per k) and weight rows w + j * K,
// j < NR; `rows` activation rows are real (the rest of the last panel is padding). NR is at most
// 8: each weight row needs a pointer register of its own.
// `ahead`: NR weight rows a later tile reads, prefetched into L2 while this one runs (nullptr: none).
template <class V, int MR, int NR>
inline void tile(const float* xp, int P, int K, const float* w, int rows, const float* scales, const float* bias, int n,
                 float* y, int ldy, const float* ahead) {
  constexpr int L = V::L;
  const long kstride = static_cast<long>(P) * L;
  typename V::T acc[MR][NR];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 32
    for (int j = 0; j < NR; ++j) acc[i][j] = V::zero();
  // One loop over k (a nested one over blocks of k made GCC store the AVX2 accumulators back to
  // the stack at every step); the prefetch goes once per 16 k, a cache line of each row.
  for (int k = 0; k < K; ++k) {
    if (ahead && k % 16 == 0)
#pragma GCC unroll 32
      for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(ahead + static_cast<long>(j) * K + k), _MM_HINT_T1);
    typename V::T xv[MR];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) xv[i] = V::load(xp + k * kstride + i * L);
#pragma GCC unroll 32
    for (int j = 0; j < NR; ++j) {
      const typename V::T b = V::broadcast(w + static_cast<long>(j) * K + k);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) acc[i][j] = V::fma(xv[i], b, acc[i][j]);
    }
  }
  // The chains' last step (the bias, or the int8 scale and the bias in one fma) on whole vectors,
  // then out through memory with constant indices only: indexing acc at run time would keep the whole array in
  // memory, and GCC then stores it back at every step of the loop above.
  alignas(64) float lanes[MR][NR][L];
#pragma GCC unroll 32
  for (int j = 0; j < NR; ++j) {
    const typename V::T b = V::set1(bias ? bias[n + j] : 0.0f);
    const typename V::T sc = V::set1(scales ? scales[n + j] : 0.0f);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) V::store(lanes[i][j], scales ? V::fma(acc[i][j], sc, b) : V::add(acc[i][j], b));
  }
  for (int i = 0; i < MR; ++i) {
    const int r0 = i * L, r1 = std::min(rows, r0 + L);
    for (int r = r0; r < r1; ++r) {
      float* yr = y + static_cast<long>(r) * ldy + n;
      for (int j = 0; j < NR; ++j) yr[j] = lanes[i][j][r - r0];
    }
  }
}

// Output columns [n, n + NR) for all P panels: tiles of MR panels, then the panels left over.
template <class V, int MR, int NR>
inline void column(const float* xp, int P, int M, int K, const float* w, const float* scales, const float* bias, int n,
                   float* y, int ldy, const float* ahead) {
  constexpr int L = V::L;
  int p = 0;
  for (; p + MR <= P; p += MR, ahead = nullptr)  // prefetch once, in the first pass over w's rows
    tile<V, MR, NR>(xp + p * L, P, K, w, M - p * L, scales, bias, n, y + static_cast<long>(p) * L * ldy, ldy, ahead);
  if constexpr (MR > 1) {
    const float* xr = xp + p * L;
    float* yr = y + static_cast<long>(p) * L * ldy;
    const int rows = M - p * L;
    switch (P - p) {
      case 1: tile<V, 1, NR>(xr, P, K, w, rows, scales, bias, n, yr, ldy, ahead); break;
      case 2: if constexpr (MR > 2) tile<V, 2, NR>(xr, P, K, w, rows, scales, bias, n, yr, ldy, ahead); break;
      case 3: if constexpr (MR > 3) tile<V, 3, NR>(xr, P, K, w, rows, scales, bias, n, yr, ldy, ahead); break;
      default: break;
    }
  }
}

// Weight rows [n, n + count) as fp32 rows of K: the matrix itself for F32, else widened into `buf`.
inline const float* fp32_rows(const WeightMatrix& w, int n, int count, std::vector<float>& buf) {
  const size_t K = w.K;
  if (w.type == WeightType::F32) return static_cast<const float*>(w.data) + n * K;
  buf.resize(count * K);
  avx2::to_float(w.type, static_cast<const char*>(w.data) + n * K * weight_type_size(w.type), count * K, buf.data());
  return buf.data();
}

// All of [n0, n1): column blocks of NR weight rows, then single rows for the rest.
template <class V, int MR, int NR>
void columns(const float* xp, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  const int K = w.K, P = (M + V::L - 1) / V::L;
  const float* scales = w.type == WeightType::I8 || w.type == WeightType::I8_DYNAMIC ? w.scales : nullptr;
  thread_local std::vector<float> buf;
  int n = n0;
  for (; n + NR <= n1; n += NR) {
    // fp32 weights stream straight from memory, the next block's rows prefetched meanwhile; other
    // types are widened a block at a time (a sequential read the hardware prefetches well).
    const bool f32 = w.type == WeightType::F32;
    const float* ahead = f32 && n + 2 * NR <= n1 ? static_cast<const float*>(w.data) + static_cast<long>(n + NR) * K : nullptr;
    column<V, MR, NR>(xp, P, M, K, fp32_rows(w, n, NR, buf), scales, bias, n, y, ldy, ahead);
  }
  for (; n < n1; ++n) column<V, MR, 1>(xp, P, M, K, fp32_rows(w, n, 1, buf), scales, bias, n, y, ldy, nullptr);
}

}  // namespace lmforge::kernels::rows
