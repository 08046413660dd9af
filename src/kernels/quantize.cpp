// Per-row symmetric int8 quantization of weight matrices. It runs once per tensor while loading or
// quantizing, not in the hot loops (those widen in registers: gemv_avx2.cpp).
#include <algorithm>
#include <cmath>

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

}  // namespace lmforge::kernels
