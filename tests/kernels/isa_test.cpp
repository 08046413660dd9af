// Every ISA level the CPU offers, in one process (kernels::set_isa): the int8 products and the
// row-invariant product (matmul_wt_rows) give the same bits on every level, the fp32 /
// low-precision GEMV stays within rounding of a double-precision reference on each level and keeps
// a row's bits independent of the batch. (The whole kernels suite also runs once per level:
// ctest's kernels, kernels_avx2, kernels_portable.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/random_data.h"
#include "common/typed_weights.h"
#include "lmforge/io/tensor.h"
#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
namespace {

using test::random_vector;

// The levels this CPU can run, lowest first; restores the level the process started with.
class Levels {
 public:
  Levels() : saved_(isa()) {
    for (Isa l : {Isa::Portable, Isa::Avx2, Isa::Avx512})
      if (l <= detected_isa()) list_.push_back(l);
  }
  ~Levels() { set_isa(saved_); }
  const std::vector<Isa>& list() const { return list_; }

 private:
  Isa saved_;
  std::vector<Isa> list_;
};

TEST(Isa, NamesDetectionAndClamping) {
  Levels levels;
  for (Isa l : {Isa::Portable, Isa::Avx2, Isa::Avx512}) EXPECT_EQ(isa_from_string(to_string(l)), l);
  EXPECT_FALSE(isa_from_string("avx512f").has_value());
  EXPECT_FALSE(isa_from_string("").has_value());
  EXPECT_LE(isa(), detected_isa());
  // Asking for more than the CPU has gives the CPU's best; asking for less lowers the level.
  set_isa(Isa::Avx512);
  EXPECT_EQ(isa(), detected_isa());
  set_isa(Isa::Portable);
  EXPECT_EQ(isa(), Isa::Portable);
  EXPECT_FALSE(using_avx2());
  EXPECT_EQ(isa_description().rfind("portable", 0), 0u) << isa_description();
  if (detected_isa() != Isa::Portable) {
    EXPECT_NE(isa_description().find("lowered by LMFORGE_ISA"), std::string::npos) << isa_description();
  }
  if (!(detected_isa() == Isa::Avx512)) {
    EXPECT_FALSE(cpu_has_avx512_vnni());
  }
}

// Symmetric int8 weights with a -128 among them (checkpoints may hold one).
struct Int8W {
  std::vector<int8_t> q;
  std::vector<float> scales;
  WeightMatrix m;
  Int8W(int N, int K, uint32_t seed) : q(static_cast<size_t>(N) * K), scales(N) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> d(-128, 127);
    for (auto& v : q) v = static_cast<int8_t>(d(rng));
    for (int n = 0; n < N; ++n) scales[n] = 0.001f * (1 + n % 7);
    m = {WeightType::I8_DYNAMIC, q.data(), scales.data(), N, K};
  }
};

TEST(Isa, Int8DynamicGivesTheSameBitsOnEveryLevel) {
  Levels levels;
  // K covers the 32- and 64-byte tails and, with 70000, the VNNI kernel's hand-off to AVX2 above
  // 65536; M the one-row kernel, the tiles and the row blocks of 64.
  struct Shape {
    int M, K, N;
  };
  for (Shape s : {Shape{1, 64, 9}, Shape{1, 777, 130}, Shape{2, 100, 7}, Shape{3, 768, 64}, Shape{5, 129, 13},
                  Shape{16, 768, 130}, Shape{17, 200, 31}, Shape{70, 320, 50}, Shape{2, 70000, 3}}) {
    const Int8W w(s.N, s.K, 1 + s.K + s.N);
    const auto x = random_vector(static_cast<size_t>(s.M) * s.K, 7 + s.M);
    const auto b = random_vector(s.N, 3);
    std::vector<float> first;
    for (Isa l : levels.list()) {
      set_isa(l);
      std::vector<float> y(static_cast<size_t>(s.M) * s.N, NAN);
      matmul_wt(x.data(), s.M, w.m, b.data(), y.data());
      if (first.empty()) {
        first = y;
        continue;
      }
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_EQ(std::memcmp(&y[i], &first[i], sizeof(float)), 0)
            << to_string(l) << " vs portable, M=" << s.M << " K=" << s.K << " N=" << s.N << " i=" << i;
    }
  }
}

