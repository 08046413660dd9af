#pragma once
// A weight matrix of every storage type from the same random fp32 values, with the values it
// really holds (for double-precision references of the kernel tests).
#include <cstdint>
#include <random>
#include <vector>

#include "lmforge/io/tensor.h"
#include "lmforge/kernels/kernels.h"

namespace lmforge::test {

using kernels::WeightMatrix;
using kernels::WeightType;

// A weight matrix of each type from the same fp32 values, plus the values it really holds.
struct TypedWeights {
  std::vector<uint16_t> half;
  std::vector<int8_t> q;
  std::vector<float> f32, scales, held;  // held[n*K + k]: the weight the product must use
  WeightMatrix m;
};

inline TypedWeights make_weights(WeightType type, int N, int K, uint32_t seed) {
  TypedWeights t;
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  t.f32.resize(static_cast<size_t>(N) * K);
  for (auto& v : t.f32) v = d(rng);
  t.held = t.f32;
  t.m = {type, nullptr, nullptr, N, K};
  switch (type) {
    case WeightType::F32: t.m.data = t.f32.data(); break;
    case WeightType::BF16:
    case WeightType::BF16_COMPUTE:  // (its products: bf16_compute_test.cpp)
    case WeightType::F16:
      for (size_t i = 0; i < t.f32.size(); ++i) {
        const bool bf = kernels::is_bf16(type);
        t.half.push_back(bf ? float_to_bf16(t.f32[i]) : float_to_fp16(t.f32[i]));
        t.held[i] = bf ? bf16_to_float(t.half[i]) : fp16_to_float(t.half[i]);
      }
      t.m.data = t.half.data();
      break;
    case WeightType::I8:
    case WeightType::I8_DYNAMIC:  // (its products are checked in int8_dynamic_test.cpp)
      t.q.resize(t.f32.size());
      t.scales.resize(N);
      kernels::quantize_rows_int8(t.f32.data(), N, K, t.q.data(), t.scales.data());
      for (size_t i = 0; i < t.f32.size(); ++i) t.held[i] = t.q[i] * t.scales[i / K];
      t.m.data = t.q.data();
      t.m.scales = t.scales.data();
      break;
  }
  return t;
}

}  // namespace lmforge::test
