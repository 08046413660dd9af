#pragma once
// One training batch, shaped as HF's causal-LM forward receives it.
#include <cstdint>
#include <vector>

namespace lmforge {

constexpr int32_t kIgnoreIndex = -100;  // HF/PyTorch CrossEntropyLoss ignore_index

struct TrainBatch {
  int B = 0, T = 0;
  std::vector<int32_t> input_ids;       // [B, T]
  std::vector<int32_t> labels;          // [B, T]; HF shifts inside the model: token t predicts labels[t+1]
  std::vector<uint8_t> attention_mask;  // [B, T]; 0 = padding (never attended to)
  std::vector<int32_t> position_ids;    // [B, T]; HF training uses 0..T-1 per row
};

}  // namespace lmforge
