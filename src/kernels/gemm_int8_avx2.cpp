// AVX2 int8 × int8 products for I8_DYNAMIC weights: activation rows quantized to int8 on the fly,
// multiplied by the int8 weights with integer dot products (the math is in kernels.h).
//
// Why: widening int8 weights to fp32 costs three instructions per 8 weights (sign-extend, convert,
// FMA), slower than memory delivers them, so weight-only int8 decode is compute-bound.
// AVX2 has no signed int8 dot product; the standard substitute is vpmaddubsw (unsigned bytes ×
// signed bytes, adjacent pairs summed to int16): |w| as the unsigned operand and q_x with w's sign
// applied (vpsignb, which also zeroes q_x where w is 0) as the signed one. A pair sums to at most
// 2 · 128 · 127 = 32512 < 2^15 (even a -128 weight: its vpabsb is 128 as an unsigned byte), so
// nothing saturates; vpmaddwd by 1 then widens the pairs to int32. That is 32 products in five
// instructions (four when |w| serves several activation rows), and the sums are exact: any order
// of accumulation gives the portable path's bits.
//
// Tiling follows gemv_avx2.cpp: M = 1 streams the weight rows one after the other (the order the
// hardware prefetcher follows best, plus a software prefetch far ahead); M > 1 runs register
// tiles of up to 4 activation rows × 2 weight rows, the weight rows of a tile staying in L1 for
// the next activation rows, over row blocks of 64 for prefill.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/isa.h"

