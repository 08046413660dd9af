// I8_DYNAMIC: int8 weights × activations quantized per row on the fly. The integer sums are exact,
// so every output must equal the formula documented in kernels.h bit for bit, on the AVX2 path and
// (ctest's kernels_portable run of this binary) on the portable path: that makes the two paths
// bit-identical. Also checked: the activation quantization itself, against an independent
// implementation, a double-precision reference, and closeness to the fp32 product.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/random_data.h"
#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
namespace {

using test::random_vector;

// Round half to even, written out (not via the rounding mode the kernels use).
int round_half_even(float r) {
  const double f = std::floor(static_cast<double>(r)), frac = r - f;
  const double i = frac > 0.5 ? f + 1 : frac < 0.5 ? f : (std::fmod(f, 2.0) == 0.0 ? f : f + 1);
  return static_cast<int>(i);
}

// The specification of quantize_activation_row_int8 (finite inputs).
float reference_quantize(const float* x, int K, int8_t* q) {
  float amax = 0.0f;
  for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float s = amax / 127.0f;
  for (int k = 0; k < K; ++k)
    q[k] = s == 0.0f ? 0 : static_cast<int8_t>(std::clamp(round_half_even(x[k] / s), -127, 127));
  return s;
}

TEST(Int8Dynamic, NamesSizeAndStorage) {
  EXPECT_STREQ(to_string(WeightType::I8_DYNAMIC), "int8_dynamic");
  EXPECT_EQ(weight_type_from_string("int8_dynamic"), WeightType::I8_DYNAMIC);
  EXPECT_EQ(weight_type_from_string("int8"), WeightType::I8);
  EXPECT_EQ(weight_type_size(WeightType::I8_DYNAMIC), 1u);
  EXPECT_TRUE(is_int8(WeightType::I8));
  EXPECT_TRUE(is_int8(WeightType::I8_DYNAMIC));
  EXPECT_FALSE(is_int8(WeightType::F32));
  EXPECT_FALSE(is_int8(WeightType::BF16));

  // widen_rows: the same int8 × row scale as I8.
  const int N = 5, K = 37;
  const auto f = random_vector(N * K, 1);
  std::vector<int8_t> q(N * K);
  std::vector<float> scales(N), out(3 * K);
  quantize_rows_int8(f.data(), N, K, q.data(), scales.data());
  widen_rows({WeightType::I8_DYNAMIC, q.data(), scales.data(), N, K}, 1, 4, out.data());
  for (int n = 1; n < 4; ++n)
    for (int k = 0; k < K; ++k) ASSERT_EQ(out[(n - 1) * K + k], q[n * K + k] * scales[n]);
}

TEST(Int8Dynamic, ActivationQuantizationRoundsHalfToEven) {
  // max |x| = 127: s = 1 exactly, so x / s are the values themselves.
  const std::vector<float> x = {127.0f, 2.5f,   3.5f,    -2.5f, -3.5f, 0.5f, 1.5f,
                                -0.5f,   126.5f, -127.0f, 0.0f,  1e-3f, 64.49f};
  const std::vector<int8_t> want = {127, 2, 4, -2, -4, 0, 2, 0, 126, -127, 0, 0, 64};
  std::vector<int8_t> q(x.size());
  EXPECT_EQ(quantize_activation_row_int8(x.data(), static_cast<int>(x.size()), q.data()), 1.0f);
  EXPECT_EQ(q, want);
  // max |x| = 254 (negative): s = 2.
  const std::vector<float> y = {5.0f, 7.0f, -254.0f, -9.0f, 253.0f};
  EXPECT_EQ(quantize_activation_row_int8(y.data(), 5, q.data()), 2.0f);
  EXPECT_EQ(std::vector<int8_t>(q.begin(), q.begin() + 5), (std::vector<int8_t>{2, 4, -127, -4, 126}));
}

TEST(Int8Dynamic, ZeroAndUnderflowingRowsGiveZeroScale) {
  for (const std::vector<float>& x : {std::vector<float>(40, 0.0f), std::vector<float>(40, -0.0f),
                                      std::vector<float>{1e-44f, -1e-45f, 0.0f}}) {  // 1e-44 / 127 == 0
    std::vector<int8_t> q(x.size(), 99);
    EXPECT_EQ(quantize_activation_row_int8(x.data(), static_cast<int>(x.size()), q.data()), 0.0f);
    for (int8_t v : q) ASSERT_EQ(v, 0);
  }
}

TEST(Int8Dynamic, ActivationQuantizationMatchesSpecificationAndClamps) {
  // Lengths around the vector widths (8, 32) and row magnitudes over many binades, so that
  // max/127 rounds both ways and the largest element lands on exactly ±127, never -128.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> exponent(-20.0f, 20.0f);
  for (int K : {1, 7, 8, 9, 31, 32, 33, 63, 100, 777, 3072})
    for (int trial = 0; trial < 40; ++trial) {
      auto x = random_vector(K, 100 * K + trial, std::exp2(exponent(rng)));
      if (trial % 5 == 1) x[K / 2] = -std::fabs(x[K / 2]) * 10;  // a negative maximum
      if (trial % 5 == 2) {  // s = 2^e exactly, and x / s = j + 0.5: ties at every element
        const float unit = std::exp2(std::nearbyint(exponent(rng)));
        for (int k = 0; k < K; ++k) x[k] = (static_cast<float>(static_cast<int>(k * 37 % 253) - 126) + 0.5f) * unit;
        x[0] = 127.0f * unit;
      }
      std::vector<int8_t> q(K + 8, 55), want(K);
      const float s = quantize_activation_row_int8(x.data(), K, q.data());
      ASSERT_EQ(s, reference_quantize(x.data(), K, want.data())) << "K=" << K;
      int amax = 0;
      for (int k = 0; k < K; ++k) {
        ASSERT_EQ(q[k], want[k]) << "K=" << K << " trial=" << trial << " k=" << k << " x=" << x[k];
        amax = std::max(amax, std::abs(static_cast<int>(q[k])));
      }
      EXPECT_EQ(amax, 127);
      for (int k = K; k < K + 8; ++k) ASSERT_EQ(q[k], 55) << "wrote past K=" << K;  // only K bytes
    }
}

// Int8 weights (quantize_rows_int8 of normal values) as an I8_DYNAMIC matrix.
struct Int8Weights {
  std::vector<int8_t> q;
  std::vector<float> scales;
  WeightMatrix m;
  Int8Weights(int N, int K, uint32_t seed) : q(static_cast<size_t>(N) * K), scales(N) {
    const auto f = random_vector(q.size(), seed, 0.05f);
    quantize_rows_int8(f.data(), N, K, q.data(), scales.data());
    m = {WeightType::I8_DYNAMIC, q.data(), scales.data(), N, K};
  }
  float held(int n, int k) const { return q[static_cast<size_t>(n) * m.K + k] * scales[n]; }
};

// Activations whose rows have different magnitudes (like hidden states), one row all zeros.
std::vector<float> activations(int M, int K, uint32_t seed) {
  auto x = random_vector(static_cast<size_t>(M) * K, seed);
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) x[m * K + k] *= 0.1f + 3.0f * m / M;
  if (M > 2)
    for (int k = 0; k < K; ++k) x[1 * K + k] = 0.0f;
  return x;
}

