#pragma once
// Reproducible random inputs for kernel tests.
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace lmforge::test {

// n values from N(0, scale), the same for the same seed.
inline std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace lmforge::test
