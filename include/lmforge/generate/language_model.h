#pragma once
// What generation needs from a causal language model, and nothing more. The real Model
// (model/model.h) implements it; tests can implement it with a table of logits.
#include <cstdint>
#include <memory>
#include <vector>

namespace lmforge {

// The decoding state of `rows` sequences: their KV caches and attention masks.
class LanguageModelSession {
 public:
  virtual ~LanguageModelSession() = default;

  int rows() const { return rows_; }
  // Number of positions already in each row's cache (same for all rows: padding is masked, not absent).
  int length() const { return length_; }

  // Appends `n` tokens to every row and runs them through the model.
  //   tokens    [rows, n]  token ids
  //   positions [rows, n]  position ids (HF: cumsum(attention_mask) - 1, padding -> 1)
  //   mask      [rows, n]  1 = real token, 0 = padding; a key with 0 is never attended to, now or later
  //   logits    [rows, n, vocab] when all_positions, else [rows, vocab] for the last new token;
  //             at a padding position (mask 0) the values mean nothing (Model runs no padding
  //             through its layers and writes 0 there)
  // Throws lmforge::Error when length() + n exceeds the capacity the session was started with.
  virtual void forward(int n, const int32_t* tokens, const int32_t* positions, const uint8_t* mask,
                       float* logits, bool all_positions = false) = 0;

  // Beam search: row r continues from what row src[r] was (cache and mask). src.size() == rows().
  virtual void reorder(const std::vector<int>& src) = 0;

  // A new session of src.size() rows whose row r starts as this session's row src[r] (its cache,
  // mask and length()), with room for `capacity` positions (>= length()). Shared-prefix scoring
  // runs a context once and continues it in several rows. nullptr where a model cannot fork.
  virtual std::unique_ptr<LanguageModelSession> fork(const std::vector<int>& /*src*/, int /*capacity*/) const {
    return nullptr;
  }

 protected:
  LanguageModelSession(int rows) : rows_(rows) {}
  int rows_ = 0;
  int length_ = 0;
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual int vocab_size() const = 0;     // logits width
  virtual int max_positions() const = 0;  // n_positions: no sequence may be longer
  // A fresh session for `rows` sequences of at most `capacity` tokens (capacity <= max_positions()).
  virtual std::unique_ptr<LanguageModelSession> start(int rows, int capacity) const = 0;
};

}  // namespace lmforge
