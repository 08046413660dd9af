// Portable kernels and the run-time choice between them and the AVX2 versions (kernels/isa.h).
#include "lmforge/kernels/kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/isa.h"

namespace lmforge::kernels {
namespace {

bool detect_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
const bool kAvx2 = detect_avx2();

// Rows up to this count go through the weight-streaming GEMV (weights read once per call);
// beyond it sgemm's blocking wins.
constexpr int kGemvMaxRows = 4;

void gemv_rows_portable(const float* x, int M, int K, const float* w, int n0, int n1, float* y, int ldy) {
  for (int n = n0; n < n1; ++n)
    for (int m = 0; m < M; ++m) {
      const float* xr = x + static_cast<long>(m) * K;
      const float* wr = w + static_cast<long>(n) * K;
      float s = 0.f;
      for (int k = 0; k < K; ++k) s += xr[k] * wr[k];
      y[static_cast<long>(m) * ldy + n] = s;
    }
}

// y[M,N] = x w^T for M <= kGemvMaxRows, output columns split across threads in chunks of 16.
void gemv(const float* x, int M, int K, const float* w, int N, float* y) {
  const int chunks = (N + 15) / 16;
#pragma omp parallel for schedule(static) if (static_cast<long>(N) * K > 32768)
  for (int c = 0; c < chunks; ++c) {
    const int n0 = c * 16, n1 = std::min(N, n0 + 16);
    if (kAvx2)
      avx2::gemv_rows(x, M, K, w, n0, n1, y, N);
    else
      gemv_rows_portable(x, M, K, w, n0, n1, y, N);
  }
}

float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

}  // namespace

bool using_avx2() { return kAvx2; }

int num_threads() { return omp_get_max_threads(); }

void set_num_threads(int n) {
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

void matmul_wt(const float* x, int M, int K, const float* w, int N, const float* bias, float* y) {
  if (M <= kGemvMaxRows)
    gemv(x, M, K, w, N, y);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
  if (bias)
    for (int m = 0; m < M; ++m) {
      float* yr = y + static_cast<long>(m) * N;
      for (int n = 0; n < N; ++n) yr[n] += bias[n];
    }
}

void layer_norm(const float* x, int M, int E, const float* gamma, const float* beta, float eps, float* y) {
  for (int m = 0; m < M; ++m) {
    const float* xr = x + static_cast<long>(m) * E;
    float* yr = y + static_cast<long>(m) * E;
    double sum = 0.0;
    for (int i = 0; i < E; ++i) sum += xr[i];
    const float mean = static_cast<float>(sum / E);
    double var = 0.0;
    for (int i = 0; i < E; ++i) {
      const double d = xr[i] - mean;
      var += d * d;
    }
    const float rstd = 1.0f / std::sqrt(static_cast<float>(var / E) + eps);
    for (int i = 0; i < E; ++i) yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
  }
}

void activate(Activation act, float* x, size_t n) {
  switch (act) {
    case Activation::GeluNew:
    case Activation::GeluFast:
    case Activation::GeluPytorchTanh:
      for (size_t i = 0; i < n; ++i) x[i] = gelu_tanh(x[i]);
      break;
    case Activation::Gelu:
      for (size_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
      break;
    case Activation::Relu:
      for (size_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f);
      break;
    case Activation::QuickGelu:
      for (size_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
      break;
    case Activation::Silu:
      for (size_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
      break;
  }
}

void softmax(float* x, int n) {
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

float dot(const float* a, const float* b, int n) {
  if (kAvx2) return avx2::dot(a, b, n);
  float s = 0.f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float a, const float* x, float* y, int n) {
  if (kAvx2) return avx2::axpy(a, x, y, n);
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace lmforge::kernels
