#pragma once
// Numeric kernels used by the model. The only ISA-specific code of the project lives behind these
// functions (src/kernels/*_avx2.cpp), selected at run time with a portable fallback.
#include <cstddef>

#include "lmforge/model/config.h"

namespace lmforge::kernels {

// y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias[N] when non-null). w is row-major [out, in], the layout
// every weight matrix has after loading. Small M (decode) streams w once through an AVX2 kernel;
// larger M uses OpenBLAS sgemm.
void matmul_wt(const float* x, int M, int K, const float* w, int N, const float* bias, float* y);

// y[M,E] = (x - mean) / sqrt(var + eps) * gamma + beta, per row (biased variance, as torch).
void layer_norm(const float* x, int M, int E, const float* gamma, const float* beta, float eps, float* y);

// In-place activation with HF's definition of each name.
void activate(Activation act, float* x, size_t n);

// Numerically stable in-place softmax of n values.
void softmax(float* x, int n);

float dot(const float* a, const float* b, int n);
// y += a * x
void axpy(float a, const float* x, float* y, int n);

// Whether the AVX2/FMA/F16C paths are in use (for diagnostics and benchmarks).
bool using_avx2();
// Threads used by the kernels (OpenMP and OpenBLAS).
int num_threads();
void set_num_threads(int n);

}  // namespace lmforge::kernels
