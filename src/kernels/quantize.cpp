// Symmetric int8 quantization: weight matrices per row (once per tensor while loading, not in the
// hot loops: those widen in registers, gemv_avx2.cpp) and activation rows for I8_DYNAMIC (once
// per matmul_wt call, before the integer products of gemm_int8_avx2.cpp).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/isa.h"
#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
void quantize_rows_int8(const float* w, int N, int K, int8_t* q, float* scales) {
  for (int n = 0; n < N; ++n) {
    const float* row = w + static_cast<size_t>(n) * K;
    float amax = 0.0f;
    for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
    const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
    scales[n] = scale;
    int8_t* qr = q + static_cast<size_t>(n) * K;
    for (int k = 0; k < K; ++k)
      qr[k] = static_cast<int8_t>(std::clamp(std::nearbyint(row[k] / scale), -127.0f, 127.0f));
  }
}

// Every step mirrors avx2::quantize_activation_row so that both give the same bits: std::max keeps
// the running max when the new value is NaN (as maxps with the running max second), fmaxf maps
// NaN to -127 (as maxps with the bound second), and lrintf rounds in the current mode (as
// cvtps2dq), after the clamp.
float quantize_activation_row_int8(const float* x, int K, int8_t* q) {
  if (using_avx2()) return avx2::quantize_activation_row(x, K, q);
  float amax = 0.0f;
  for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float s = amax / 127.0f;
  if (!(s > 0.0f)) {  // all zeros, or max/127 underflowed: no scale to divide by
    std::memset(q, 0, static_cast<size_t>(K));
    return 0.0f;
  }
  for (int k = 0; k < K; ++k)
    q[k] = static_cast<int8_t>(std::lrint(std::fmin(std::fmax(x[k] / s, -127.0f), 127.0f)));
  return s;
}

}  // namespace lmforge::kernels
