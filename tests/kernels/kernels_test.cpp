// Kernels against double-precision references. The process runs the CPU's best ISA level; ctest
// runs it again with LMFORGE_ISA=avx2 and LMFORGE_ISA=portable for the lower ones.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <vector>

#include "common/random_data.h"
#include "lmforge/io/tensor.h"
#include "lmforge/kernels/kernels.h"

namespace lmforge::kernels {
namespace {

using test::random_vector;

TEST(MatmulWt, MatchesReferenceForEveryPathAndShape) {
  // M up to 16 takes the GEMV kernel, above it sgemm (fp32 on AVX-512: 2..64 the row tiles, then
  // oneDNN's sgemm); K and N cover vector tails and tile edges, 300 rows several row blocks.
  for (int M : {1, 2, 3, 4, 5, 8, 15, 16, 17, 33, 64, 65, 300})
    for (int K : {5, 8, 13, 64, 771})
      for (int N : {1, 7, 50, 301})
        for (bool with_bias : {false, true}) {
          const auto x = random_vector(static_cast<size_t>(M) * K, 1 + M);
          const auto w = random_vector(static_cast<size_t>(N) * K, 2 + K);
          const auto b = random_vector(N, 3 + N);
          std::vector<float> y(static_cast<size_t>(M) * N, NAN);
          matmul_wt(x.data(), M, K, w.data(), N, with_bias ? b.data() : nullptr, y.data());
          for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
              double ref = with_bias ? b[n] : 0.0, mag = std::fabs(ref);
              for (int k = 0; k < K; ++k) {
                ref += static_cast<double>(x[m * K + k]) * w[n * K + k];
                mag += std::fabs(static_cast<double>(x[m * K + k]) * w[n * K + k]);
              }
              ASSERT_NEAR(y[m * N + n], ref, 1e-5 * mag + 1e-6) << "M=" << M << " K=" << K << " N=" << N;
            }
        }
}

TEST(MatmulWt, BatchRowsAreBitIdenticalAcrossBatchSizes) {
  // Rows 2..16 (fp32 on the AVX-512 level: 2..64) go through the same reduction order: a batch
  // gives each row the bits it gets in any other batch size (M = 1 has its own kernel).
  const int K = 768, N = 100, top = isa() == Isa::Avx512 ? 64 : 16;
  const auto x = random_vector(static_cast<size_t>(top) * K, 5), w = random_vector(N * K, 6);
  std::vector<float> y_top(static_cast<size_t>(top) * N);
  matmul_wt(x.data(), top, K, w.data(), N, nullptr, y_top.data());
  for (int M = 2; M < top; ++M) {
    std::vector<float> y(M * N);
    matmul_wt(x.data(), M, K, w.data(), N, nullptr, y.data());
    for (int i = 0; i < M * N; ++i) ASSERT_EQ(y[i], y_top[i]) << "M=" << M << " i=" << i;
  }
}

// A request's rows under continuous batching: whatever M and whatever the other rows, a row gets
// the bits it gets alone (M = 1, and M > 16, which matmul_wt would send to sgemm, included).
TEST(MatmulWtRows, EachRowGetsTheSameBitsInAnyBatch) {
  const int K = 200, N = 37, M = 40;
  const auto x = random_vector(static_cast<size_t>(M) * K, 11), wf = random_vector(static_cast<size_t>(N) * K, 12);
  const auto b = random_vector(N, 13);
  std::vector<uint16_t> w16(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) w16[i] = float_to_bf16(wf[i]);
  std::vector<int8_t> w8(wf.size());
  std::vector<float> scales(N);
  quantize_rows_int8(wf.data(), N, K, w8.data(), scales.data());
  const WeightMatrix types[] = {{WeightType::F32, wf.data(), nullptr, N, K},
                                {WeightType::BF16, w16.data(), nullptr, N, K},
                                {WeightType::I8, w8.data(), scales.data(), N, K},
                                {WeightType::I8_DYNAMIC, w8.data(), scales.data(), N, K}};
  for (const WeightMatrix& w : types) {
    std::vector<float> all(static_cast<size_t>(M) * N);
    matmul_wt_rows(x.data(), M, w, b.data(), all.data());
    // The same rows in reverse order, and each row alone.
    std::vector<float> xr(x.size()), rev(all.size()), one(N);
    for (int m = 0; m < M; ++m) std::copy_n(x.data() + m * K, K, xr.data() + (M - 1 - m) * K);
    matmul_wt_rows(xr.data(), M, w, b.data(), rev.data());
    for (int m = 0; m < M; ++m) {
      matmul_wt_rows(x.data() + m * K, 1, w, b.data(), one.data());
      for (int n = 0; n < N; ++n) {
        ASSERT_EQ(one[n], all[m * N + n]) << to_string(w.type) << " row " << m << " col " << n;
        ASSERT_EQ(rev[(M - 1 - m) * N + n], all[m * N + n]) << to_string(w.type) << " row " << m;
      }
    }
    // And they are the product (same tolerance as matmul_wt against double precision).
    std::vector<float> ref(all.size());
    matmul_wt(x.data(), M, w, b.data(), ref.data());
    for (size_t i = 0; i < all.size(); ++i) ASSERT_NEAR(all[i], ref[i], 1e-3f * (1 + std::fabs(ref[i]))) << i;
  }
}

TEST(Activate, GeluNewMatchesHFDefinition) {
  std::vector<float> x;
  for (float v = -30.0f; v <= 30.0f; v += 0.01f) x.push_back(v);
  std::vector<float> y = x;
  activate(Activation::GeluNew, y.data(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i], ref = 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    ASSERT_NEAR(y[i], ref, 2e-7 * std::max(1.0, std::fabs(v))) << "x=" << v;
  }
}

TEST(Activate, SigmoidGatesMatchReference) {
  const auto x = random_vector(10001, 7, 5.0f);  // odd length: vector tail
  for (auto [act, a] : {std::pair{Activation::Silu, 1.0}, std::pair{Activation::QuickGelu, 1.702}}) {
    std::vector<float> y = x;
    activate(act, y.data(), y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double ref = x[i] / (1.0 + std::exp(-a * x[i]));
      ASSERT_NEAR(y[i], ref, 2e-7 * std::max(1.0, std::fabs(ref)));
    }
  }
}

TEST(Activate, LargeInputsSplitAcrossThreadsMatchSerial) {
  const auto x = random_vector((1 << 18) + 3, 8, 3.0f);
  std::vector<float> whole = x, pieces = x;
  activate(Activation::GeluNew, whole.data(), whole.size());
  for (size_t i = 0; i < pieces.size(); i += 1000)
    activate(Activation::GeluNew, pieces.data() + i, std::min<size_t>(1000, pieces.size() - i));
  EXPECT_EQ(whole, pieces);
}

TEST(Softmax, MatchesReferenceAndGivesMaskedEntriesZero) {
  for (int n : {1, 7, 8, 9, 100, 1025}) {
    auto x = random_vector(n, 9 + n, 4.0f);
    for (int i = 1; i < n; i += 3) x[i] = -INFINITY;  // masked
    std::vector<float> y = x;
    softmax(y.data(), n);
    double mx = -INFINITY, sum = 0;
    for (float v : x) mx = std::max(mx, static_cast<double>(v));
    for (float v : x) sum += std::exp(v - mx);
    for (int i = 0; i < n; ++i) {
      if (std::isinf(x[i])) {
        ASSERT_EQ(y[i], 0.0f);
      } else {
        ASSERT_NEAR(y[i], std::exp(x[i] - mx) / sum, 1e-6);
      }
    }
  }
}

TEST(LayerNorm, MatchesReference) {
  for (int E : {4, 13, 768}) {
    const int M = 37;
    auto x = random_vector(M * E, 10 + E, 3.0f);
    for (auto& v : x) v += 5.0f;  // a mean far from 0
    const auto g = random_vector(E, 11), b = random_vector(E, 12);
    std::vector<float> y(M * E);
    layer_norm(x.data(), M, E, g.data(), b.data(), 1e-5f, y.data());
    for (int m = 0; m < M; ++m) {
      double mean = 0, var = 0;
      for (int i = 0; i < E; ++i) mean += x[m * E + i];
      mean /= E;
      for (int i = 0; i < E; ++i) var += (x[m * E + i] - mean) * (x[m * E + i] - mean);
      const double rstd = 1.0 / std::sqrt(var / E + 1e-5);
      for (int i = 0; i < E; ++i)
        ASSERT_NEAR(y[m * E + i], (x[m * E + i] - mean) * rstd * g[i] + b[i], 1e-5 * (1 + std::fabs(g[i]) * 4));
    }
  }
}

TEST(Attention, DotRowsAndWeightedSumMatchReference) {
  for (int hd : {4, 8, 13, 64, 80, 256})
    for (int rows : {1, 3, 4, 5, 17}) {
      const size_t ld = hd + 7;  // rows of a wider cache
      const auto q = random_vector(hd, 13), keys = random_vector(rows * ld, 14 + hd);
      auto p = random_vector(rows, 15 + rows);
      p[0] = 0.0f;  // skipped row
      std::vector<float> s(rows), out(hd);
      dot_rows(q.data(), keys.data(), ld, rows, hd, 0.125f, s.data());
      weighted_rows_sum(p.data(), keys.data(), ld, rows, hd, out.data());
      for (int j = 0; j < rows; ++j) {
        double ref = 0;
        for (int d = 0; d < hd; ++d) ref += static_cast<double>(q[d]) * keys[j * ld + d];
        ASSERT_NEAR(s[j], 0.125 * ref, 1e-5 * std::sqrt(hd));
      }
      for (int d = 0; d < hd; ++d) {
        double ref = 0;
        for (int j = 0; j < rows; ++j) ref += static_cast<double>(p[j]) * keys[j * ld + d];
        ASSERT_NEAR(out[d], ref, 1e-5 * rows);
      }
    }
}

TEST(ParallelFor, RunsEveryTaskOnceIncludingNestedCalls) {
  for (int tasks : {0, 1, 2, 3, 100, 5000}) {
    std::vector<std::atomic<int>> hits(std::max(tasks, 1));
    parallel_for(tasks, [&](int t) { hits[t].fetch_add(1); });
    for (int t = 0; t < tasks; ++t) ASSERT_EQ(hits[t].load(), 1) << "task " << t << " of " << tasks;
  }
  std::atomic<int> inner{0};
  parallel_for(8, [&](int) { parallel_for(5, [&](int) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 40);
}

TEST(ParallelFor, ManyShortJobsAndResizing) {
  const int saved = num_threads();
  for (int threads : {1, 3, 2, 2, 3, saved}) {  // a pool torn down right after it starts, too
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    std::atomic<long> sum{0};
    for (int i = 0; i < 2000; ++i) parallel_for(4, [&](int t) { sum.fetch_add(t + 1); });
    EXPECT_EQ(sum.load(), 2000L * 10);
  }
}

}  // namespace
}  // namespace lmforge::kernels
