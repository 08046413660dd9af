#pragma once
// Declarations of the AVX2/FMA implementations (compiled with -mavx2 -mfma -mf16c). Call them only
// when kernels::using_avx2() is true.
namespace lmforge::kernels::avx2 {

// y[m*ldy + n] = sum_k x[m*K + k] * w[n*K + k] for n in [n0, n1), m in [0, M), M <= 4.
void gemv_rows(const float* x, int M, int K, const float* w, int n0, int n1, float* y, int ldy);
float dot(const float* a, const float* b, int n);
void axpy(float a, const float* x, float* y, int n);

}  // namespace lmforge::kernels::avx2
