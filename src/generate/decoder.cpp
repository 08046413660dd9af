#include "generate/decoder.h"

#include <algorithm>

#include "lmforge/error.h"

namespace lmforge::gen {

int padded_length(const std::vector<std::vector<int32_t>>& prompts) {
  size_t n = 0;
  for (const auto& p : prompts) n = std::max(n, p.size());
  return static_cast<int>(n);
}

int32_t prompt_pad_token(const GenerationPlan& plan, const std::vector<std::vector<int32_t>>& prompts) {
  if (plan.pad) return *plan.pad;
  const size_t width = static_cast<size_t>(padded_length(prompts));
  for (const auto& p : prompts)
    if (p.size() != width) return plan.pad_token();  // throws: prompts of different lengths need a pad
  return 0;
}

PaddedBatch left_pad(const std::vector<std::vector<int32_t>>& prompts, int32_t pad, int expand) {
  PaddedBatch b;
  b.prompt_length = padded_length(prompts);
  for (const auto& p : prompts) {
    const int pads = b.prompt_length - static_cast<int>(p.size());
    std::vector<int32_t> row(pads, pad);
    row.insert(row.end(), p.begin(), p.end());
    for (int e = 0; e < expand; ++e) {
      b.ids.push_back(row);
      b.pad_count.push_back(pads);
    }
  }
  return b;
}

BatchDecoder::BatchDecoder(const LanguageModel& lm, PaddedBatch batch, int capacity)
    : session_(lm.start(static_cast<int>(batch.ids.size()), capacity)),
      vocab_(lm.vocab_size()),
      ids_(std::move(batch.ids)),
      pad_count_(std::move(batch.pad_count)),
      next_position_(ids_.size(), 0),
      logits_(ids_.size() * static_cast<size_t>(vocab_)) {}

void BatchDecoder::prefill() {
  const int rows = this->rows();
  const int n = static_cast<int>(ids_.front().size());
  std::vector<int32_t> tokens, positions;
  std::vector<uint8_t> mask;
  tokens.reserve(static_cast<size_t>(rows) * n);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < n; ++j) {
      const bool real = j >= pad_count_[r];
      tokens.push_back(ids_[r][j]);
      mask.push_back(real ? 1 : 0);
      // cumsum(mask) - 1 on real tokens; HF fills padding positions with 1.
      positions.push_back(real ? j - pad_count_[r] : 1);
    }
    next_position_[r] = n - pad_count_[r];
  }
  session_->forward(n, tokens.data(), positions.data(), mask.data(), logits_.data(), false);
}

void BatchDecoder::append(const std::vector<int32_t>& tokens) {
  for (int r = 0; r < rows(); ++r) ids_[r].push_back(tokens[r]);
}

void BatchDecoder::reorder_and_append(const std::vector<int>& src, const std::vector<int32_t>& tokens) {
  std::vector<std::vector<int32_t>> ids(rows());
  std::vector<int> pads(rows());
  std::vector<int32_t> next(rows());
  for (int r = 0; r < rows(); ++r) {
    ids[r] = ids_[src[r]];
    ids[r].push_back(tokens[r]);
    pads[r] = pad_count_[src[r]];
    next[r] = next_position_[src[r]];
  }
  ids_ = std::move(ids);
  pad_count_ = std::move(pads);
  next_position_ = std::move(next);
  session_->reorder(src);
}

void BatchDecoder::forward_last() {
  const int rows = this->rows();
  std::vector<int32_t> tokens(rows), positions(rows);
  std::vector<uint8_t> mask(rows, 1);
  for (int r = 0; r < rows; ++r) {
    tokens[r] = ids_[r].back();
    positions[r] = next_position_[r]++;
  }
  session_->forward(1, tokens.data(), positions.data(), mask.data(), logits_.data(), false);
}

}  // namespace lmforge::gen
