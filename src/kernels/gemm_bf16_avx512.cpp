// AVX-512 BF16 (vdpbf16ps) code of our own: the peak probe (kernels::bf16_dot_peak_gflops) and
// the BF16_COMPUTE rows kernel for a few activation rows (batched decode) and for matmul_wt_rows.
// Prompts and large batches run on oneDNN's bf16 matmul instead (kernels/onednn.h), measured faster
// there than the GEMM of our own this file held (training 1.37x, prefill 1.1-1.2x;
// docs/PERFORMANCE.md) but slower than this kernel at 16 rows and below.
//
// gemm_bf16_rows: pairs of k in the lanes, as a GEMV: every 32 k of a weight row are one vector,
// multiplied with the same 32 k of each activation row, so each weight row streams from memory
// once per call, in order. Lane l of an output's accumulator sums the pairs l, l + 16, l + 32, ...
// (each its own vdpbf16ps chain), and the 16 lanes end in one fixed tree (lane_sum). Neither
// depends on M or on the tile a row falls in: the same bits for a row alone or among others.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/isa.h"
#include "lmforge/kernels/gemm_bf16.h"

namespace lmforge::kernels::avx512 {
namespace {

// The 16 lanes of one output in a fixed tree: lane i + lane i + 8, then + 4, + 2, + 1.
inline float lane_sum(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

// y[i * ldy + n + j] = lane_sum of the chains of activation row i (bf16 at xb + i * ldx) and
// weight row n + j, + bias[n + j], for i < MR, j < NR. The last 32 k are loaded under a mask
// (zero past K). `ahead` (or null): NR weight rows of a later block, one line of each prefetched
// into L2 per step (with several rows read side by side the hardware prefetcher falls behind).
template <int MR, int NR>
void tile(const uint16_t* xb, int ldx, const uint16_t* w, int K, const float* bias, int n, float* y, int ldy,
          const uint16_t* ahead) {
  __m512 acc[MR][NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const uint16_t* wr = w + static_cast<long>(n) * K;
  auto step = [&](int k, __mmask32 cols) {
    if (ahead)
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(ahead + static_cast<long>(j) * K + k), _MM_HINT_T1);
    __m512bh wv[NR];
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_maskz_loadu_epi16(cols, wr + static_cast<long>(j) * K + k);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(cols, xb + static_cast<long>(i) * ldx + k);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
    }
  };
  int k = 0;
  for (; k + 32 <= K; k += 32) step(k, ~__mmask32{0});
  if (k < K) step(k, (__mmask32{1} << (K - k)) - 1);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j)
      y[static_cast<long>(i) * ldy + n + j] = lane_sum(acc[i][j]) + (bias ? bias[n + j] : 0.0f);
}

// Weight blocks ahead that the tiles prefetch (as gemv_avx2.cpp's).
constexpr int kPrefetchBlocks = 2;

// All M rows against weight rows [n, n + NR): tiles of 6 rows (the first one prefetching), then
// the rows left. 6 × 4 accumulators (24 of the 32 registers) measured 1.1-1.15x the 4 × 4 tiles at
// 16 and 64 rows and the same as 8 × 3.
template <int NR>
void column_block(const uint16_t* xb, int ldx, int M, const uint16_t* w, int K, const float* bias, int n, int n_end,
                  float* y, int ldy) {
  const uint16_t* ahead =
      n + (kPrefetchBlocks + 1) * NR <= n_end ? w + static_cast<long>(n + kPrefetchBlocks * NR) * K : nullptr;
  int m = 0;
  for (; m + 6 <= M; m += 6, ahead = nullptr)
    tile<6, NR>(xb + static_cast<long>(m) * ldx, ldx, w, K, bias, n, y + static_cast<long>(m) * ldy, ldy, ahead);
  const uint16_t* xm = xb + static_cast<long>(m) * ldx;
  float* ym = y + static_cast<long>(m) * ldy;
  switch (M - m) {
    case 5: tile<5, NR>(xm, ldx, w, K, bias, n, ym, ldy, ahead); break;
    case 4: tile<4, NR>(xm, ldx, w, K, bias, n, ym, ldy, ahead); break;
    case 3: tile<3, NR>(xm, ldx, w, K, bias, n, ym, ldy, ahead); break;
    case 2: tile<2, NR>(xm, ldx, w, K, bias, n, ym, ldy, ahead); break;
    case 1: tile<1, NR>(xm, ldx, w, K, bias, n, ym, ldy, ahead); break;
    default: break;
  }
}

}  // namespace

void gemm_bf16_rows(const uint16_t* xb, int ldx, int M, const uint16_t* w, int K, const float* bias, int n0, int n1,
                    float* y, int ldy) {
  if (M == 1) {
    // One weight row after the other: a single sequential stream, which the hardware prefetcher
    // follows best (as the GEMV's one-row path), with the first line of the row 8 ahead prefetched.
    for (int n = n0; n < n1; ++n) {
      if (n + 8 < n1) _mm_prefetch(reinterpret_cast<const char*>(w + static_cast<long>(n + 8) * K), _MM_HINT_T0);
      tile<1, 1>(xb, ldx, w, K, bias, n, y, ldy, nullptr);
    }
    return;
  }
  int n = n0;
  for (; n + 4 <= n1; n += 4) column_block<4>(xb, ldx, M, w, K, bias, n, n1, y, ldy);
  for (; n < n1; ++n) column_block<1>(xb, ldx, M, w, K, bias, n, n1, y, ldy);
}

float bf16_dot_probe(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f7f3f7f), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
  for (long it = 0; it < iters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_cvtss_f32(s);
}

}  // namespace lmforge::kernels::avx512
