#pragma once
// The batch a strategy decodes: left-padded rows, HF's attention mask and position ids, and the
// model session behind them. Strategies append tokens and ask for the next logits; this class keeps
// the bookkeeping HF does in prepare_inputs_for_generation:
//   prompt: mask 0 on padding, position = cumsum(mask) - 1 with padding positions set to 1;
//   decoding: mask 1 for every appended token (even pad after a row finished), position = previous + 1.
#include <cstdint>
#include <memory>
#include <vector>

#include "generate/plan.h"
#include "lmforge/generate/language_model.h"

namespace lmforge::gen {

// Prompts left-padded to the longest, each repeated `expand` times in a row (HF's
// repeat_interleave for num_beams / num_return_sequences).
struct PaddedBatch {
  std::vector<std::vector<int32_t>> ids;  // [rows][prompt_length]
  std::vector<int> pad_count;             // leading padding columns per row
  int prompt_length = 0;
};
PaddedBatch left_pad(const std::vector<std::vector<int32_t>>& prompts, int32_t pad, int expand);
// Longest prompt (the padded width).
int padded_length(const std::vector<std::vector<int32_t>>& prompts);
// The token that left-pads `prompts`: the plan's pad; any value when no prompt needs padding; an
// lmforge::Error when padding is needed but there is no pad token.
int32_t prompt_pad_token(const GenerationPlan& plan, const std::vector<std::vector<int32_t>>& prompts);

class BatchDecoder {
 public:
  // Starts a session of batch.ids.size() rows holding up to `capacity` tokens.
  BatchDecoder(const LanguageModel& lm, PaddedBatch batch, int capacity);

  int rows() const { return static_cast<int>(ids_.size()); }
  int vocab() const { return vocab_; }
  const std::vector<int32_t>& ids(int row) const { return ids_[row]; }
  const std::vector<std::vector<int32_t>>& all_ids() const { return ids_; }
  int pad_count(int row) const { return pad_count_[row]; }
  // Next-token logits of `row` after the last prefill/forward.
  const float* logits(int row) const { return logits_.data() + static_cast<size_t>(row) * vocab_; }

  // Runs the padded prompts.
  void prefill();
  // Appends one token per row to the sequences (not yet run through the model).
  void append(const std::vector<int32_t>& tokens);
  // Beam search: row r becomes row src[r] (sequence, cache, mask, positions) plus tokens[r].
  void reorder_and_append(const std::vector<int>& src, const std::vector<int32_t>& tokens);
  // Runs the token appended last in every row; new logits become available.
  void forward_last();

 private:
  std::unique_ptr<LanguageModelSession> session_;
  int vocab_;
  std::vector<std::vector<int32_t>> ids_;
  std::vector<int> pad_count_;
  std::vector<int32_t> next_position_;  // position id the next fed token gets, per row
  std::vector<float> logits_;           // [rows, vocab]
};

}  // namespace lmforge::gen
