#include "generate/scores.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace lmforge::gen {

namespace {
// Eight independent maxima (the same result in any order; NaN entries are skipped as std::max
// skips them), so the compare chains overlap.
float row_max(const float* x, int n) {
  float m[8];
  std::fill(m, m + 8, -std::numeric_limits<float>::infinity());
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) m[j] = std::max(m[j], x[i + j]);
  for (; i < n; ++i) m[0] = std::max(m[0], x[i]);
  for (int j = 1; j < 8; ++j) m[0] = std::max(m[0], m[j]);
  return m[0];
}
}  // namespace

void softmax_inplace(float* x, int n) {
  const float m = row_max(x, n);
  // A row that is entirely -inf has no distribution; torch would give NaN. Leave zeros instead of
  // NaN so that a caller's "no token left" check sees an all-zero row.
  if (m == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  // torch sums exp(x - max) and multiplies by the reciprocal; the sum is accumulated in double here
  // (torch uses 8-lane float partial sums), which only moves the last bit. Four partial sums let
  // the additions overlap (one chain of 50257 double additions took as long as the exps).
  double sum[4] = {0.0, 0.0, 0.0, 0.0};
  int i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) {
      x[i + j] = std::exp(x[i + j] - m);
      sum[j] += x[i + j];
    }
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum[0] += x[i];
  }
  const float inv = static_cast<float>(1.0 / ((sum[0] + sum[1]) + (sum[2] + sum[3])));
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

namespace {
// log(sum(exp(x - m))) for the row maximum m, as torch's log_softmax reduces the row.
float log_sum_exp_shifted(const float* x, int n, float m) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += std::exp(x[i] - m);
  return static_cast<float>(std::log(sum));
}
}  // namespace

void log_softmax_inplace(float* x, int n) {
  const float m = row_max(x, n);
  const float log_sum = log_sum_exp_shifted(x, n, m);
  for (int i = 0; i < n; ++i) x[i] = (x[i] - m) - log_sum;
}

float log_softmax_at(const float* x, int n, int i) {
  const float m = row_max(x, n);
  return (x[i] - m) - log_sum_exp_shifted(x, n, m);
}

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

std::vector<int> top_k_indices(const float* x, int n, int k) {
  k = std::min(k, n);
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [x](int a, int b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
  idx.resize(k);
  return idx;
}

}  // namespace lmforge::gen