namespace lmforge::kernels::avx2 {
namespace {

inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The first r < 32 weights at p, the rest 0. The last row of a matrix ends at the end of its buffer,
// so a weight row is never read past its end. (Activation rows need no tail: they are zero-padded.)
inline __m256i load_tail(const int8_t* p, int r) {
  alignas(32) int8_t buf[32] = {};
  std::memcpy(buf, p, static_cast<size_t>(r));
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
}

// acc + 8 int32 lanes, each the sum of 4 of the 32 products x[k] * w[k]; aw = |w|.
inline __m256i dot32(__m256i acc, __m256i w, __m256i aw, __m256i x) {
  const __m256i pairs = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
inline __m256i dot32(__m256i acc, __m256i w, __m256i x) { return dot32(acc, w, _mm256_abs_epi8(w), x); }

// {Σ a, Σ b, Σ c, Σ d} over the 8 lanes of each.
inline __m128i hsum4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}
inline int32_t hsum(__m256i v) { return _mm_cvtsi128_si32(hsum4(v, v, v, v)); }

// The output from the exact integer sum: written as an explicit fma so that neither path's
// compiler may contract or split it differently (the portable path calls the same fmaf).
inline float finish(int32_t sum, float sx, const float* scales, const float* bias, int n) {
  return std::fma(static_cast<float>(sum), sx * scales[n], bias ? bias[n] : 0.0f);
}

// Σ_k qx[k] * w[k] over one weight row of K int8, as 8 int32 lanes (qx zero-padded past K).
// Two accumulators: the adds are a 1-cycle chain, two keep it off the critical path.
inline __m256i row_dot(const int8_t* qx, const int8_t* w, int K) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0;
  int k = 0;
  for (; k + 64 <= K; k += 64) {
    a0 = dot32(a0, load32(w + k), load32(qx + k));
    a1 = dot32(a1, load32(w + k + 32), load32(qx + k + 32));
  }
  if (k + 32 <= K) {
    a0 = dot32(a0, load32(w + k), load32(qx + k));
    k += 32;
  }
  if (k < K) a1 = dot32(a1, load_tail(w + k, K - k), load32(qx + k));
  return _mm256_add_epi32(a0, a1);
}

// Weight rows ahead whose first lines the M = 1 kernel prefetches. Measured over a GPT-2 pass
// (one and two threads, variants alternated, best of 30): 128 or 256 rows ahead streamed 10-30 %
// faster than no prefetch (32 rows: ~5 %, 64: ~10 %; 8 or 16 rows, the fp32 kernel's distance
// scaled, were slower than none), about as fast as a bare read loop. Presumably it opens the
// next 4 KiB pages early, where the hardware prefetcher stops.
constexpr int kPrefetchRows = 128;

// M = 1: weight rows one after the other (a single sequential stream), four at a time so that
// their sums are reduced and scaled together. N: the matrix's rows (prefetches stay inside it).
void gemv_one_row(const int8_t* qx, float sx, int K, int N, const int8_t* w, const float* scales, const float* bias,
                  int n0, int n1, float* y) {
  int n = n0;
  for (; n + 4 <= n1; n += 4) {
    const int8_t* wr = w + static_cast<long>(n) * K;
    if (n + kPrefetchRows + 4 <= N)
      for (int j = 0; j < 4; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(wr + static_cast<long>(kPrefetchRows + j) * K), _MM_HINT_T0);
    const __m256i a = row_dot(qx, wr, K), b = row_dot(qx, wr + K, K);
    const __m256i c = row_dot(qx, wr + 2L * K, K), d = row_dot(qx, wr + 3L * K, K);
    const __m128 sums = _mm_cvtepi32_ps(hsum4(a, b, c, d));
    const __m128 s = _mm_mul_ps(_mm_set1_ps(sx), _mm_loadu_ps(scales + n));
    const __m128 b4 = bias ? _mm_loadu_ps(bias + n) : _mm_setzero_ps();
    _mm_storeu_ps(y + n, _mm_fmadd_ps(sums, s, b4));  // = finish() lane by lane
  }
  for (; n < n1; ++n) y[n] = finish(hsum(row_dot(qx, w + static_cast<long>(n) * K, K)), sx, scales, bias, n);
}

// y[i*ldy + n + j] for i < MR activation rows, j < NR weight rows from n. `ahead` (or null): the
// same columns of NR later weight rows, brought into L2 one line per row per 64 bytes of k, because
// with several rows read side by side the hardware prefetcher falls behind. The K % 32 tail is
// the last trip of the same loop: with a separate tail block GCC stored every accumulator to the
// stack on every trip.
template <int MR, int NR>
inline void tile(const int8_t* qx, size_t ldq, const float* sx, int K, const int8_t* w, const float* scales,
                 const float* bias, int n, float* y, int ldy, const int8_t* ahead) {
  __m256i acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_si256();
  const int8_t* wr = w + static_cast<long>(n) * K;
  for (int k = 0; k < K; k += 32) {
    if (ahead && k % 64 == 0)
      for (int j = 0; j < NR; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + static_cast<long>(j) * K + k), _MM_HINT_T1);
    __m256i wv[NR], aw[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const int8_t* p = wr + static_cast<long>(j) * K + k;
      wv[j] = k + 32 <= K ? load32(p) : load_tail(p, K - k);
      aw[j] = _mm256_abs_epi8(wv[j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256i xv = load32(qx + i * ldq + k);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = dot32(acc[i][j], wv[j], aw[j], xv);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j)
      y[static_cast<long>(i) * ldy + n + j] = finish(hsum(acc[i][j]), sx[i], scales, bias, n + j);
}

// Weight-row blocks ahead that the first tile of a block prefetches.
constexpr int kPrefetchBlocks = 2;

// NR weight rows from n against activation rows [0, M), 4 at a time.
template <int NR>
void column_block(const int8_t* qx, size_t ldq, const float* sx, int M, int K, const int8_t* w, const float* scales,
                  const float* bias, int n, int n_end, float* y, int ldy) {
  const int8_t* ahead =
      n + (kPrefetchBlocks + 1) * NR <= n_end ? w + static_cast<long>(n + kPrefetchBlocks * NR) * K : nullptr;
  int m = 0;
  for (; m + 4 <= M; m += 4, ahead = nullptr)
    tile<4, NR>(qx + m * ldq, ldq, sx + m, K, w, scales, bias, n, y + static_cast<long>(m) * ldy, ldy, ahead);
  const int8_t* xm = qx + m * ldq;
  float* ym = y + static_cast<long>(m) * ldy;
  switch (M - m) {
    case 1: tile<1, NR>(xm, ldq, sx + m, K, w, scales, bias, n, ym, ldy, ahead); break;
    case 2: tile<2, NR>(xm, ldq, sx + m, K, w, scales, bias, n, ym, ldy, ahead); break;
    case 3: tile<3, NR>(xm, ldq, sx + m, K, w, scales, bias, n, ym, ldy, ahead); break;
    default: break;
  }
}

// Activation rows per pass over a task's weight slab when M is large (prefill): 64 rows of up to
// 3072 int8 stay in L2 while the slab streams past them.
constexpr int kRowBlock = 64;

// Rows [0, M) (M <= kRowBlock) against weight rows [n0, n1) in 4 × 2 tiles. Every tile shape
// tried (4 × 2, 4 × 3, 1 × 3 for M = 1) ran at the same ~60 G multiply-adds/s on one core: the
// limit is the two multiplies (vpmaddubsw, vpmaddwd) per 32 products, so the smallest tile that
// reuses each loaded vector is kept.
void row_block(const int8_t* qx, size_t ldq, const float* sx, int M, int K, const int8_t* w, const float* scales,
               const float* bias, int n0, int n1, float* y, int ldy) {
  int n = n0;
  for (; n + 2 <= n1; n += 2) column_block<2>(qx, ldq, sx, M, K, w, scales, bias, n, n1, y, ldy);
  if (n < n1) column_block<1>(qx, ldq, sx, M, K, w, scales, bias, n, n1, y, ldy);
}

// Eight values divided by s, clamped to [-127, 127] (a NaN becomes -127: maxps returns its second
// operand, as fmaxf does in the portable path) and rounded with the current rounding mode (round
// half to even by default; the portable path's lrintf uses the same mode).
inline __m256i quantize8(__m256 v, __m256 s) {
  v = _mm256_max_ps(_mm256_div_ps(v, s), _mm256_set1_ps(-127.0f));
  return _mm256_cvtps_epi32(_mm256_min_ps(v, _mm256_set1_ps(127.0f)));
}

// The 8 int32 (all in [-127, 127]) of v as 8 int8.
inline void store8(__m256i v, int8_t* out) {
  const __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packs_epi16(h, h));
}

inline __m256i tail_mask(int r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// max |x[k]|, NaNs ignored (maxps returns its second operand, the running max, for a NaN lane).
float abs_max(const float* x, int K) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask), m);
  if (k < K) m = _mm256_max_ps(_mm256_and_ps(_mm256_maskload_ps(x + k, tail_mask(K - k)), abs_mask), m);
  m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
  m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4e));
  m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xb1));
  return _mm256_cvtss_f32(m);
}

}  // namespace

