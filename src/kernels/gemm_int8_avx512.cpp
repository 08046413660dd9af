// AVX-512 VNNI int8 × int8 products for I8_DYNAMIC weights: the same exact int32 sums as
// gemm_int8_avx2.cpp (so the same output bits), with vpdpbusd: 64 products per instruction,
// unsigned bytes × signed bytes summed by fours into int32 without saturation.
//
// vpdpbusd wants one unsigned operand. The activations are quantized to [-127, 127]; stored as
// u = q + 128 (q ^ 0x80, computed once per call) they are unsigned bytes, and
//   Σ_k q[k] · w[k] = Σ_k u[k] · w[k] − 128 · Σ_k w[k],
// where Σ w is one more vpdpbusd (with a vector of ones) per weight vector, shared by every
// activation row of a tile. |Σ u·w| ≤ 255 · 128 · K fits an int32 for K ≤ 65536; wider matrices go
// to the AVX2 kernel. Any int8 weight, -128 included (the AVX2 kernel's sign trick is not needed).
//
// Tiling as in gemm_int8_avx2.cpp: M = 1 streams the weight rows one after the other; M > 1 runs
// tiles of up to 4 activation rows × 4 weight rows over row blocks of 64.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/isa.h"

namespace lmforge::kernels::avx512 {
namespace {

inline __m512i load64(const int8_t* p) { return _mm512_loadu_si512(p); }
inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }
inline __mmask64 tail_mask(int r) { return r >= 64 ? ~__mmask64{0} : (__mmask64{1} << r) - 1; }

inline float finish(int32_t sum, float sx, const float* scales, const float* bias, int n) {
  return std::fma(static_cast<float>(sum), sx * scales[n], bias ? bias[n] : 0.0f);
}

// 16 int32 lanes: Σ u·w and Σ w over one weight row of K int8 (u: the offset activations).
inline void row_dot(const uint8_t* u, const int8_t* w, int K, __m512i& dot, __m512i& wsum) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i d0 = _mm512_setzero_si512(), d1 = d0, s0 = d0, s1 = d0;
  int k = 0;
  for (; k + 128 <= K; k += 128) {
    const __m512i w0 = load64(w + k), w1 = load64(w + k + 64);
    d0 = _mm512_dpbusd_epi32(d0, load64(u + k), w0);
    d1 = _mm512_dpbusd_epi32(d1, load64(u + k + 64), w1);
    s0 = _mm512_dpbusd_epi32(s0, ones, w0);
    s1 = _mm512_dpbusd_epi32(s1, ones, w1);
  }
  for (; k < K; k += 64) {
    const __mmask64 m = tail_mask(K - k);
    const __m512i w0 = _mm512_maskz_loadu_epi8(m, w + k);
    d0 = _mm512_dpbusd_epi32(d0, _mm512_maskz_loadu_epi8(m, u + k), w0);
    s0 = _mm512_dpbusd_epi32(s0, ones, w0);
  }
  dot = _mm512_add_epi32(d0, d1);
  wsum = _mm512_add_epi32(s0, s1);
}

// Σ q·w = Σ u·w − 128 Σ w, lane by lane first (int32 wraps, but the total is exact: it fits), then
// one reduction.
inline int32_t exact_sum(__m512i dot, __m512i wsum) {
  return _mm512_reduce_add_epi32(_mm512_sub_epi32(dot, _mm512_slli_epi32(wsum, 7)));
}

// As gemm_int8_avx2.cpp: the first lines of the rows this far ahead, which opens the next pages early.
constexpr int kPrefetchRows = 128;

void gemv_one_row(const uint8_t* u, float sx, int K, int N, const int8_t* w, const float* scales, const float* bias,
                  int n0, int n1, float* y) {
  for (int n = n0; n < n1; ++n) {
    const int8_t* wr = w + static_cast<long>(n) * K;
    if (n + kPrefetchRows < N) _mm_prefetch(reinterpret_cast<const char*>(wr + static_cast<long>(kPrefetchRows) * K), _MM_HINT_T0);
    __m512i dot, wsum;
    row_dot(u, wr, K, dot, wsum);
    y[n] = finish(exact_sum(dot, wsum), sx, scales, bias, n);
  }
}

