#include "generate/sampler.h"

#include <algorithm>
#include <numeric>

namespace lmforge::gen {

Sampler::Sampler(std::optional<uint64_t> seed) : rng_(seed ? *seed : std::random_device{}()) {}

int Sampler::sample(const float* probs, int n) {
  double total = 0.0;
  int last_nonzero = -1;
  for (int i = 0; i < n; ++i)
    if (probs[i] > 0) {
      total += probs[i];
      last_nonzero = i;
    }
  if (last_nonzero < 0) return -1;
  const double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double cum = 0.0;
  for (int i = 0; i < n; ++i) {
    if (probs[i] <= 0) continue;
    cum += probs[i];
    if (u < cum) return i;
  }
  return last_nonzero;  // u landed on the rounding slack at the very end
}

std::vector<int> Sampler::sample_without_replacement(const float* probs, int n, int k) {
  std::exponential_distribution<double> exp1(1.0);
  std::vector<std::pair<double, int>> keys;
  for (int i = 0; i < n; ++i)
    if (probs[i] > 0) keys.emplace_back(probs[i] / exp1(rng_), i);
  k = std::min<int>(k, static_cast<int>(keys.size()));
  std::partial_sort(keys.begin(), keys.begin() + k, keys.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int> out(k);
  for (int i = 0; i < k; ++i) out[i] = keys[i].second;
  return out;
}

}  // namespace lmforge::gen
