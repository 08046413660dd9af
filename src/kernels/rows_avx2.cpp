// matmul_wt_rows on AVX2: rows_kernel.h over 8-lane vectors (panels of 8 activation rows).
// Register tiles: 2 panels × 6 weight rows (12 accumulators of the 16 registers; 3 × 4 measured
// 10-25 % slower at 32-64 rows on AMD EPYC), or 1 panel × 8 weight rows up to 8 rows.
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

}  // namespace

void gemm_rows(const float* xp, int M, const WeightMatrix& w, const float* bias, int n0, int n1, float* y, int ldy) {
  if (M <= 8) return rows::columns<V8, 1, 8>(xp, M, w, bias, n0, n1, y, ldy);
  return rows::columns<V8, 2, 6>(xp, M, w, bias, n0, n1, y, ldy);
}

}  // namespace lmforge::kernels::avx2
