#pragma once
// Element-wise kernels of the training passes. Each has an AVX2/FMA body (compiled through a
// function target attribute and chosen at run time with kernels::using_avx2(), so LMFORGE_ISA
// applies here too) and a portable one.
#include <cstddef>

#include "lmforge/model/config.h"

namespace lmforge::backprop {

// max of x[0..n) (-inf for n == 0).
float row_max(const float* x, int n);
// x[i] = exp(x[i] - shift) for i < n; returns the sum of the new values. exp of -inf is 0.
float exp_shift_sum(float* x, int n, float shift);
// x[i] *= s
void scale_row(float* x, int n, float s);

// d[i] *= act'(u[i]): turns dL/d(act(u)) into dL/du, with HF's definition of each activation.
void activation_backward(Activation act, float* d, const float* u, size_t n);

}  // namespace lmforge::backprop
