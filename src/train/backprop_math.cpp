// Element-wise kernels of the training passes (see backprop_math.h). The AVX2 bodies use a
// function target attribute instead of per-file flags, so this file builds with the library's
// default flags and the choice stays a run-time one.
#include "train/backprop_math.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lmforge/kernels/kernels.h"

#define LMF_AVX2 __attribute__((target("avx2,fma")))

namespace lmforge::backprop {
namespace {

// Asked at each call, not cached in a namespace-scope constant: the kernels library sets its own
// flag during static initialisation, whose order across translation units is unspecified.
bool use_avx2() { return kernels::using_avx2(); }

// e^x for 8 lanes: x = n ln2 + r with |r| <= ln2/2 (ln2 split in a 16-bit head, exact for n*head,
// and a tail), e^r by its Taylor polynomial to degree 7 (truncation < 1e-8, under half an ulp),
// 2^n through the exponent field. Below -87.33 (incl. -inf) the result is 0, above 88.37 it
// saturates near FLT_MAX; NaN stays NaN (max/min keep their second operand on NaN).
LMF_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_set1_ps(88.37f), _mm256_max_ps(lo, x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.4426950408889634f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.4286068202862268e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

LMF_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

LMF_AVX2 inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

LMF_AVX2 float row_max_avx2(const float* x, int n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  float r = hmax8(m);
  for (; i < n; ++i) r = std::max(r, x[i]);
  return r;
}

LMF_AVX2 float exp_shift_sum_avx2(float* x, int n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum8(acc);
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
  return sum;
}

LMF_AVX2 void scale_row_avx2(float* x, int n, float s) {
  const __m256 v = _mm256_set1_ps(s);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), v));
  for (; i < n; ++i) x[i] *= s;
}

// The sigmoid-gated activations are act(u) = u * sigmoid(z), z = u (a + b u²):
//   gelu_new (tanh form, since 0.5 (1 + tanh(y)) = sigmoid(2y)): a = 2 sqrt(2/pi), b = a * 0.044715;
//   quick_gelu: a = 1.702, b = 0; silu: a = 1, b = 0.
// act'(u) = s + u s (1 - s) (a + 3 b u²) with s = sigmoid(z).
struct Gate {
  float a, b;
};

float gate_derivative(float u, Gate g) {
  const float s = 1.0f / (1.0f + std::exp(-u * (g.a + g.b * u * u)));
  return s + u * s * (1.0f - s) * (g.a + 3.0f * g.b * u * u);
}

LMF_AVX2 void gate_backward_avx2(float* d, const float* u, size_t n, Gate g) {
  const __m256 a = _mm256_set1_ps(g.a), b = _mm256_set1_ps(g.b), b3 = _mm256_set1_ps(3.0f * g.b);
  const __m256 one = _mm256_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(u + i);
    const __m256 x2 = _mm256_mul_ps(x, x);
    const __m256 z = _mm256_mul_ps(x, _mm256_fmadd_ps(b, x2, a));
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), z))));
    const __m256 dz = _mm256_fmadd_ps(b3, x2, a);
    const __m256 grad = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(x, s), _mm256_sub_ps(one, s)), dz, s);
    _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_loadu_ps(d + i), grad));
  }
  for (; i < n; ++i) d[i] *= gate_derivative(u[i], g);
}

void gate_backward(float* d, const float* u, size_t n, Gate g) {
  if (use_avx2()) return gate_backward_avx2(d, u, n, g);
  for (size_t i = 0; i < n; ++i) d[i] *= gate_derivative(u[i], g);
}

// gelu (erf form): act(u) = u Phi(u), act'(u) = Phi(u) + u phi(u).
void gelu_erf_backward(float* d, const float* u, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float x = u[i];
    const float cdf = 0.5f * (1.0f + std::erf(x * 0.70710678118654752f));
    const float pdf = 0.39894228040143268f * std::exp(-0.5f * x * x);
    d[i] *= cdf + x * pdf;
  }
}

// torch's relu backward passes the gradient where the output is > 0.
void relu_backward(float* d, const float* u, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = u[i] > 0.0f ? d[i] : 0.0f;
}

void activation_backward_serial(Activation act, float* d, const float* u, size_t n) {
  constexpr float kTanhGate = 2.0f * 0.7978845608028654f;  // 2 sqrt(2/pi)
  switch (act) {
    case Activation::GeluNew:
    case Activation::GeluFast:
    case Activation::GeluPytorchTanh:
      return gate_backward(d, u, n, {kTanhGate, kTanhGate * 0.044715f});
    case Activation::QuickGelu:
      return gate_backward(d, u, n, {1.702f, 0.0f});
    case Activation::Silu:
      return gate_backward(d, u, n, {1.0f, 0.0f});
    case Activation::Gelu:
      return gelu_erf_backward(d, u, n);
    case Activation::Relu:
      return relu_backward(d, u, n);
  }
}

}  // namespace

float row_max(const float* x, int n) {
  if (use_avx2()) return row_max_avx2(x, n);
  float r = -INFINITY;
  for (int i = 0; i < n; ++i) r = std::max(r, x[i]);
  return r;
}

float exp_shift_sum(float* x, int n, float shift) {
  if (use_avx2()) return exp_shift_sum_avx2(x, n, shift);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
  return sum;
}

void scale_row(float* x, int n, float s) {
  if (use_avx2()) return scale_row_avx2(x, n, s);
  for (int i = 0; i < n; ++i) x[i] *= s;
}

void activation_backward(Activation act, float* d, const float* u, size_t n) {
  // Chunks of whole 8-float vectors so the scalar tails only run at the very end.
  constexpr size_t kChunk = 8192;
  const long chunks = static_cast<long>((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 1 && !omp_in_parallel())
  for (long c = 0; c < chunks; ++c) {
    const size_t i0 = static_cast<size_t>(c) * kChunk;
    activation_backward_serial(act, d + i0, u + i0, std::min(kChunk, n - i0));
  }
}

}  // namespace lmforge::backprop
