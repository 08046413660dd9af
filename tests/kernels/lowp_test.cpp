// Low-precision weights: per-row int8 quantization, and matmul_wt for every weight type against a
// double-precision product of the widened weights.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/typed_weights.h"
#include "lmforge/io/tensor.h"
#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
namespace {

using test::make_weights;
using test::TypedWeights;

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
