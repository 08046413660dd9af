// Scalar conversions between fp32 and the low-precision weight types, and per-row int8
// quantization. They run once per tensor while loading or quantizing, not in the hot loops (those
// widen in registers: gemv_avx2.cpp).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

// torch's round-to-nearest-even: add 0x7FFF plus the lowest kept bit, then truncate.
uint16_t float_to_bf16(float f) {
  if (std::isnan(f)) return 0x7FC0;
  const uint32_t u = bits_of(f);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

float bf16_to_float(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

uint16_t float_to_f16(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7FFFFFFF;
  if (a >= 0x7F800000) return sign | (a > 0x7F800000 ? 0x7E00 : 0x7C00);  // NaN, inf
  if (a >= 0x477FF000) return sign | 0x7C00;  // >= 65520 rounds past the largest half (65504)
  if (a < 0x38800000) {  // below 2^-14: a subnormal half (in units of 2^-24), rounded to even
    const float scaled = std::fabs(f) * 16777216.0f;  // exact: a power-of-two scale
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t h = ((a >> 23) - 127 + 15) << 10 | (a & 0x7FFFFF) >> 13;
  const uint32_t rest = a & 0x1FFF;  // the 13 dropped mantissa bits
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // a carry into the exponent is right
  return static_cast<uint16_t>(sign | h);
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return float_of(bits_of(v) | sign);
  }
  if (exp == 31) return float_of(sign | 0x7F800000 | mant << 13);
  return float_of(sign | (exp - 15 + 127) << 23 | mant << 13);
}

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