// Checks y against the exact formula (bit for bit) and a double-precision product of the same
// quantized values.
void expect_exact(const std::vector<float>& x, int M, const Int8Weights& w, const float* bias,
                  const std::vector<float>& y, const char* what) {
  const int K = w.m.K, N = w.m.N;
  std::vector<int8_t> qx(static_cast<size_t>(M) * K);
  std::vector<float> sx(M);
  for (int m = 0; m < M; ++m) sx[m] = reference_quantize(&x[m * K], K, &qx[m * K]);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      int64_t sum = 0;
      for (int k = 0; k < K; ++k) sum += int64_t{qx[m * K + k]} * w.q[static_cast<size_t>(n) * K + k];
      const float b = bias ? bias[n] : 0.0f;
      const float exact = std::fma(static_cast<float>(sum), sx[m] * w.scales[n], b);
      const double ref = static_cast<double>(sum) * sx[m] * w.scales[n] + b;
      const float got = y[m * N + n];
      ASSERT_EQ(got, exact) << what << " M=" << M << " K=" << K << " N=" << N << " m=" << m << " n=" << n;
      ASSERT_NEAR(got, ref, 1e-6 * (std::fabs(ref - b) + std::fabs(b)) + 1e-30) << what;
      if (sx[m] == 0.0f) {
        ASSERT_EQ(got, b) << "a zero row gives the bias";
      }
    }
}

