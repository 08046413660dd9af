// matmul_wt_rows on AVX2: rows_kernel.h over 8-lane vectors (panels of 8 activation rows).
// Register tiles: 2 panels × 6 weight rows (12 accumulators of the 16 registers; 3 × 4 measured
// 10-25 % slower at 32-64 rows on AMD EPYC), or 1 panel × 8 weight rows up to 8 rows.
//
// Up to kFewRows rows (decode of a few sequences), gemm_few_rows puts 8 weight rows (outputs) in
// the lanes instead, an 8 × 8 block of weights transposed in registers, as rows_avx512.cpp does
// with 16: the same chains, the same bits, the weights streamed at the speed of memory.
#include "kernels/rows_kernel.h"

namespace lmforge::kernels::avx2 {
namespace {

struct V8 {
  using T = __m256;
  static constexpr int L = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static T broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T set1(float v) { return _mm256_set1_ps(v); }
  static void store(float* p, T v) { _mm256_store_ps(p, v); }
};

// r[i] = 8 weights of row i  ->  r[c] = weight c of rows 0..7.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4g + c], 128-bit lane h: element 4h + c of rows 4g .. 4g+3.
  for (int g = 0; g < 2; ++g) {
    u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

inline __m256i lanes_below(int r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// y[m*ldy + n .. n+rows) for m < M: outputs n .. n+rows-1 (rows <= 8) in the lanes, fp32 weight
// rows at w (row stride K). `ahead`: 8 weight rows to prefetch into L2 meanwhile (nullptr: none).
template <int M>
void few_block(const float* x, int K, const float* w, int rows, const float* scales, const float* bias, int n,
               float* y, int ldy, const float* ahead) {
  __m256 acc[M];
  for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
  for (int k = 0; k < K; k += 8) {
    const int width = std::min(8, K - k);
    const __m256i cols = lanes_below(width);
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      r[i] = i < rows ? _mm256_maskload_ps(w + static_cast<long>(i) * K + k, cols) : _mm256_setzero_ps();
      if (ahead) _mm_prefetch(reinterpret_cast<const char*>(ahead + static_cast<long>(i) * K + k), _MM_HINT_T1);
    }
    transpose8(r);
    if (width == 8) {  // constant indices, so r and acc stay in registers
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c)
#pragma GCC unroll 8
        for (int m = 0; m < M; ++m) acc[m] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + static_cast<long>(m) * K + k + c), r[c], acc[m]);
    } else {  // only the real k: a zero weight would still add a step to the chain
      for (int c = 0; c < width; ++c)
        for (int m = 0; m < M; ++m) acc[m] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + static_cast<long>(m) * K + k + c), r[c], acc[m]);
    }
  }
  const __m256i live = lanes_below(rows);
  const __m256 b = bias ? _mm256_maskload_ps(bias + n, live) : _mm256_setzero_ps();
  const __m256 sc = scales ? _mm256_maskload_ps(scales + n, live) : _mm256_setzero_ps();
  for (int m = 0; m < M; ++m)
    _mm256_maskstore_ps(y + static_cast<long>(m) * ldy + n, live,
                        scales ? _mm256_fmadd_ps(acc[m], sc, b) : _mm256_add_ps(acc[m], b));
}

template <int M>
void few_rows(const float* x, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  const float* scales = w.type == WeightType::I8 ? w.scales : nullptr;
  thread_local std::vector<float> buf;
  for (int n = n0; n < n1; n += 8) {
    const int rows = std::min(8, n1 - n);
    // 16 rows ahead, as avx2::gemv_rows prefetches two column blocks ahead.
    const float* ahead = w.type == WeightType::F32 && n + 24 <= n1
                             ? static_cast<const float*>(w.data) + static_cast<long>(n + 16) * w.K
                             : nullptr;
    long ldw;  // = K: the whole rows
    few_block<M>(x, w.K, rows::fp32_rows(w, n, rows, 0, w.K, buf, ldw), rows, scales, bias, n, y, ldy, ahead);
  }
}

}  // namespace

void gemm_few_rows(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  switch (M) {
    case 1: return few_rows<1>(x, w, bias, n0, n1, y, ldy);
    case 2: return few_rows<2>(x, w, bias, n0, n1, y, ldy);
    case 3: return few_rows<3>(x, w, bias, n0, n1, y, ldy);
    default: return few_rows<4>(x, w, bias, n0, n1, y, ldy);
  }
}

void gemm_rows(const float* xp, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  if (M <= 8) return rows::columns<V8, 1, 8>(xp, M, w, bias, n0, n1, y, ldy);
  return rows::columns<V8, 2, 6>(xp, M, w, bias, n0, n1, y, ldy);
}

}  // namespace lmforge::kernels::avx2
