#include "generate/scores.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace lmforge::gen {

namespace {
float row_max(const float* x, int n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
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
  // (torch uses 8-lane float partial sums), which only moves the last bit.
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
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