// y[i*ldy + n + j] for i < MR activation rows, j < NR weight rows from n; `ahead` (or null): the
// same columns of later weight rows, prefetched into L2.
template <int MR, int NR>
inline void tile(const uint8_t* u, size_t ldq, const float* sx, int K, const int8_t* w, const float* scales,
                 const float* bias, int n, float* y, int ldy, const int8_t* ahead) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc[MR][NR], ws[NR];
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    ws[j] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_setzero_si512();
  }
  const int8_t* wr = w + static_cast<long>(n) * K;
  for (int k = 0; k < K; k += 64) {
    const __mmask64 m = tail_mask(K - k);
    if (ahead)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + static_cast<long>(j) * K + k), _MM_HINT_T1);
    __m512i wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      wv[j] = _mm512_maskz_loadu_epi8(m, wr + static_cast<long>(j) * K + k);
      ws[j] = _mm512_dpbusd_epi32(ws[j], ones, wv[j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512i xv = _mm512_maskz_loadu_epi8(m, u + i * ldq + k);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv, wv[j]);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j)
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
      y[static_cast<long>(i) * ldy + n + j] = finish(exact_sum(acc[i][j], ws[j]), sx[i], scales, bias, n + j);
}

constexpr int kPrefetchBlocks = 2;

template <int NR>
void column_block(const uint8_t* u, size_t ldq, const float* sx, int M, int K, const int8_t* w, const float* scales,
                  const float* bias, int n, int n_end, float* y, int ldy) {
  const int8_t* ahead =
      n + (kPrefetchBlocks + 1) * NR <= n_end ? w + static_cast<long>(n + kPrefetchBlocks * NR) * K : nullptr;
  int m = 0;
  for (; m + 4 <= M; m += 4, ahead = nullptr)
    tile<4, NR>(u + m * ldq, ldq, sx + m, K, w, scales, bias, n, y + static_cast<long>(m) * ldy, ldy, ahead);
  const uint8_t* um = u + m * ldq;
  float* ym = y + static_cast<long>(m) * ldy;
  switch (M - m) {
    case 1: tile<1, NR>(um, ldq, sx + m, K, w, scales, bias, n, ym, ldy, ahead); break;
    case 2: tile<2, NR>(um, ldq, sx + m, K, w, scales, bias, n, ym, ldy, ahead); break;
    case 3: tile<3, NR>(um, ldq, sx + m, K, w, scales, bias, n, ym, ldy, ahead); break;
    default: break;
  }
}

constexpr int kRowBlock = 64;

void row_block(const uint8_t* u, size_t ldq, const float* sx, int M, int K, const int8_t* w, const float* scales,
               const float* bias, int n0, int n1, float* y, int ldy) {
  int n = n0;
  for (; n + 4 <= n1; n += 4) column_block<4>(u, ldq, sx, M, K, w, scales, bias, n, n1, y, ldy);
  for (; n < n1; ++n) column_block<1>(u, ldq, sx, M, K, w, scales, bias, n, n1, y, ldy);
}

}  // namespace

void gemm_i8_dynamic(const int8_t* qx, size_t ldq, const float* sx, int M, const WeightMatrix& w, const float* bias,
                     int n0, int n1, float* y, int ldy) {
  if (w.K > kMaxVnniK) return avx2::gemm_i8_dynamic(qx, ldq, sx, M, w, bias, n0, n1, y, ldy);
  // The offset activations, once per task (M rows of K bytes: small next to the weight slab).
  thread_local std::vector<uint8_t> ubuf;
  ubuf.resize(static_cast<size_t>(M) * ldq);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (size_t i = 0; i < ubuf.size(); i += 64) {
    const __mmask64 m = tail_mask(static_cast<int>(std::min<size_t>(64, ubuf.size() - i)));
    _mm512_mask_storeu_epi8(ubuf.data() + i, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, qx + i), flip));
  }
  const uint8_t* u = ubuf.data();
  const int8_t* wq = static_cast<const int8_t*>(w.data);
  if (M == 1) return gemv_one_row(u, sx[0], w.K, w.N, wq, w.scales, bias, n0, n1, y);
  for (int m = 0; m < M; m += kRowBlock)
    row_block(u + m * ldq, ldq, sx + m, std::min(kRowBlock, M - m), w.K, wq, w.scales, bias, n0, n1,
              y + static_cast<long>(m) * ldy, ldy);
}

void scale_i8_sums(const int32_t* sums, int lds, const float* sx, int M, const WeightMatrix& w, const float* bias,
                   int n0, int n1, float* y, int ldy) {
  for (int m = 0; m < M; ++m) {
    const int32_t* s = sums + static_cast<size_t>(m) * lds;  // column n0 first
    float* yr = y + static_cast<size_t>(m) * ldy;
    const __m512 sm = _mm512_set1_ps(sx[m]);
    for (int n = n0; n < n1; n += 16) {
      const __mmask16 k = n1 - n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n1 - n)) - 1);
      const __m512 scale = _mm512_mul_ps(sm, _mm512_maskz_loadu_ps(k, w.scales + n));
      const __m512 b = bias ? _mm512_maskz_loadu_ps(k, bias + n) : _mm512_setzero_ps();
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, s + (n - n0)));
      _mm512_mask_storeu_ps(yr + n, k, _mm512_fmadd_ps(sum, scale, b));
    }
  }
}

}  // namespace lmforge::kernels::avx512
