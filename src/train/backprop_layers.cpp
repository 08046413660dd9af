// Embedding, layer norm, linear, activation and cross-entropy layers of the training pass (shapes
// in backprop_layers.h). fp32 matmuls go to kernels::sgemm (oneDNN on the AVX-512 level, else
// OpenBLAS), bf16 ones to kernels::gemm_mixed; the rest is OpenMP over rows, with
// per-thread partial sums reduced in thread order so results do not depend on scheduling.
#include "train/backprop_layers.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lmforge/kernels/kernels.h"
#include "train/backprop_math.h"

namespace lmforge::backprop {
namespace {

// Threads for a parallel region opened here: 1 when already inside one.
int region_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

// Adds the per-thread partials [nt][n] into out[n], in thread order.
void reduce_partials(const std::vector<float>& partial, int nt, int n, float* out) {
  for (int t = 0; t < nt; ++t) {
    const float* p = partial.data() + static_cast<size_t>(t) * n;
    for (int i = 0; i < n; ++i) out[i] += p[i];
  }
}

}  // namespace

// ---- embedding ------------------------------------------------------------------------------

void embedding_forward(float* x, const int32_t* ids, const int32_t* pos, const float* wte, const float* wpe, int M,
                       int E) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < M; ++r) {
    float* xr = x + static_cast<size_t>(r) * E;
    const float* t = wte + static_cast<size_t>(ids[r]) * E;
    if (!wpe) {
      std::memcpy(xr, t, E * sizeof(float));
      continue;
    }
    const float* p = wpe + static_cast<size_t>(pos[r]) * E;
    for (int e = 0; e < E; ++e) xr[e] = t[e] + p[e];
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dx, const int32_t* ids, const int32_t* pos, int M,
                        int E) {
  // Rows may share a token (or position), so threads split the features instead of the rows: no
  // two threads ever write the same float, and each row's additions happen in row order.
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int e0 = static_cast<int>(static_cast<long>(E) * t / nt),
              e1 = static_cast<int>(static_cast<long>(E) * (t + 1) / nt);
    for (int r = 0; r < M; ++r) {
      const float* d = dx + static_cast<size_t>(r) * E;
      float* gt = dwte + static_cast<size_t>(ids[r]) * E;
      for (int e = e0; e < e1; ++e) gt[e] += d[e];
      if (!dwpe) continue;
      float* gp = dwpe + static_cast<size_t>(pos[r]) * E;
      for (int e = e0; e < e1; ++e) gp[e] += d[e];
    }
  }
}

// ---- layer norm -----------------------------------------------------------------------------

namespace {

void layernorm_row(float* y, float* mean_out, float* rstd_out, const float* x, const float* g, const float* b, int E,
                   float eps) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < E; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(E);
  float var = 0.0f;  // two passes: no cancellation for rows with a large mean
#pragma omp simd reduction(+ : var)
  for (int i = 0; i < E; ++i) var += (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.0f / std::sqrt(var / static_cast<float>(E) + eps);
  for (int i = 0; i < E; ++i) y[i] = (x[i] - mean) * rstd * g[i] + b[i];
  *mean_out = mean;
  *rstd_out = rstd;
}

// With xhat = (x - mean) rstd and dxhat = dy g:
//   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dg += dy xhat, db += dy.
void layernorm_backward_row(float* dx, float* dg, float* db, const float* dy, const float* x, float mean, float rstd,
                            const float* g, int E) {
  float sum_d = 0.0f, sum_dx = 0.0f;
#pragma omp simd reduction(+ : sum_d, sum_dx)
  for (int i = 0; i < E; ++i) {
    const float xhat = (x[i] - mean) * rstd, dxhat = dy[i] * g[i];
    sum_d += dxhat;
    sum_dx += dxhat * xhat;
    dg[i] += dy[i] * xhat;
    db[i] += dy[i];
  }
  const float mean_d = sum_d / static_cast<float>(E), mean_dx = sum_dx / static_cast<float>(E);
  for (int i = 0; i < E; ++i) {
    const float xhat = (x[i] - mean) * rstd;
    dx[i] += rstd * (dy[i] * g[i] - mean_d - xhat * mean_dx);
  }
}

}  // namespace

void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* g, const float* b, int M, int E,
                       float eps) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < M; ++r) {
    const size_t o = static_cast<size_t>(r) * E;
    layernorm_row(y + o, mean + r, rstd + r, x + o, g, b, E, eps);
  }
}

void layernorm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* mean,
                        const float* rstd, const float* g, int M, int E) {
  const int nt = region_threads();
  std::vector<float> partial(static_cast<size_t>(nt) * 2 * E, 0.0f);  // per thread: dg | db
#pragma omp parallel num_threads(nt)
  {
    float* pg = partial.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * E;
#pragma omp for schedule(static)
    for (int r = 0; r < M; ++r) {
      const size_t o = static_cast<size_t>(r) * E;
      layernorm_backward_row(dx + o, pg, pg + E, dy + o, x + o, mean[r], rstd[r], g, E);
    }
  }
  if (!dg) return;  // a frozen layer norm (LoRA): only dx
  std::vector<float> both(2 * static_cast<size_t>(E), 0.0f);
  reduce_partials(partial, nt, 2 * E, both.data());
  for (int i = 0; i < E; ++i) {
    dg[i] += both[i];
    db[i] += both[E + i];
  }
}

