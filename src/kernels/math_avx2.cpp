// AVX2/FMA element-wise kernels: exp-based activations, softmax and layer norm. The exp is the
// Cephes single-precision one (range reduction by ln 2 in two parts, degree-6 polynomial, about
// 1 ulp), which keeps logits well inside the 1e-4 relative parity with HF.
#include <immintrin.h>

#include <cmath>

#include "kernels/isa.h"

namespace lmforge::kernels::avx2 {
namespace {

inline __m256i tail_mask(size_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

inline float hmax(__m256 v) {
  __m128 lo = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_max_ps(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

// e^x. Below ln(FLT_MIN) (and for -inf) the result is exactly 0; above 88 it saturates at e^88
// (only reached inside 1 / (1 + e^x), where that is 0 to float precision). NaN stays NaN.
inline __m256 exp256(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3365447505531f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(lo, _mm256_min_ps(_mm256_set1_ps(88.0f), x));  // operand order keeps NaN
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, z, r);
  p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

// x / (1 + e^(x * (a + b x^2))): gelu_tanh with a = -2 sqrt(2/pi), b = a * 0.044715; a sigmoid
// gate with b = 0.
inline __m256 gate(__m256 x, __m256 a, __m256 b) {
  const __m256 arg = _mm256_mul_ps(x, _mm256_fmadd_ps(b, _mm256_mul_ps(x, x), a));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp256(arg)));
}

void apply_gate(float* x, size_t n, float a_, float b_) {
  const __m256 a = _mm256_set1_ps(a_), b = _mm256_set1_ps(b_);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gate(_mm256_loadu_ps(x + i), a, b));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, gate(_mm256_maskload_ps(x + i, m), a, b));
  }
}

}  // namespace

void gelu_tanh(float* x, size_t n) {
  const float a = -2.0f * 0.7978845608028654f;
  apply_gate(x, n, a, a * 0.044715f);
}

void mul_sigmoid(float* x, size_t n, float a) { apply_gate(x, n, -a, 0.0f); }

void softmax(float* x, int n) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 vmax = ninf;
  int i = 0;
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  const int r = n - i;
  const __m256i tm = tail_mask(r);
  if (r) vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, tm), _mm256_castsi256_ps(tm)));
  const __m256 mx = _mm256_set1_ps(hmax(vmax));

  __m256 vsum = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
    _mm256_storeu_ps(x + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  if (r) {
    const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, tm), mx)), _mm256_castsi256_ps(tm));
    _mm256_maskstore_ps(x + i, tm, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum(vsum));
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  if (r) _mm256_maskstore_ps(x + i, tm, _mm256_mul_ps(_mm256_maskload_ps(x + i, tm), inv));
}

void layer_norm_row(const float* x, int E, const float* gamma, const float* beta, float eps, float* y) {
  const int r = E % 8, body = E - r;
  const __m256i tm = tail_mask(r);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= body; i += 16) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
  }
  for (; i < body; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
  if (r) s1 = _mm256_add_ps(s1, _mm256_maskload_ps(x + body, tm));
  const float mean_s = hsum(_mm256_add_ps(s0, s1)) / static_cast<float>(E);
  const __m256 mean = _mm256_set1_ps(mean_s);

  s0 = s1 = _mm256_setzero_ps();
  for (i = 0; i + 16 <= body; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), mean);
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mean);
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
  }
  for (; i < body; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mean);
    s0 = _mm256_fmadd_ps(d, d, s0);
  }
  if (r) {
    const __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + body, tm), mean), _mm256_castsi256_ps(tm));
    s1 = _mm256_fmadd_ps(d, d, s1);
  }
  const float var = hsum(_mm256_add_ps(s0, s1)) / static_cast<float>(E);
  const __m256 rstd = _mm256_set1_ps(1.0f / std::sqrt(var + eps));

  for (i = 0; i < body; i += 8) {
    const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mean), rstd);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma + i), _mm256_loadu_ps(beta + i)));
  }
  if (r) {
    const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + body, tm), mean), rstd);
    _mm256_maskstore_ps(y + body, tm,
                        _mm256_fmadd_ps(d, _mm256_maskload_ps(gamma + body, tm), _mm256_maskload_ps(beta + body, tm)));
  }
}

}  // namespace lmforge::kernels::avx2
