// matmul_wt_rows on AVX-512: rows_kernel.h over 16-lane vectors (panels of 16 activation rows).
// Register tiles: 4 panels × 6 weight rows (24 accumulators; 64 activation rows per weight read),
// else up to 3 panels × 8 weight rows.
//
// A few rows (decode of a handful of sequences) would leave most lanes idle there, so
// gemm_few_rows puts 16 weight rows (outputs) in the lanes instead: a 16 × 16 block of weights is
// transposed in registers, then each activation broadcast. The chains, and so the bits, are the
// same; the weights stream once at the speed of memory.
#include "kernels/rows_kernel.h"
#include "kernels/transpose_avx512.h"

namespace lmforge::kernels::avx512 {
namespace {

struct V16 {
  using T = __m512;
  static constexpr int L = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static T broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T set1(float v) { return _mm512_set1_ps(v); }
  static void store(float* p, T v) { _mm512_store_ps(p, v); }
};

// y[m*ldy + n .. n+rows) for m < M: outputs n .. n+rows-1 (rows <= 16) in the lanes, fp32 weight
// rows at w (row stride K). `ahead`: 16 weight rows to prefetch into L2 meanwhile.
template <int M>
void few_block(const float* x, int K, const float* w, int rows, const float* scales, const float* bias, int n,
               float* y, int ldy, const float* ahead) {
  __m512 acc[M];
#pragma GCC unroll 16
  for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
  const __mmask16 live = static_cast<__mmask16>((1u << rows) - 1);
  for (int k = 0; k < K; k += 16) {
    const int width = std::min(16, K - k);
    const __mmask16 cols = static_cast<__mmask16>((1u << width) - 1);
    __m512 r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      r[i] = i < rows ? _mm512_maskz_loadu_ps(cols, w + static_cast<long>(i) * K + k) : _mm512_setzero_ps();
      if (ahead) _mm_prefetch(reinterpret_cast<const char*>(ahead + static_cast<long>(i) * K + k), _MM_HINT_T1);
    }
    transpose16(r);
    if (width == 16) {
#pragma GCC unroll 16
      for (int c = 0; c < 16; ++c)
#pragma GCC unroll 16
        for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(x[static_cast<long>(m) * K + k + c]), r[c], acc[m]);
    } else {
      for (int c = 0; c < width; ++c)
        for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(x[static_cast<long>(m) * K + k + c]), r[c], acc[m]);
    }
  }
  const __m512 b = bias ? _mm512_maskz_loadu_ps(live, bias + n) : _mm512_setzero_ps();
  const __m512 sc = scales ? _mm512_maskz_loadu_ps(live, scales + n) : _mm512_setzero_ps();
  for (int m = 0; m < M; ++m) {
    const __m512 v = scales ? _mm512_fmadd_ps(acc[m], sc, b) : _mm512_add_ps(acc[m], b);
    _mm512_mask_storeu_ps(y + static_cast<long>(m) * ldy + n, live, v);
  }
}

template <int M>
void few_rows(const float* x, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  const int K = w.K;
  const float* scales = w.type == WeightType::I8 ? w.scales : nullptr;
  thread_local std::vector<float> buf;
  for (int n = n0; n < n1; n += 16) {
    const int rows = std::min(16, n1 - n);
    const float* ahead = w.type == WeightType::F32 && n + 32 <= n1
                             ? static_cast<const float*>(w.data) + static_cast<long>(n + 16) * K
                             : nullptr;
    long ldw;  // = K: the whole rows
    few_block<M>(x, K, rows::fp32_rows(w, n, rows, 0, w.K, buf, ldw), rows, scales, bias, n, y, ldy, ahead);
  }
}

}  // namespace

void gemm_few_rows(const float* x, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  switch (M) {
    case 1: return few_rows<1>(x, w, bias, n0, n1, y, ldy);
    case 2: return few_rows<2>(x, w, bias, n0, n1, y, ldy);
    case 3: return few_rows<3>(x, w, bias, n0, n1, y, ldy);
    case 4: return few_rows<4>(x, w, bias, n0, n1, y, ldy);
    case 5: return few_rows<5>(x, w, bias, n0, n1, y, ldy);
    case 6: return few_rows<6>(x, w, bias, n0, n1, y, ldy);
    case 7: return few_rows<7>(x, w, bias, n0, n1, y, ldy);
    default: return few_rows<8>(x, w, bias, n0, n1, y, ldy);
  }
}

void pack_rows(const float* x, int M, int K, int P, int p0, int p1, float* xp) {
  const long kstride = static_cast<long>(P) * 16;
  for (int p = p0; p < p1; ++p) {
    const int r0 = p * 16, rows = std::min(16, M - r0);
    int k = 0;
    if (rows == 16)  // whole panels: 16 x 16 blocks transposed in registers
      for (; k + 16 <= K; k += 16) {
        __m512 r[16];
#pragma GCC unroll 16
        for (int l = 0; l < 16; ++l) r[l] = _mm512_loadu_ps(x + static_cast<long>(r0 + l) * K + k);
        transpose16(r);
#pragma GCC unroll 16
        for (int c = 0; c < 16; ++c) _mm512_storeu_ps(xp + (k + c) * kstride + p * 16, r[c]);
      }
    for (; k < K; ++k)
      for (int l = 0; l < 16; ++l) xp[k * kstride + p * 16 + l] = l < rows ? x[static_cast<long>(r0 + l) * K + k] : 0.0f;
  }
}

void gemm_rows(const float* xp, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  switch (std::min((M + 15) / 16, 4)) {
    case 1: return rows::columns<V16, 1, 8>(xp, M, w, bias, n0, n1, y, ldy);
    case 2: return rows::columns<V16, 2, 8>(xp, M, w, bias, n0, n1, y, ldy);
    case 3: return rows::columns<V16, 3, 8>(xp, M, w, bias, n0, n1, y, ldy);
    default: return rows::columns<V16, 4, 6>(xp, M, w, bias, n0, n1, y, ldy);
  }
}

}  // namespace lmforge::kernels::avx512