TEST(Int8Dynamic, MatmulEqualsExactIntegerFormula) {
  // M = 1 has its own kernel, 2..16 the decode tiles, more rows loop over them (with AVX-512 VNNI,
  // oneDNN's GEMM from 32 rows: 300 is several of its row blocks); K covers the 32-byte tail, N
  // the tile edges and the split over threads.
  for (int M : {1, 2, 3, 5, 12, 16, 17, 33, 300})
    for (int K : {64, 100, 768, 777})
      for (int N : {1, 7, 64, 130}) {
        const Int8Weights w(N, K, 7 + K + N);
        const auto x = activations(M, K, M + K);
        const auto b = random_vector(N, 3 + N);
        for (const float* bias : {static_cast<const float*>(nullptr), b.data()}) {
          std::vector<float> y(static_cast<size_t>(M) * N, NAN);
          matmul_wt(x.data(), M, w.m, bias, y.data());
          expect_exact(x, M, w, bias, y, bias ? "bias" : "no bias");
        }
      }
}

TEST(Int8Dynamic, LargeSumsRoundOnceToFloat) {
  // |Σ q_x q_w| above 2^24 is rounded when converted to fp32: the same rounding on both paths.
  const int K = 3001, N = 3;
  Int8Weights w(N, K, 1);
  std::fill(w.q.begin(), w.q.end(), int8_t{127});
  w.q[K] = -128;  // a weight of -128 (vpabsb gives 128 as an unsigned byte)
  std::vector<float> x(K, 1.0f);
  x[5] = 0.99f;  // q_x = 126: the sum is odd
  std::vector<float> y(N);
  matmul_wt(x.data(), 1, w.m, nullptr, y.data());
  expect_exact(x, 1, w, nullptr, y, "large sums");
}

TEST(Int8Dynamic, RowsGetTheSameBitsWhateverTheBatch) {
  // More rows than one row block of the AVX2 kernel (64), big enough to use several threads.
  const int M = 70, K = 768, N = 200;
  const Int8Weights w(N, K, 11);
  const auto x = activations(M, K, 12);
  const auto b = random_vector(N, 13);
  std::vector<float> all(static_cast<size_t>(M) * N);
  matmul_wt(x.data(), M, w.m, b.data(), all.data());
  expect_exact(x, M, w, b.data(), all, "M=70");
  for (int m0 : {0, 3, 64}) {
    for (int rows : {1, 4, 6}) {
      std::vector<float> part(static_cast<size_t>(rows) * N);
      matmul_wt(x.data() + m0 * K, rows, w.m, b.data(), part.data());
      for (int i = 0; i < rows * N; ++i) ASSERT_EQ(part[i], all[m0 * N + i]) << "m0=" << m0 << " rows=" << rows;
    }
  }
}

TEST(Int8Dynamic, CloseToTheFp32ProductOfTheDequantizedWeights) {
  // Quantizing the activations adds ~0.5 % relative noise for normal data (step max/127 over
  // K = 768 values); the product must stay close to both the fp32 and the weight-only int8 paths.
  for (int M : {1, 5, 33}) {
    const int K = 768, N = 300;
    const Int8Weights w(N, K, 21);
    const auto x = random_vector(static_cast<size_t>(M) * K, 22);
    const auto b = random_vector(N, 23, 0.1f);
    std::vector<float> y(M * N), y_i8(M * N);
    matmul_wt(x.data(), M, w.m, b.data(), y.data());
    WeightMatrix weight_only = w.m;
    weight_only.type = WeightType::I8;
    matmul_wt(x.data(), M, weight_only, b.data(), y_i8.data());
    double err = 0, err_i8 = 0, norm = 0;
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double ref = b[n];
        for (int k = 0; k < K; ++k) ref += static_cast<double>(x[m * K + k]) * w.held(n, k);
        err += (y[m * N + n] - ref) * (y[m * N + n] - ref);
        err_i8 += (y[m * N + n] - y_i8[m * N + n]) * (y[m * N + n] - y_i8[m * N + n]);
        norm += ref * ref;
      }
    EXPECT_LT(std::sqrt(err / norm), 0.02) << "M=" << M;
    EXPECT_LT(std::sqrt(err_i8 / norm), 0.02) << "M=" << M;
  }
}

}  // namespace
}  // namespace lmforge::kernels