TEST(Isa, GemvOfEveryTypeMatchesDoublePrecisionAndIsBatchInvariantOnEveryLevel) {
  Levels levels;
  for (WeightType type : {WeightType::F32, WeightType::BF16, WeightType::F16, WeightType::I8})
    for (int K : {5, 16, 31, 771})
      for (int N : {1, 7, 50, 131}) {
        const test::TypedWeights w = test::make_weights(type, N, K, 5 + K + N);
        const int M = 21;  // 16 + 5: a full group, a group of 5 and lone rows in matmul_wt_rows
        const auto x = random_vector(static_cast<size_t>(M) * K, 17 + K);
        const auto b = random_vector(N, 19 + N);
        for (Isa l : levels.list()) {
          set_isa(l);
          std::vector<float> all(static_cast<size_t>(M) * N), one(N);
          matmul_wt_rows(x.data(), M, w.m, b.data(), all.data());
          for (int m = 0; m < M; ++m) {
            matmul_wt_rows(x.data() + static_cast<long>(m) * K, 1, w.m, b.data(), one.data());
            for (int n = 0; n < N; ++n) {
              ASSERT_EQ(one[n], all[m * N + n]) << to_string(l) << " " << to_string(type) << " row " << m;
              double ref = b[n], mag = std::fabs(ref);
              for (int k = 0; k < K; ++k) {
                const double p = static_cast<double>(x[m * K + k]) * w.held[static_cast<size_t>(n) * K + k];
                ref += p;
                mag += std::fabs(p);
              }
              ASSERT_NEAR(all[m * N + n], ref, 1e-5 * mag + 1e-6)
                  << to_string(l) << " " << to_string(type) << " K=" << K << " N=" << N << " m=" << m;
            }
          }
          // And matmul_wt, for every M from one row (its own kernel) to the GEMV's 16 rows.
          for (int rows : {1, 2, 3, 4, 7, 16}) {
            std::vector<float> y(static_cast<size_t>(rows) * N);
            matmul_wt(x.data(), rows, w.m, b.data(), y.data());
            for (int i = 0; i < rows * N; ++i)
              ASSERT_NEAR(y[i], all[i], 1e-4 * (1 + std::fabs(all[i]))) << to_string(l) << " rows=" << rows;
          }
        }
      }
}

// matmul_wt_rows's contract, written out here: output (m, n) is the fma chain
//   s = 0; for k in order: s = fma(x[m,k], w[n,k], s); then fma(s, scale, bias) (int8) or s + bias
// over the stored weight (int8: its integer, the scale applied once at the end). Every level and
// every M must give exactly these bits: a lone row (the few-row kernel, weight rows in the lanes),
// a handful, and many (the panel kernel, activation rows in the lanes, with partial panels).
TEST(Isa, MatmulWtRowsIsOneFmaChainPerOutputOnEveryLevelAndEveryM) {
  Levels levels;
  for (WeightType type : {WeightType::F32, WeightType::BF16, WeightType::F16, WeightType::I8})
    for (int K : {1, 5, 16, 17, 31, 771, 3000})  // 3000: 40 rows and more run in two slices of k
      for (int N : {1, 7, 50, 131}) {
        if (K == 3000 && (N == 1 || N == 131)) continue;  // (time)
        const test::TypedWeights w = test::make_weights(type, N, K, 3 + K + 2 * N);
        std::vector<float> stored(w.held);
        if (type == WeightType::I8)
          for (size_t i = 0; i < stored.size(); ++i) stored[i] = w.q[i];
        const int max_rows = 70;
        const auto x = random_vector(static_cast<size_t>(max_rows) * K, 23 + K);
        const auto b = random_vector(N, 29 + N);
        std::vector<float> want(static_cast<size_t>(max_rows) * N);
        for (int m = 0; m < max_rows; ++m)
          for (int n = 0; n < N; ++n) {
            float s = 0.0f;
            for (int k = 0; k < K; ++k) s = std::fma(x[m * K + k], stored[static_cast<size_t>(n) * K + k], s);
            want[m * N + n] = type == WeightType::I8 ? std::fma(s, w.scales[n], b[n]) : s + b[n];
          }
        for (Isa l : levels.list()) {
          set_isa(l);
          std::vector<float> untouched(N, 7.0f);
          matmul_wt_rows(x.data(), 0, w.m, b.data(), untouched.data());  // no rows: nothing written
          ASSERT_EQ(untouched, std::vector<float>(N, 7.0f)) << to_string(l);
          for (int M : {1, 2, 3, 5, 8, 9, 15, 16, 17, 31, 33, 40, 48, 63, 70}) {
            std::vector<float> y(static_cast<size_t>(M) * N, NAN);
            matmul_wt_rows(x.data(), M, w.m, b.data(), y.data());
            for (int i = 0; i < M * N; ++i)
              ASSERT_EQ(std::memcmp(&y[i], &want[i], sizeof(float)), 0)
                  << to_string(l) << " " << to_string(type) << " M=" << M << " K=" << K << " N=" << N << " i=" << i
                  << ": " << y[i] << " vs " << want[i];
          }
        }
      }
}

}  // namespace
}  // namespace lmforge::kernels