// ---- linear ---------------------------------------------------------------------------------

void layernorm_forward_bf16(uint16_t* y, float* mean, float* rstd, const float* x, const float* g, const float* b,
                            int M, int E, float eps) {
#pragma omp parallel
  {
    std::vector<float> row(E);  // one row in fp32, rounded while still in cache
#pragma omp for schedule(static)
    for (int r = 0; r < M; ++r) {
      const size_t o = static_cast<size_t>(r) * E;
      layernorm_row(row.data(), mean + r, rstd + r, x + o, g, b, E, eps);
      to_bf16(y + o, row.data(), E);
    }
  }
}

namespace {

// y[r, :] = b (or += b when accumulating) for every row r.
void fill_bias(float* y, const float* b, int M, int N, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < M; ++r) {
    float* yr = y + static_cast<size_t>(r) * N;
    if (accumulate)
      for (int j = 0; j < N; ++j) yr[j] += b[j];
    else
      std::memcpy(yr, b, N * sizeof(float));
  }
}

}  // namespace

void linear_forward(float* y, const float* x, const float* w, const float* b, int M, int K, int N, bool accumulate) {
  if (b) fill_bias(y, b, M, N, accumulate);  // fold the bias into C so sgemm does the only pass over y
  const float beta = (b || accumulate) ? 1.0f : 0.0f;
  kernels::sgemm(false, true, M, N, K, 1.0f, x, K, w, K, beta, y, N);
}

namespace {

// db[N] += Σ_r dy[r, :], threads over column blocks (each sums all rows of its columns).
void column_sums(float* db, const float* dy, int M, int N) {
  constexpr int kCols = 256;
  const int blocks = (N + kCols - 1) / kCols;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; ++blk) {
    const int c0 = blk * kCols, c1 = std::min(N, c0 + kCols);
    float acc[kCols] = {};
    for (int r = 0; r < M; ++r) {
      const float* row = dy + static_cast<size_t>(r) * N;
      for (int j = c0; j < c1; ++j) acc[j - c0] += row[j];
    }
    for (int j = c0; j < c1; ++j) db[j] += acc[j - c0];
  }
}

}  // namespace

void linear_backward(float* dx, bool dx_accumulate, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int M, int K, int N) {
  if (dx)
    kernels::sgemm(false, false, M, K, N, 1.0f, dy, N, w, K, dx_accumulate ? 1.0f : 0.0f, dx, K);
  if (dw) kernels::sgemm(true, false, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
  if (db) column_sums(db, dy, M, N);
}


void linear_forward_mixed(float* y, const MatRef& x, const uint16_t* w, const float* b, int M, int K, int N,
                          bool accumulate) {
  if (b) fill_bias(y, b, M, N, accumulate);
  gemm_mixed(M, N, K, x, mat(w, K, true), (b || accumulate) ? 1.0f : 0.0f, y, N);
}

void linear_backward_mixed(float* dx, bool dx_accumulate, float* dw, float* db, const float* dy, const MatRef& x,
                           const uint16_t* w, int M, int K, int N) {
  if (dx) gemm_mixed(M, K, N, mat(dy, N), mat(w, K), dx_accumulate ? 1.0f : 0.0f, dx, K);
  if (dw) gemm_mixed(N, K, M, mat(dy, N, true), x, 1.0f, dw, K);
  if (db) column_sums(db, dy, M, N);
}

// ---- activation -----------------------------------------------------------------------------

void activation_forward(Activation act, float* a, const float* u, size_t n) {
  // The inference kernel (vectorised, HF's definitions), applied to a copy: backward needs u.
  if (a != u) {
    constexpr size_t kChunk = 1 << 16;
    const long chunks = static_cast<long>((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 1 && !omp_in_parallel())
    for (long c = 0; c < chunks; ++c) {
      const size_t i0 = static_cast<size_t>(c) * kChunk;
      std::memcpy(a + i0, u + i0, std::min(kChunk, n - i0) * sizeof(float));
    }
  }
  kernels::activate(act, a, n);
}

// ---- cross-entropy --------------------------------------------------------------------------

double cross_entropy(float* logits, const int32_t* targets, int n, int V, bool want_grad, float grad_scale) {
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (int r = 0; r < n; ++r) {
    float* x = logits + static_cast<size_t>(r) * V;
    const int y = targets[r];
    const float target_logit = x[y];
    const float mx = row_max(x, V);
    const float sum = exp_shift_sum(x, V, mx);  // x now holds exp(x - max)
    total += static_cast<double>(mx) + std::log(static_cast<double>(sum)) - target_logit;
    if (!want_grad) continue;
    scale_row(x, V, grad_scale / sum);  // grad_scale * softmax
    x[y] -= grad_scale;
  }
  return total;
}

}  // namespace lmforge::backprop
