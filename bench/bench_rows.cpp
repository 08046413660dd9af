// The row-invariant product of continuous batching (kernels::matmul_wt_rows) over one decode step
// of the GPT-2 124M shape: 12 × {768→2304, 768→768, 768→3072, 3072→768} plus the 50257-row head,
// random weights, M activation rows. Beside it, in the same run, matmul_wt on the same rows (the
// GEMV kernel up to 16 rows, else sgemm: fast, but a row's bits may depend on the batch).
//
//   bench_rows [--rows 1,2,16,32,64] [--dtype float32,bfloat16] [--reps 10] [--isa avx2] [--by_shape]
//
// --by_shape: matmul_wt_rows alone, each distinct matrix shape timed on its own as well.
// Per M: the best and median step time of --reps interleaved rounds, the rate in GFLOP/s (2·M·N·K
// per matrix) and as a share of the FMA peak this process measures on the same threads.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "lmforge/io/tensor.h"
#include "lmforge/kernels/kernels.h"

using namespace lmforge;
using Clock = std::chrono::steady_clock;

namespace {

struct Matrix {
  int N, K;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  kernels::WeightMatrix view(bool low) const {
    if (low) return {kernels::WeightType::BF16, bf16.data(), nullptr, N, K};
    return {kernels::WeightType::F32, f32.data(), nullptr, N, K};
  }
};

std::vector<Matrix> gpt2_step_matrices(bool with_bf16) {
  std::vector<std::pair<int, int>> shapes;
  for (int l = 0; l < 12; ++l)
    for (auto s : {std::pair{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}}) shapes.push_back(s);
  shapes.push_back({50257, 768});
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<Matrix> ms;
  for (auto [N, K] : shapes) {
    Matrix m{N, K, std::vector<float>(static_cast<size_t>(N) * K), {}};
    for (float& v : m.f32) v = d(rng);
    if (with_bf16) {
      m.bf16.resize(m.f32.size());
      for (size_t i = 0; i < m.f32.size(); ++i) m.bf16[i] = float_to_bf16(m.f32[i]);
    }
    ms.push_back(std::move(m));
  }
  return ms;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<int> rows = {1, 2, 16, 32, 64};
  std::vector<std::string> dtypes = {"float32"};
  int reps = 10;
  bool by_shape = false;
  for (bench::FlagReader f(argc, argv); f.next();) {
    if (f.is("--rows")) {
      rows.clear();
      for (const auto& r : bench::split(f.value())) rows.push_back(bench::FlagReader::to_int("--rows", r));
      if (rows.empty()) throw Error("--rows: expected a list of row counts");
    } else if (f.is("--dtype")) {
      dtypes = bench::split(f.value());
    } else if (f.is("--by_shape")) {
      by_shape = true;
    } else if (f.is("--reps")) {
      reps = f.integer();
    } else if (f.is("--isa")) {
      const auto level = kernels::isa_from_string(f.value());
      if (!level) throw Error("--isa: expected portable, avx2 or avx512");
      kernels::set_isa(*level);
    } else {
      throw Error("unknown flag " + f.flag());
    }
  }
  bool want_bf16 = false;
  for (const auto& d : dtypes) {
    if (d != "float32" && d != "bfloat16") throw Error("--dtype: expected float32 or bfloat16, got " + d);
    want_bf16 = want_bf16 || d == "bfloat16";
  }
  const auto ms = gpt2_step_matrices(want_bf16);
  const double peak = kernels::fma_peak_gflops();
  std::printf("kernels   ISA path %s, %d threads, FMA peak %.0f GFLOP/s (measured); load average %s\n",
              kernels::isa_description().c_str(), kernels::num_threads(), peak, bench::load_average().c_str());
  std::printf("%-9s %4s  %-15s %9s %9s %9s %7s\n", "dtype", "M", "product", "best ms", "median ms", "GFLOP/s", "% peak");
  int max_rows = *std::max_element(rows.begin(), rows.end());
  std::vector<float> x(static_cast<size_t>(max_rows) * 3072), y(static_cast<size_t>(max_rows) * 50257);
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float& v : x) v = d(rng);
  for (const auto& dtype : dtypes)
    for (int M : rows) {
      double flops = 0;
      for (const auto& m : ms) flops += 2.0 * M * m.N * m.K;
      std::vector<double> t_rows, t_wt;
      for (int rep = 0; rep < reps + 1; ++rep)  // round 0 warms up
        for (int which = 0; which < 2; ++which) {
          const auto t0 = Clock::now();
          for (const auto& m : ms) {
            const auto w = m.view(dtype == "bfloat16");
            if (which == 0)
              kernels::matmul_wt_rows(x.data(), M, w, nullptr, y.data());
            else
              kernels::matmul_wt(x.data(), M, w, nullptr, y.data());
          }
          const double s = std::chrono::duration<double>(Clock::now() - t0).count();
          if (rep > 0) (which == 0 ? t_rows : t_wt).push_back(s);
        }
      for (int which = 0; which < 2; ++which) {
        const auto& t = which == 0 ? t_rows : t_wt;
        const double best = *std::min_element(t.begin(), t.end());
        std::printf("%-9s %4d  %-15s %9.2f %9.2f %9.1f %6.1f%%\n", dtype.c_str(), M,
                    which == 0 ? "matmul_wt_rows" : "matmul_wt", best * 1e3, median(t) * 1e3, flops / best / 1e9,
                    100.0 * flops / best / 1e9 / peak);
      }
    }
  if (by_shape)
    for (const auto& dtype : dtypes)
      for (int M : rows)
        for (size_t i : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, ms.size() - 1}) {
          const auto w = ms[i].view(dtype == "bfloat16");
          std::vector<double> t;
          for (int rep = 0; rep < reps + 1; ++rep) {
            const auto t0 = Clock::now();
            for (int r = 0; r < 12; ++r) kernels::matmul_wt_rows(x.data(), M, w, nullptr, y.data());
            if (rep > 0) t.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / 12);
          }
          const double best = *std::min_element(t.begin(), t.end()), flops = 2.0 * M * w.N * w.K;
          std::printf("%-9s %4d  %5d x %-5d %9.3f %9.3f %9.1f %6.1f%%\n", dtype.c_str(), M, w.N, w.K, best * 1e3,
                      median(t) * 1e3, flops / best / 1e9, 100.0 * flops / best / 1e9 / peak);
        }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
