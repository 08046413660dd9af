// BF16_COMPUTE ("bfloat16_compute"): bf16 weights times activations rounded to bf16, summed in
// fp32 (kernels.h). matmul_wt is checked against a double-precision sum of the rounded products,
// at row counts on both sides of the GEMV / vdpbf16ps switch (16), with a bound tight enough that
// the same sum over the unrounded activations fails it (so the rounding is really applied);
// matmul_wt_rows bit for bit against its contract (kernels.h: the fma chain over the rounded rows,
// or vdpbf16ps's lanes and tree), written out here.
// ctest runs this binary on every ISA level the CPU has (vdpbf16ps, AVX2, portable).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/random_data.h"
#include "lmforge/io/tensor.h"
#include "lmforge/kernels/gemm_bf16.h"
#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
namespace {

using test::random_vector;

float rounded(float v) { return bf16_to_float(float_to_bf16(v)); }

struct Case {
  int M, N, K;
};

// Edges: 1 row (the one-row GEMV), 16 (the widest GEMV and vdpbf16ps rows kernel), 17 (the first
// oneDNN call), row counts that leave each tail of the rows kernel (6-row tiles, then 1 to 5 rows),
// odd K (a padded bf16 pair), K not a multiple of 32 (a masked last vector), N not a multiple of
// the 64-column micro-kernel or of the rows kernel's 4 columns, and K across 256-deep blocks.
const Case kCases[] = {{1, 70, 33},   {3, 129, 300},  {6, 13, 95}, {8, 31, 100},  {13, 20, 64},
                       {16, 64, 768}, {17, 200, 257}, {40, 77, 1}, {64, 300, 600}};

TEST(Bf16Compute, NamesSizeAndStorage) {
  EXPECT_STREQ(to_string(WeightType::BF16_COMPUTE), "bfloat16_compute");
  EXPECT_EQ(weight_type_from_string("bfloat16_compute"), WeightType::BF16_COMPUTE);
  EXPECT_EQ(weight_type_size(WeightType::BF16_COMPUTE), 2u);
  EXPECT_TRUE(is_bf16(WeightType::BF16_COMPUTE));
  EXPECT_TRUE(is_bf16(WeightType::BF16));
  EXPECT_FALSE(is_bf16(WeightType::F16));
  const std::vector<uint16_t> w = {float_to_bf16(1.5f), float_to_bf16(-2.25f)};
  std::vector<float> out(2);
  widen_rows({WeightType::BF16_COMPUTE, w.data(), nullptr, 2, 1}, 0, 2, out.data());
  EXPECT_EQ(out, (std::vector<float>{1.5f, -2.25f}));
}

TEST(Bf16Compute, MatmulWtSumsTheRoundedProducts) {
  for (const Case c : kCases)
    for (const bool with_bias : {false, true}) {
      const auto x = random_vector(static_cast<size_t>(c.M) * c.K, 7 + c.M);
      const auto wf = random_vector(static_cast<size_t>(c.N) * c.K, 9 + c.N);
      const auto bias = random_vector(c.N, 5);
      std::vector<uint16_t> w(wf.size());
      for (size_t i = 0; i < wf.size(); ++i) w[i] = float_to_bf16(wf[i]);
      std::vector<float> y(static_cast<size_t>(c.M) * c.N, std::numeric_limits<float>::quiet_NaN());
      const WeightMatrix wm{WeightType::BF16_COMPUTE, w.data(), nullptr, c.N, c.K};
      matmul_wt(x.data(), c.M, wm, with_bias ? bias.data() : nullptr, y.data());
      double worst = 0.0, worst_unrounded = 0.0;
      for (int m = 0; m < c.M; ++m)
        for (int n = 0; n < c.N; ++n) {
          double want = with_bias ? bias[n] : 0.0, unrounded = want;
          for (int k = 0; k < c.K; ++k) {
            const double wv = bf16_to_float(w[static_cast<size_t>(n) * c.K + k]);
            const double xv = x[static_cast<size_t>(m) * c.K + k];
            want += static_cast<double>(rounded(static_cast<float>(xv))) * wv;
            unrounded += xv * wv;
          }
          const double got = y[static_cast<size_t>(m) * c.N + n];
          worst = std::max(worst, std::fabs(got - want) / std::sqrt(c.K));
          worst_unrounded = std::max(worst_unrounded, std::fabs(got - unrounded) / std::sqrt(c.K));
        }
      // fp32 sums of K products of N(0,1)-sized values: measured ≤ 2e-7·√K; rounding x to bf16
      // moves a sum by ~2^-9·√K (≥ 1e-4·√K at these sizes), so 1e-5 tells the two apart.
      EXPECT_LT(worst, 1e-5) << c.M << "x" << c.N << "x" << c.K << " bias " << with_bias;
      if (c.K > 1) {
        EXPECT_GT(worst_unrounded, 1e-5) << c.M << "x" << c.N << "x" << c.K << ": x was not rounded";
      }
    }
}

// A float with its denormals flushed to zero (sign kept), as vdpbf16ps treats inputs and results.
float flushed(float v) { return std::fpclassify(v) == FP_SUBNORMAL ? std::copysign(0.0f, v) : v; }

// matmul_wt_rows' contract for BF16_COMPUTE (kernels.h), written out here: the fma chain over the
// rounded row, or on vdpbf16ps (the AVX-512 level of a CPU with AVX-512 BF16) 16 lanes of pair
// chains (k + 1 before k, denormals flushed) summed in the tree i + 8, + 4, + 2, + 1.
float rows_contract(const float* x, const uint16_t* w, int K, float bias) {
  if (!using_avx512_bf16()) {
    float s = 0.0f;
    for (int k = 0; k < K; ++k) s = std::fma(rounded(x[k]), bf16_to_float(w[k]), s);
    return s + bias;
  }
  float lane[16] = {};
  const int P = (K + 1) / 2, padded = (P + 15) / 16 * 16;  // the last vector's missing pairs are zero
  for (int p = 0; p < padded; ++p) {
    float& s = lane[p % 16];
    for (const int k : {2 * p + 1, 2 * p}) {
      const float xv = k < K ? flushed(rounded(x[k])) : 0.0f, wv = k < K ? flushed(bf16_to_float(w[k])) : 0.0f;
      s = flushed(std::fma(xv, wv, s));
    }
  }
  for (const int half : {8, 4, 2, 1})
    for (int i = 0; i < half; ++i) lane[i] = lane[i] + lane[i + half];
  return lane[0] + bias;
}

TEST(Bf16Compute, MatmulWtRowsFollowsItsContractForEveryM) {
  for (const Case c : kCases) {
    const auto x = random_vector(static_cast<size_t>(c.M) * c.K, 3 + c.K);
    const auto wf = random_vector(static_cast<size_t>(c.N) * c.K, 4 + c.K);
    const auto bias = random_vector(c.N, 6);
    std::vector<uint16_t> w(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) w[i] = float_to_bf16(wf[i]);
    std::vector<float> y(static_cast<size_t>(c.M) * c.N);
    matmul_wt_rows(x.data(), c.M, {WeightType::BF16_COMPUTE, w.data(), nullptr, c.N, c.K}, bias.data(), y.data());
    for (int m = 0; m < c.M; ++m)
      for (int n = 0; n < c.N; ++n) {
        const float want = rows_contract(&x[static_cast<size_t>(m) * c.K], &w[static_cast<size_t>(n) * c.K], c.K, bias[n]);
        ASSERT_EQ(y[static_cast<size_t>(m) * c.N + n], want) << c.M << "x" << c.N << "x" << c.K << " at " << m << "," << n;
      }
  }
}

// Denormals: a product with a denormal input, and a sum that only a denormal could hold, are 0 on
// vdpbf16ps and kept by the fma chain; matmul_wt_rows follows its level's contract either way.
TEST(Bf16Compute, MatmulWtRowsDenormalsFollowTheContract) {
  const float tiny = std::numeric_limits<float>::denorm_min() * 4096;  // a bf16 denormal
  const float small = 1e-20f;                                            // small² = 1e-40: denormal
  const int K = 3, N = 2;
  const std::vector<float> x = {tiny, 1.0f, small};
  const std::vector<uint16_t> w = {float_to_bf16(1.0f), float_to_bf16(0.0f), float_to_bf16(small),   // tiny·1 + small²
                                   float_to_bf16(0.0f), float_to_bf16(1.0f), float_to_bf16(0.0f)};  // 1
  std::vector<float> y(N);
  matmul_wt_rows(x.data(), 1, {WeightType::BF16_COMPUTE, w.data(), nullptr, N, K}, nullptr, y.data());
  for (int n = 0; n < N; ++n) EXPECT_EQ(y[n], rows_contract(x.data(), &w[static_cast<size_t>(n) * K], K, 0.0f)) << n;
  if (using_avx512_bf16())
    EXPECT_EQ(y[0], 0.0f);
  else
    EXPECT_GT(y[0], 0.0f);
  EXPECT_EQ(y[1], 1.0f);
}

TEST(Bf16Compute, RoundingKeepsInfinitiesAndNaNAndCarries) {
  // Row 0 infinite, row 1 a value that rounds up into the next binade, row 2 NaN; 3 rows (the
  // GEMV path) and 20 (vdpbf16ps where the CPU has it).
  const int K = 4, N = 1;
  const std::vector<uint16_t> w(K, float_to_bf16(1.0f));
  for (const int M : {3, 20}) {
    std::vector<float> x(static_cast<size_t>(M) * K, 0.0f), y(static_cast<size_t>(M) * N);
    x[0] = std::numeric_limits<float>::infinity();
    x[K] = std::nextafter(2.0f, 0.0f);  // 1.99999988 rounds up to 2
    x[2 * K + 1] = std::numeric_limits<float>::quiet_NaN();
    matmul_wt(x.data(), M, {WeightType::BF16_COMPUTE, w.data(), nullptr, N, K}, nullptr, y.data());
    EXPECT_EQ(y[0], std::numeric_limits<float>::infinity()) << M;
    EXPECT_EQ(y[1], 2.0f) << M;
    EXPECT_TRUE(std::isnan(y[2])) << M;
    for (int m = 3; m < M; ++m) EXPECT_EQ(y[m], 0.0f) << M;
  }
}

}  // namespace
}  // namespace lmforge::kernels
