// Low-precision weights: the fp32 <-> bf16 / fp16 conversions against their definitions (round to
// nearest, ties to even), per-row int8 quantization, and matmul_wt for every weight type against a
// double-precision product of the widened weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_bf16(from_bits(0x3F808000)), 0x3F80);  // tie, even below
  EXPECT_EQ(float_to_bf16(from_bits(0x3F818000)), 0x3F82);  // tie, even above
  EXPECT_EQ(float_to_bf16(from_bits(0x3F808001)), 0x3F81);  // just above the tie
  EXPECT_EQ(float_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80);  // the largest float rounds to inf
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::quiet_NaN()), 0x7FC0);
  for (uint32_t h = 0; h < 0x10000; ++h) {  // every bf16 survives the round trip
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(float_to_bf16(f), h);
    }
  }
}

TEST(F16, KnownValuesAndLimits) {
  EXPECT_EQ(float_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_f16(0.1f), 0x2E66);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_f16(65519.99f), 0x7BFF);
  EXPECT_EQ(float_to_f16(65520.0f), 0x7C00);  // the tie above the largest half goes to inf
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even (0)
  EXPECT_EQ(float_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // tie to even (2)
  EXPECT_EQ(float_to_f16(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(float_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_float(0x3555), 0.333251953125f);
}

TEST(F16, EveryHalfRoundTripsAndRandomFloatsGoToTheNearest) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_float(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(float_to_f16(f), h) << std::hex << h;
    }
  }
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> exponent(-26.0f, 16.0f);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::exp2(exponent(rng)) * (rng() % 2 ? 1.0f : -1.0f);
    const uint16_t h = float_to_f16(f);
    if (std::fabs(f) >= 65520.0f) {  // past the last tie IEEE rounds to infinity
      ASSERT_EQ(h & 0x7FFF, 0x7C00) << f;
      continue;
    }
    const double err = std::fabs(static_cast<double>(f16_to_float(h)) - f);
    // Neither neighbour (same sign) is closer.
    for (int d : {-1, 1}) {
      const int other = (h & 0x7FFF) + d;
      if (other < 0 || other > 0x7BFF) continue;
      const double e2 = std::fabs(static_cast<double>(f16_to_float(static_cast<uint16_t>((h & 0x8000) | other))) - f);
      ASSERT_LE(err, e2) << f;
    }
  }
}

TEST(Int8, PerRowSymmetricScales) {
  const std::vector<float> w = {0.5f, -1.27f, 0.01f, 0.0f, 0.0f, 0.0f, 2.54f, 1.27f, -0.635f};
  std::vector<int8_t> q(9);
  std::vector<float> s(3);
  quantize_rows_int8(w.data(), 3, 3, q.data(), s.data());
  EXPECT_FLOAT_EQ(s[0], 0.01f);
  EXPECT_EQ(q[0], 50);
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[2], 1);
  EXPECT_EQ(s[1], 1.0f);  // an all-zero row
  EXPECT_EQ(q[3], 0);
  EXPECT_FLOAT_EQ(s[2], 0.02f);
  EXPECT_EQ(q[6], 127);
  EXPECT_EQ(q[7], 64);  // 63.5: ties to even, as torch.round
  EXPECT_EQ(q[8], -32);  // -31.75
}

// A weight matrix of each type from the same fp32 values, plus the values it really holds.
struct TypedWeights {
  std::vector<uint16_t> half;
  std::vector<int8_t> q;
  std::vector<float> f32, scales, held;  // held[n*K + k]: the weight the product must use
  WeightMatrix m;
};

TypedWeights make_weights(WeightType type, int N, int K, uint32_t seed) {
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
    case WeightType::F16:
      for (size_t i = 0; i < t.f32.size(); ++i) {
        t.half.push_back(type == WeightType::BF16 ? float_to_bf16(t.f32[i]) : float_to_f16(t.f32[i]));
        t.held[i] = type == WeightType::BF16 ? bf16_to_float(t.half[i]) : f16_to_float(t.half[i]);
      }
      t.m.data = t.half.data();
      break;
    case WeightType::I8:
      t.q.resize(t.f32.size());
      t.scales.resize(N);
      quantize_rows_int8(t.f32.data(), N, K, t.q.data(), t.scales.data());
      for (size_t i = 0; i < t.f32.size(); ++i) t.held[i] = t.q[i] * t.scales[i / K];
      t.m.data = t.q.data();
      t.m.scales = t.scales.data();
      break;
  }
  return t;
}

TEST(MatmulWt, EveryWeightTypeMatchesTheProductOfItsWidenedWeights) {
  for (WeightType type : {WeightType::F32, WeightType::BF16, WeightType::F16, WeightType::I8})
    for (int M : {1, 2, 3, 4, 5, 16, 17, 33})
      for (int K : {5, 13, 64, 771})
        for (int N : {1, 7, 50, 130}) {
          const TypedWeights w = make_weights(type, N, K, 7 + K + N);
          std::mt19937 rng(M);
          std::normal_distribution<float> d(0.0f, 1.0f);
          std::vector<float> x(static_cast<size_t>(M) * K), bias(N), y(static_cast<size_t>(M) * N, NAN);
          for (auto& v : x) v = d(rng);
          for (auto& v : bias) v = d(rng);
          matmul_wt(x.data(), M, w.m, bias.data(), y.data());
          for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
              double ref = bias[n], mag = std::fabs(ref);
              for (int k = 0; k < K; ++k) {
                const double p = static_cast<double>(x[m * K + k]) * w.held[static_cast<size_t>(n) * K + k];
                ref += p;
                mag += std::fabs(p);
              }
              ASSERT_NEAR(y[m * N + n], ref, 1e-5 * mag + 1e-6)
                  << to_string(type) << " M=" << M << " K=" << K << " N=" << N << " m=" << m << " n=" << n;
            }
        }
}

}  // namespace
}  // namespace lmforge::kernels
