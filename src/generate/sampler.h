#pragma once
// Random choices of sampling strategies. HF draws from torch's generator, which cannot be
// reproduced; we draw from a seeded std::mt19937_64 so that a given --seed is repeatable.
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

namespace lmforge::gen {

class Sampler {
 public:
  explicit Sampler(std::optional<uint64_t> seed);

  // One index drawn from `probs` (non-negative, need not be normalised); never a zero entry.
  // Returns -1 when every entry is zero.
  int sample(const float* probs, int n);

  // torch.multinomial(probs, k, replacement=False): k distinct indices, each draw proportional to the
  // remaining mass. Uses the exponential-race form (argtop-k of p_i / E_i, E_i ~ Exp(1)), which is
  // what torch does on CPU. Returns fewer than k indices when fewer entries are non-zero.
  std::vector<int> sample_without_replacement(const float* probs, int n, int k);

 private:
  std::mt19937_64 rng_;
};

}  // namespace lmforge::gen
