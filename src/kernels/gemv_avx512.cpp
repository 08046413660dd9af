// AVX-512 twin of gemv_avx2.cpp's gemv_rows: the same weight-streaming design (each weight row read
// from memory once per call and used for every activation row, register tiles of MR activation rows
// × NR weight rows, L2 prefetch of later column blocks), with 16-float vectors, 32 registers (bigger
// tiles: up to 4 × 6) and masked loads for the K % 16 tail.
//
// Batch invariance holds within this path as within the AVX2 one: for M > 1 every output is one
// accumulator summed over k in order (16 lanes), folded to 8 lanes and reduced in the AVX2 kernel's
// fixed order, whatever tile it fell in; M = 1 runs the AVX2 one-row kernel. The bits differ from
// the AVX2 path's (other lane partial sums), so a process runs one path throughout (kernels::isa()).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/isa.h"

namespace lmforge::kernels::avx512 {
namespace {

// 16 lanes folded to 8 (low half + high half), then ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7)).
inline __m256 fold(__m512 v) { return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)); }
inline float hsum(__m512 v) {
  __m256 h = fold(v);
  h = _mm256_hadd_ps(h, h);
  h = _mm256_hadd_ps(h, h);
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}
// {hsum(a), hsum(b), hsum(c), hsum(d)}: the same additions in the same order, four at once.
inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(fold(a), fold(b)), _mm256_hadd_ps(fold(c), fold(d)));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Sixteen weights widened to fp32 in registers; the masked forms read only the lanes of `m` (the
// others are 0) and never touch memory past them.
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 widen_bf16(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
inline __m512 load16(const Bf16* p) { return widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m512 load16(const Bf16* p, __mmask16 m) { return widen_bf16(_mm256_maskz_loadu_epi16(m, p)); }
inline __m512 load16(const F16* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m512 load16(const F16* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
inline __m512 load16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __m512 load16(const int8_t* p, __mmask16 m) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p))); }

inline __mmask16 tail_mask(int r) { return static_cast<__mmask16>((1u << r) - 1); }

// As gemv_avx2.cpp: one explicit fma for int8, so no tile's instantiation contracts differently.
inline float finish(float sum, const float* scales, const float* bias, int n) {
  const float b = bias ? bias[n] : 0.0f;
  return scales ? std::fma(sum, scales[n], b) : sum + b;
}

// y[i*ldy + n + j] = x[i,:] · w[n + j,:] (scaled, + bias) for i < MR, j < NR. `ahead`, `pass`,
// `passes`: the L2 prefetch of later weight rows, shared among the tiles of one column block (see
// gemv_avx2.cpp).
template <int MR, int NR, class W>
inline void tile(const float* x, int K, const W* w, const float* scales, const float* bias, int n, float* y, int ldy,
                 const W* ahead, int pass, int passes) {
  constexpr int kLine = 64 / sizeof(W);
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const W* wr = w + static_cast<long>(n) * K;
  const int share = (K / kLine + passes - 1) / passes * kLine;
  const int pf0 = ahead ? pass * share : K, pf1 = std::min(K, pf0 + share);
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    if (k >= pf0 && k < pf1 && k % kLine == 0)
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + static_cast<long>(j) * K + k), _MM_HINT_T1);
    __m512 wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = load16(wr + static_cast<long>(j) * K + k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + static_cast<long>(i) * K + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(wv[j], xv, acc[i][j]);
    }
  }
  if (k < K) {
    const __mmask16 m = tail_mask(K - k);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load16(wr + static_cast<long>(j) * K + k, m);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + static_cast<long>(i) * K + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(wv[j], xv, acc[i][j]);
    }
  }
  for (int j = 0; j < NR; ++j) {
    if constexpr (MR == 4) {
      float s[4];
      _mm_storeu_ps(s, hsum4(acc[0][j], acc[1][j], acc[2][j], acc[3][j]));
      for (int i = 0; i < 4; ++i) y[static_cast<long>(i) * ldy + n + j] = finish(s[i], scales, bias, n + j);
    } else {
      for (int i = 0; i < MR; ++i) y[static_cast<long>(i) * ldy + n + j] = finish(hsum(acc[i][j]), scales, bias, n + j);
    }
  }
}

constexpr int kPrefetchBlocks = 2;

template <int NR, class W>
inline void column_block(const float* x, int M, int K, const W* w, const float* scales, const float* bias, int n,
                         int n_end, float* y, int ldy) {
  const W* ahead = n + (kPrefetchBlocks + 1) * NR <= n_end ? w + static_cast<long>(n + kPrefetchBlocks * NR) * K : nullptr;
  const int passes = (M + 3) / 4;
  int m = 0, pass = 0;
  for (; m + 4 <= M; m += 4, ++pass)
    tile<4, NR>(x + static_cast<long>(m) * K, K, w, scales, bias, n, y + static_cast<long>(m) * ldy, ldy, ahead, pass,
                passes);
  const float* xm = x + static_cast<long>(m) * K;
  float* ym = y + static_cast<long>(m) * ldy;
  switch (M - m) {
    case 1: tile<1, NR>(xm, K, w, scales, bias, n, ym, ldy, ahead, pass, passes); break;
    case 2: tile<2, NR>(xm, K, w, scales, bias, n, ym, ldy, ahead, pass, passes); break;
    case 3: tile<3, NR>(xm, K, w, scales, bias, n, ym, ldy, ahead, pass, passes); break;
    default: break;
  }
}

// Tiles: up to 3 activation rows × 8 weight rows, else 4 × 6 (24 accumulators of the 32
// registers, each weight vector used 4 times and each activation vector 6 times per load).
template <class W>
void gemv_rows_typed(const float* x, int M, int K, const W* w, const float* scales, const float* bias, int n0, int n1,
                     float* y, int ldy) {
  int n = n0;
  if (M <= 3) {
    for (; n + 8 <= n1; n += 8) column_block<8>(x, M, K, w, scales, bias, n, n1, y, ldy);
  } else {
    for (; n + 6 <= n1; n += 6) column_block<6>(x, M, K, w, scales, bias, n, n1, y, ldy);
  }
  for (; n < n1; ++n) column_block<1>(x, M, K, w, scales, bias, n, n1, y, ldy);
}

}  // namespace

void gemv_rows(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  // M = 1 (decode) is bound by memory: the AVX2 one-row kernel. A 16-lane twin of it was no faster
  // for fp32 and bf16 and 15-20 % slower for int8 decode on the AVX-512 machine measured (AMD EPYC,
  // whose 512-bit operations run as two 256-bit halves).
  if (M == 1) return avx2::gemv_rows(x, M, w, bias, n0, n1, y, ldy);
  switch (w.type) {
    case WeightType::F32: return gemv_rows_typed(x, M, w.K, static_cast<const float*>(w.data), nullptr, bias, n0, n1, y, ldy);
    case WeightType::BF16:
    case WeightType::BF16_COMPUTE: return gemv_rows_typed(x, M, w.K, static_cast<const Bf16*>(w.data), nullptr, bias, n0, n1, y, ldy);
    case WeightType::F16: return gemv_rows_typed(x, M, w.K, static_cast<const F16*>(w.data), nullptr, bias, n0, n1, y, ldy);
    case WeightType::I8:
    case WeightType::I8_DYNAMIC:
      return gemv_rows_typed(x, M, w.K, static_cast<const int8_t*>(w.data), w.scales, bias, n0, n1, y, ldy);
  }
}

}  // namespace lmforge::kernels::avx512
