#pragma once
// Fine-tuning (or training from scratch) of GPT-2 / GPT-J with the causal-LM objective: the loop
// that ties data (data.h), the backward pass (backprop.h), AdamW + schedule (optimizer.h),
// checkpoints (train_state.h) and metrics (metrics.h) together, as HF Trainer does.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "lmforge/train/train_config.h"

namespace lmforge {

struct FinetuneResult {
  int64_t steps = 0;               // optimizer steps at the end (including resumed ones)
  double final_train_loss = 0;     // mean loss of the last logging window
  double final_eval_loss = 0;      // NaN when there is no validation set
  double train_seconds = 0;        // wall time of this run
  double tokens_per_second = 0;    // real training tokens per second of this run
  std::filesystem::path output_dir;
};

struct FinetuneHooks {
  // Progress and summary lines for a person (default: stderr).
  std::function<void(const std::string& line, bool transient)> print;
  // Test hook: called after every optimizer step; returning false stops the run there (as a kill
  // would, but cleanly: nothing is saved beyond what the schedule already saved).
  std::function<bool(int64_t step)> after_step;
};

// Runs the whole job described by `cfg` and writes `cfg.save_path`: the final HF folder
// (config.json, model.safetensors, generation_config.json, tokenizer files), metrics.jsonl,
// loss_curve.png / loss_curve.svg, train_config.yml, and checkpoint-<step>/ folders.
// Throws lmforge::Error (one line) for every bad input; a non-finite loss stops the run with an
// error naming the step and the last good checkpoint.
FinetuneResult finetune(const TrainConfig& cfg, const FinetuneHooks& hooks = {});

}  // namespace lmforge
