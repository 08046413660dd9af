// The bf16 GEMM (gemm_bf16.h: bf16 operands or fp32 ones rounded to bf16, fp32 accumulation)
// against a double reference, and the fp32 -> bf16 rounding against lmforge::float_to_bf16. ctest
// runs this suite on every ISA level the CPU has (oneDNN's vdpbf16ps, AVX2, portable).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "lmforge/io/tensor.h"
#include "lmforge/kernels/gemm_bf16.h"

namespace lmforge::kernels {
namespace {

struct Operand {
  std::vector<float> f32;      // values (already bf16-representable when as_bf16)
  std::vector<uint16_t> bf16;  // the same values as bf16 bits
  bool as_bf16;
  int ld;
  bool trans;
  MatRef ref() const {
    return as_bf16 ? mat(bf16.data(), ld, trans) : mat(f32.data(), ld, trans);
  }
  // Element (r, c) of the logical matrix as the product must use it: rounded to bf16 (an fp32
  // operand is rounded to nearest even, as torch's bf16 autocast holds it).
  double at(int r, int c) const {
    return bf16_to_float(float_to_bf16(trans ? f32[static_cast<size_t>(c) * ld + r] : f32[static_cast<size_t>(r) * ld + c]));
  }
};

// A logical rows x cols operand stored with a padded leading dimension.
Operand random_operand(int rows, int cols, bool as_bf16, bool trans, std::mt19937& rng) {
  Operand o;
  o.as_bf16 = as_bf16;
  o.trans = trans;
  const int stored_rows = trans ? cols : rows, stored_cols = trans ? rows : cols;
  o.ld = stored_cols + 3;
  std::normal_distribution<float> n01(0.0f, 1.0f);
  o.f32.resize(static_cast<size_t>(stored_rows) * o.ld);
  for (auto& x : o.f32) {
    x = n01(rng);
    if (as_bf16) x = bf16_to_float(float_to_bf16(x));
  }
  o.bf16.resize(o.f32.size());
  for (size_t i = 0; i < o.f32.size(); ++i) o.bf16[i] = float_to_bf16(o.f32[i]);
  return o;
}

TEST(Bf16Gemm, MatchesDoubleReferenceForEveryLayout) {
  std::mt19937 rng(3);
  struct Size {
    int M, N, K;
  };
  // Edges: partial 6-row and 16-column tiles (on AVX-512 BF16: oneDNN's matmul, odd sizes,
  // strided and transposed operands, the sum post-op for beta 1), odd K (a padded pair),
  // K across the 256-deep blocks, N across 2048-wide blocks, M across the 192-row blocks, and the
  // degenerate 1 x 1. ctest runs this suite on every ISA level the CPU has.
  const Size sizes[] = {{13, 37, 300}, {1, 1, 1}, {200, 20, 17}, {7, 2100, 9}, {48, 64, 512}};
  for (const Size s : sizes)
    for (int layout = 0; layout < 16; ++layout) {
      const bool a16 = layout & 1, at = layout & 2, b16 = layout & 4, bt = layout & 8;
      const Operand A = random_operand(s.M, s.K, a16, at, rng), B = random_operand(s.K, s.N, b16, bt, rng);
      for (const float beta : {0.0f, 1.0f}) {
        const int ldc = s.N + 5;
        std::vector<float> C(static_cast<size_t>(s.M) * ldc, beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : 0.5f);
        gemm_mixed(s.M, s.N, s.K, A.ref(), B.ref(), beta, C.data(), ldc);
        double worst = 0.0;
        for (int i = 0; i < s.M; ++i)
          for (int j = 0; j < s.N; ++j) {
            double want = beta == 0.0f ? 0.0 : 0.5;
            for (int k = 0; k < s.K; ++k) want += A.at(i, k) * B.at(k, j);
            // fp32 accumulation of K products of N(0,1) values: error ~ K * 2^-24 * sqrt(K)-ish.
            worst = std::max(worst, std::fabs(C[static_cast<size_t>(i) * ldc + j] - want) / std::sqrt(s.K));
          }
        EXPECT_LT(worst, 1e-5) << s.M << "x" << s.N << "x" << s.K << " layout " << layout << " beta " << beta;
        // The padding of C beyond N is never written.
        if (beta == 0.0f)
          EXPECT_TRUE(std::isnan(C[s.N]));
        else
          EXPECT_EQ(C[s.N], 0.5f);
      }
    }
}

TEST(Bf16Gemm, RoundingMatchesFloatToBf16) {
  std::vector<float> x;
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 100000; ++i) {
    const uint32_t u = bits(rng);
    float f;
    std::memcpy(&f, &u, sizeof f);
    x.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 1.0f, 1.00390625f /* tie, even */, 1.01171875f /* tie, odd */,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(), 3.0e38f})
    x.push_back(f);
  x.push_back(1.5f);  // an odd count: the scalar tail runs too
  std::vector<uint16_t> got(x.size());
  to_bf16(got.data(), x.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], float_to_bf16(x[i])) << i << " " << x[i];
}

}  // namespace
}  // namespace lmforge::kernels
