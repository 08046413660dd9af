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

// A slice of the chains: k in [k0, k0 + kn). The first slice starts them at 0, the others resume
// from the partial sums left in y (a float stored and loaded back is the same float, so the chain
// is unchanged); the last one ends them (bias, int8 scale).
struct Slice {
  int k0, kn;
  bool first, last;
};

// y[(p * L + l) * ldy + n + j] for the MR panels at `xp` (of P per k) and weight rows j < NR at
// w + j * ldw (w: the slice's first column); `rows` activation rows are real (the rest of the last
// panel is padding). NR is at most 8: each weight row needs a pointer register of its own.
// `ahead`: NR weight rows a later tile reads (same layout), prefetched into L2 meanwhile.
template <class V, int MR, int NR>
inline void tile(const float* xp, int P, const Slice& sl, const float* w, long ldw, int rows, const float* scales,
                 const float* bias, int n, float* y, int ldy, const float* ahead) {
  constexpr int L = V::L;
  const long kstride = static_cast<long>(P) * L;
  xp += sl.k0 * kstride;
  alignas(64) float lanes[MR][NR][L];
  typename V::T acc[MR][NR];
  if (sl.first) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 32
      for (int j = 0; j < NR; ++j) acc[i][j] = V::zero();
  } else {
    for (int i = 0; i < MR; ++i) {
      const int r0 = i * L, r1 = std::min(rows, r0 + L);
      for (int r = r0; r < r0 + L; ++r)
        for (int j = 0; j < NR; ++j) lanes[i][j][r - r0] = r < r1 ? y[static_cast<long>(r) * ldy + n + j] : 0.0f;
    }
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 32
      for (int j = 0; j < NR; ++j) acc[i][j] = V::load(lanes[i][j]);
  }
  // The prefetch goes once per 16 k: a cache line of each row.
  for (int k = 0; k < sl.kn; ++k) {
    if (ahead && k % 16 == 0)
#pragma GCC unroll 32
      for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(ahead + j * ldw + k), _MM_HINT_T1);
    typename V::T xv[MR];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) xv[i] = V::load(xp + k * kstride + i * L);
#pragma GCC unroll 32
    for (int j = 0; j < NR; ++j) {
      const typename V::T b = V::broadcast(w + j * ldw + k);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) acc[i][j] = V::fma(xv[i], b, acc[i][j]);
    }
  }
  // The chains' last step (the bias, or the int8 scale and the bias in one fma) on whole vectors,
  // then out through memory with constant indices only: indexing acc at run time would keep the
  // whole array in memory, and GCC then stores it back at every step of the loop above.
#pragma GCC unroll 32
  for (int j = 0; j < NR; ++j) {
    const typename V::T b = V::set1(bias ? bias[n + j] : 0.0f);
    const typename V::T sc = V::set1(scales ? scales[n + j] : 0.0f);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
      V::store(lanes[i][j], !sl.last ? acc[i][j] : scales ? V::fma(acc[i][j], sc, b) : V::add(acc[i][j], b));
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
inline void column(const float* xp, int P, int M, const Slice& sl, const float* w, long ldw, const float* scales,
                   const float* bias, int n, float* y, int ldy, const float* ahead) {
  constexpr int L = V::L;
  int p = 0;
  for (; p + MR <= P; p += MR, ahead = nullptr)  // prefetch once, in the first pass over w's rows
    tile<V, MR, NR>(xp + p * L, P, sl, w, ldw, M - p * L, scales, bias, n, y + static_cast<long>(p) * L * ldy, ldy, ahead);
  if constexpr (MR > 1) {
    const float* xr = xp + p * L;
    float* yr = y + static_cast<long>(p) * L * ldy;
    const int rows = M - p * L;
    switch (P - p) {
      case 1: tile<V, 1, NR>(xr, P, sl, w, ldw, rows, scales, bias, n, yr, ldy, ahead); break;
      case 2: if constexpr (MR > 2) tile<V, 2, NR>(xr, P, sl, w, ldw, rows, scales, bias, n, yr, ldy, ahead); break;
      case 3: if constexpr (MR > 3) tile<V, 3, NR>(xr, P, sl, w, ldw, rows, scales, bias, n, yr, ldy, ahead); break;
      default: break;
    }
  }
}

// Weight rows [n, n + count), columns [k0, k0 + kn), as fp32: in place for F32 (ldw = K), else
// widened into `buf` (ldw = kn; a sequential read the hardware prefetches well).
inline const float* fp32_rows(const WeightMatrix& w, int n, int count, int k0, int kn, std::vector<float>& buf,
                              long& ldw) {
  const size_t K = w.K;
  if (w.type == WeightType::F32) {
    ldw = static_cast<long>(K);
    return static_cast<const float*>(w.data) + n * K + k0;
  }
  ldw = kn;
  buf.resize(static_cast<size_t>(count) * kn);
  const size_t tsize = weight_type_size(w.type);
  for (int j = 0; j < count; ++j)
    avx2::to_float(w.type, static_cast<const char*>(w.data) + ((n + j) * K + k0) * tsize, kn,
                   buf.data() + static_cast<size_t>(j) * kn);
  return buf.data();
}

// The activations of a slice stay in L2 while all of a task's weight rows stream past: slices of
// at most this many bytes of packed rows (96 rows × 3072 fp32, 1.2 MB, spilled out of a 1 MB L2
// and made the 768 × 3072 product 50 % slower than in one piece at 64 rows).
constexpr long kSliceBytes = 384 << 10;

// All of [n0, n1): column blocks of NR weight rows, then single rows for the rest, slice by slice.
template <class V, int MR, int NR>
void columns(const float* xp, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  const int K = w.K, P = (M + V::L - 1) / V::L;
  const float* scales = w.type == WeightType::I8 ? w.scales : nullptr;  // (I8_DYNAMIC never comes here)
  const long per_k = static_cast<long>(P) * V::L * sizeof(float);
  const int slices = static_cast<int>(std::max(1L, (per_k * K + kSliceBytes - 1) / kSliceBytes));
  const int step = ((K + slices - 1) / slices + 15) / 16 * 16;  // whole cache lines of weights
  thread_local std::vector<float> buf;
  const bool f32 = w.type == WeightType::F32;
  for (int k0 = 0; k0 < K; k0 += step) {
    const Slice sl{k0, std::min(step, K - k0), k0 == 0, k0 + step >= K};
    long ldw;
    int n = n0;
    for (; n + NR <= n1; n += NR) {
      // fp32 weights stream straight from memory, the next block's rows prefetched meanwhile.
      const float* ahead =
          f32 && n + 2 * NR <= n1 ? static_cast<const float*>(w.data) + static_cast<long>(n + NR) * K + k0 : nullptr;
      const float* wr = fp32_rows(w, n, NR, k0, sl.kn, buf, ldw);
      column<V, MR, NR>(xp, P, M, sl, wr, ldw, scales, bias, n, y, ldy, ahead);
    }
    for (; n < n1; ++n) {
      const float* wr = fp32_rows(w, n, 1, k0, sl.kn, buf, ldw);
      column<V, MR, 1>(xp, P, M, sl, wr, ldw, scales, bias, n, y, ldy, nullptr);
    }
  }
}

}  // namespace lmforge::kernels::rows
