// AVX2/FMA kernels. Batch-1 decode is bound by the bandwidth of streaming the weights, so the
// kernel reads each weight row once and uses it for up to 4 activation rows, with independent
// accumulators to hide FMA latency.
#include <immintrin.h>

#include "kernels/isa.h"

namespace lmforge::kernels::avx2 {
namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

// One weight row against M activation rows (M fixed at compile time).
template <int M>
inline void row_dots(const float* x, int K, const float* wrow, float* out) {
  __m256 acc0[M], acc1[M];
  for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    __m256 w0 = _mm256_loadu_ps(wrow + k);
    __m256 w1 = _mm256_loadu_ps(wrow + k + 8);
    for (int m = 0; m < M; ++m) {
      acc0[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + m * K + k), acc0[m]);
      acc1[m] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + m * K + k + 8), acc1[m]);
    }
  }
  for (; k + 8 <= K; k += 8) {
    __m256 w0 = _mm256_loadu_ps(wrow + k);
    for (int m = 0; m < M; ++m) acc0[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + m * K + k), acc0[m]);
  }
  for (int m = 0; m < M; ++m) {
    float s = hsum(_mm256_add_ps(acc0[m], acc1[m]));
    for (int kk = k; kk < K; ++kk) s += wrow[kk] * x[m * K + kk];
    out[m] = s;
  }
}

template <int M>
void gemv_block(const float* x, int K, const float* w, int n0, int n1, float* y, int ldy) {
  float out[M];
  for (int n = n0; n < n1; ++n) {
    const float* wrow = w + static_cast<long>(n) * K;
    _mm_prefetch(reinterpret_cast<const char*>(wrow + 4 * K), _MM_HINT_T0);
    row_dots<M>(x, K, wrow, out);
    for (int m = 0; m < M; ++m) y[static_cast<long>(m) * ldy + n] = out[m];
  }
}

}  // namespace

void gemv_rows(const float* x, int M, int K, const float* w, int n0, int n1, float* y, int ldy) {
  switch (M) {
    case 1: gemv_block<1>(x, K, w, n0, n1, y, ldy); break;
    case 2: gemv_block<2>(x, K, w, n0, n1, y, ldy); break;
    case 3: gemv_block<3>(x, K, w, n0, n1, y, ldy); break;
    default: gemv_block<4>(x, K, w, n0, n1, y, ldy); break;
  }
}

float dot(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int n) {
  __m256 va = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace lmforge::kernels::avx2