float quantize_activation_row(const float* x, int K, int8_t* q) {
  const float s = abs_max(x, K) / 127.0f;
  if (!(s > 0.0f)) {
    std::memset(q, 0, static_cast<size_t>(K));
    return 0.0f;
  }
  const __m256 sv = _mm256_set1_ps(s);
  int k = 0;
  for (; k + 32 <= K; k += 32) {  // 32 values packed to 32 bytes in one store
    const __m256i i0 = quantize8(_mm256_loadu_ps(x + k), sv), i1 = quantize8(_mm256_loadu_ps(x + k + 8), sv);
    const __m256i i2 = quantize8(_mm256_loadu_ps(x + k + 16), sv), i3 = quantize8(_mm256_loadu_ps(x + k + 24), sv);
    // packs works within 128-bit lanes: 4-byte groups come out as i0 lo, i1 lo, i2 lo, i3 lo, i0 hi, ...
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k),
                        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
  for (; k + 8 <= K; k += 8) store8(quantize8(_mm256_loadu_ps(x + k), sv), q + k);
  if (k < K) {
    int8_t buf[8];
    store8(quantize8(_mm256_maskload_ps(x + k, tail_mask(K - k)), sv), buf);
    std::memcpy(q + k, buf, static_cast<size_t>(K - k));
  }
  return s;
}

void gemm_i8_dynamic(const int8_t* qx, size_t ldq, const float* sx, int M, const WeightMatrix& w, const float* bias,
                     int n0, int n1, float* y, int ldy) {
  const int8_t* wq = static_cast<const int8_t*>(w.data);
  if (M == 1) return gemv_one_row(qx, sx[0], w.K, w.N, wq, w.scales, bias, n0, n1, y);
  for (int m = 0; m < M; m += kRowBlock)
    row_block(qx + m * ldq, ldq, sx + m, std::min(kRowBlock, M - m), w.K, wq, w.scales, bias, n0, n1,
              y + static_cast<long>(m) * ldy, ldy);
}

}  // namespace lmforge::kernels::avx2
