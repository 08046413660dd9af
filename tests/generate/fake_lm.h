#pragma once
// A LanguageModel for tests: the next-token logits of a row are a function of the tokens the row can
// see (mask 1), in order. The session checks what generate() feeds it: visible tokens must carry
// positions 0, 1, 2, ... (HF's cumsum(mask) - 1), and every call is logged.
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "lmforge/error.h"
#include "lmforge/generate/language_model.h"

namespace lmforge::test {

using LogitsFn = std::function<void(const std::vector<int32_t>& visible, float* logits)>;

struct ForwardCall {
  int rows = 0, n = 0;
  std::vector<int32_t> tokens, positions;
  std::vector<uint8_t> mask;
};

class FakeLM : public LanguageModel {
 public:
  FakeLM(int vocab, int max_positions, LogitsFn fn) : vocab_(vocab), max_positions_(max_positions), fn_(std::move(fn)) {}
  int vocab_size() const override { return vocab_; }
  int max_positions() const override { return max_positions_; }
  std::unique_ptr<LanguageModelSession> start(int rows, int capacity) const override;

  // Logits for a sequence seen without padding.
  std::vector<float> logits_of(const std::vector<int32_t>& visible) const {
    std::vector<float> out(vocab_);
    fn_(visible, out.data());
    return out;
  }

  mutable std::vector<ForwardCall> calls;
  mutable int sessions_started = 0;
  mutable int last_capacity = 0;
  mutable bool bad_position = false;  // a visible token got a position other than its index

 private:
  friend class FakeSession;
  int vocab_, max_positions_;
  LogitsFn fn_;
};

class FakeSession : public LanguageModelSession {
 public:
  FakeSession(const FakeLM& lm, int rows, int capacity)
      : LanguageModelSession(rows), lm_(lm), capacity_(capacity), visible_(rows) {}

  void forward(int n, const int32_t* tokens, const int32_t* positions, const uint8_t* mask, float* logits,
               bool all_positions) override {
    if (length_ + n > capacity_) throw Error("fake session: capacity exceeded");
    if (all_positions) throw std::logic_error("fake session: all_positions not supported");
    ForwardCall call{rows_, n, {tokens, tokens + rows_ * n}, {positions, positions + rows_ * n}, {mask, mask + rows_ * n}};
    lm_.calls.push_back(call);
    for (int r = 0; r < rows_; ++r) {
      for (int j = 0; j < n; ++j) {
        const int i = r * n + j;
        if (!mask[i]) continue;
        if (positions[i] != static_cast<int>(visible_[r].size())) lm_.bad_position = true;
        visible_[r].push_back(tokens[i]);
      }
      lm_.fn_(visible_[r], logits + static_cast<size_t>(r) * lm_.vocab_);
    }
    length_ += n;
  }

  void reorder(const std::vector<int>& src) override {
    std::vector<std::vector<int32_t>> v(rows_);
    for (int r = 0; r < rows_; ++r) v[r] = visible_.at(src[r]);
    visible_ = std::move(v);
  }

 private:
  const FakeLM& lm_;
  int capacity_;
  std::vector<std::vector<int32_t>> visible_;
};

inline std::unique_ptr<LanguageModelSession> FakeLM::start(int rows, int capacity) const {
  if (capacity > max_positions_) throw Error("fake: capacity beyond max_positions");
  ++sessions_started;
  last_capacity = capacity;
  return std::make_unique<FakeSession>(*this, rows, capacity);
}

// Pseudo-random but deterministic logits in [-4, 4) from the last two visible tokens and the length.
inline LogitsFn hashed_logits(int vocab) {
  return [vocab](const std::vector<int32_t>& seq, float* out) {
    uint64_t h = 0x9E3779B97F4A7C15ull * (seq.size() + 1);
    for (size_t k = seq.size() >= 2 ? seq.size() - 2 : 0; k < seq.size(); ++k) h = (h ^ (seq[k] + 0x632BE5ABull)) * 0xBF58476D1CE4E5B9ull;
    for (int v = 0; v < vocab; ++v) {
      uint64_t x = h + 0x94D049BB133111EBull * (v + 1);
      x ^= x >> 31; x *= 0xD6E8FEB86659FD93ull; x ^= x >> 29;
      out[v] = static_cast<float>(static_cast<double>(x >> 11) / static_cast<double>(1ull << 53) * 8.0 - 4.0);
    }
  };
}

// Logits that make `script(visible)` the clear favourite (+5), then token 0 second (+1).
inline LogitsFn scripted_logits(int vocab, std::function<int32_t(const std::vector<int32_t>&)> script) {
  return [vocab, script](const std::vector<int32_t>& seq, float* out) {
    for (int v = 0; v < vocab; ++v) out[v] = -static_cast<float>(v) * 0.01f;
    out[0] = 1.0f;
    out[script(seq)] = 5.0f;
  };
}

}  // namespace lmforge::test
