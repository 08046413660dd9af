#pragma once
// Fine-tuning (or training from scratch) of GPT-2 / GPT-J with the causal-LM objective: the loop
// that ties data (data.h), the backward pass (backprop.h), AdamW + schedule (optimizer.h),
// checkpoints (train_state.h) and metrics (metrics.h) together, as HF Trainer does.
#include <signal.h>

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
  int64_t total_steps = 0;         // the planned number of optimizer steps
  // Stopped early by a stop request (Ctrl-C): `checkpoint` is the resumable checkpoint of the
  // last finished step, and the final model was not written.
  bool interrupted = false;
  std::filesystem::path checkpoint;
};

struct FinetuneHooks {
  // Progress and summary lines for a person (default: stderr).
  std::function<void(const std::string& line, bool transient)> print;
  // Test hook: called after every optimizer step; returning false stops the run there (as a kill
  // would, but cleanly: nothing is saved beyond what the schedule already saved).
  std::function<bool(int64_t step)> after_step;
  // Polled after every optimizer step; true stops the run there with a resumable checkpoint
  // (FinetuneResult::interrupted). Default: stop_signal() != 0, i.e. a SIGINT/SIGTERM caught by
  // StopSignalHandlers. Tests inject their own.
  std::function<bool()> stop_requested;
};

// Ctrl-C safe training (src/train/stop_signal.cpp). While an object lives, the first SIGINT or
// SIGTERM is only recorded (stop_signal() returns it) and finetune() stops after the current
// optimizer step with a resumable checkpoint; a second one has the default action (the process
// ends at once; checkpoint writes are temp folder + rename, so nothing is corrupted). A signal
// ignored at construction (nohup) stays ignored. The destructor restores the previous handlers.
class StopSignalHandlers {
 public:
  StopSignalHandlers();
  ~StopSignalHandlers();
  StopSignalHandlers(const StopSignalHandlers&) = delete;
  StopSignalHandlers& operator=(const StopSignalHandlers&) = delete;

 private:
  struct sigaction previous_[2];  // SIGINT, SIGTERM
};

// The signal StopSignalHandlers caught (SIGINT, SIGTERM); 0 when none since they were installed,
// and again once they are destroyed.
int stop_signal();

// Runs the whole job described by `cfg` and writes `cfg.save_path`: the final HF folder
// (config.json, model.safetensors, generation_config.json, tokenizer files; no optimizer state),
// lmforge_output.json (the training record, io/output_dir.h), metrics.jsonl, loss_curve.png /
// loss_curve.svg, train_config.yml, and checkpoint-<step>/ folders every save_steps (with
// optimizer state unless save_only_model).
//
// The folder: HF's --overwrite_output_dir rule (check_output_dir) before anything else, except
// when resuming. A fresh run into its own earlier output that still holds checkpoints is refused
// unless overwrite_output_dir (continue it with resume_from_checkpoint instead); otherwise the
// earlier run's checkpoint-* folders, metrics.jsonl and loss curves are deleted first, so the
// folder never mixes two runs. When the run fails before writing any checkpoint, what it
// created is removed again (a folder it created, or the files it put into a folder that was
// empty); a folder that held anything before is never deleted.
//
// Throws lmforge::Error (one line) for every bad input; a non-finite loss stops the run with an
// error naming the step and the last good checkpoint.
FinetuneResult finetune(const TrainConfig& cfg, const FinetuneHooks& hooks = {});

}  // namespace lmforge
