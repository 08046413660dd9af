#pragma once
// Training checkpoints: <save_path>/checkpoint-<step>/ holding
//   config.json, generation_config.json, model.safetensors   (save_pretrained: an HF-loadable model)
//   optimizer.safetensors   AdamW first/second moments as flat F32 tensors "exp_avg" and
//                           "exp_avg_sq" [num_parameters], laid out like ModelWeights::params
//                           (lmforge's layout: Conv1D matrices stored [out, in]), not HF's
//   trainer_state.json      step, epoch, data position, RNG states (strings), scheduler and
//                           optimizer settings, best metric, log history
//   train_config.yml, vocab.json, merges.txt, ...   when given (CheckpointSaveOptions)
// A model-only checkpoint (HF --save_only_model) has no optimizer.safetensors and its
// trainer_state.json says "save_only_model": true; load_checkpoint refuses to resume from it.
//
// Atomicity: everything is written into checkpoint-<step>.tmp/ (each file itself via temp + rename,
// then fsync'd), and only the complete folder is renamed to checkpoint-<step>/. A folder named
// checkpoint-<N> (digits only) with a trainer_state.json is therefore always complete; a kill at
// any moment leaves at worst a *.tmp folder, which every reader ignores and recover_checkpoints()
// (called by save_checkpoint) deletes. Re-saving an existing step moves the old folder to
// checkpoint-<N>.old first and deletes it after; rotation renames a victim to checkpoint-<N>.trash
// before deleting it, so a half-deleted folder is never mistaken for a checkpoint.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmforge/model/config.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/data.h"

namespace lmforge {

struct SchedulerState {
  std::string name = "linear";  // HF get_scheduler name
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;
  double base_lr = 0.0;
  double last_lr = 0.0;  // the lr used by the last step
};

struct OptimizerState {
  std::string name = "adamw";
  int64_t step = 0;  // AdamW's t (bias corrections use it)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

struct TrainerState {
  int64_t global_step = 0;   // optimizer steps done
  double epoch = 0.0;        // fractional epochs done, as HF reports it
  int64_t max_steps = 0;     // planned total
  int num_train_epochs = 0;
  int64_t tokens_seen = 0;   // real (non-padding) training tokens consumed
  int64_t num_parameters = 0;
  DataPosition data;         // the next batch the loader will serve
  std::map<std::string, std::string> rng_states;  // name -> Rng::state() (or any string)
  SchedulerState scheduler;
  OptimizerState optimizer;
  std::optional<double> best_metric;  // lowest eval_loss so far
  std::string best_model_checkpoint;  // its folder
  std::vector<nlohmann::json> log_history;  // the metrics records so far
  // The logging window still open (steps since the last train-loss record and their summed mean
  // losses), so a resumed run logs the same averages as an uninterrupted one.
  double window_loss_sum = 0.0;
  int64_t window_steps = 0;
  bool save_only_model = false;  // written by a model-only save: no optimizer state to resume from
};

// trainer_state.json text / parsing (strict: wrong or missing keys -> lmforge::Error naming `where`).
std::string trainer_state_json(const TrainerState& s);
TrainerState parse_trainer_state(const std::string& text, const std::string& where);

struct CheckpointSaveOptions {
  int save_total_limit = 0;               // > 0: keep only this many checkpoints (rotate_checkpoints)
  std::filesystem::path tokenizer_dir;    // copy its tokenizer files in, so the folder is self-contained
  std::string train_config_yaml;          // written as train_config.yml when not empty
  // HF --save_only_model: no optimizer.safetensors and no RNG states (the moments may then be
  // empty); trainer_state.json is still written (it marks the folder complete).
  bool save_only_model = false;
  // LoRA: the checkpoint holds this adapter (adapter_config.json + adapter_model.safetensors, PEFT's
  // files) instead of the model, and the AdamW moments are laid out like LoraAdapter::params.
  const LoraAdapter* lora = nullptr;
  // Test hook: called after each file is written inside the .tmp folder and before the final
  // rename ("model", "optimizer", "trainer_state", "extras", "fsync"). Throwing from it simulates a kill.
  std::function<void(const std::string& stage)> on_stage;
};

// Writes <output_dir>/checkpoint-<state.global_step>/ atomically and applies save_total_limit
// (never deleting the new checkpoint or state.best_model_checkpoint). adam_m / adam_v must hold
// w.num_parameters() values. Returns the checkpoint folder.
std::filesystem::path save_checkpoint(const std::filesystem::path& output_dir, const ModelConfig& cfg,
                                      const ModelWeights& w, std::span<const float> adam_m,
                                      std::span<const float> adam_v, const TrainerState& state,
                                      const CheckpointSaveOptions& opt = {});

struct LoadedCheckpoint {
  TrainerState state;
  std::vector<float> adam_m, adam_v;
};

// Loads a checkpoint folder into `w` (already allocated for `cfg`, e.g. by allocate_weights) and
// returns the optimizer moments and trainer state. Throws lmforge::Error naming the folder when a
// file is missing or corrupt, or when the checkpoint's architecture or parameter count differs
// from `cfg` ("... n_embd 32 in the checkpoint, 16 in the model"), and with a one-line
// explanation for a model-only (--save_only_model) checkpoint, which cannot be resumed.
LoadedCheckpoint load_checkpoint(const std::filesystem::path& checkpoint_dir, const ModelConfig& cfg, ModelWeights& w);

// The same for a LoRA checkpoint: its adapter into `a` (already laid out for this run by
// make_lora_adapter); throws lmforge::Error naming the folder when its r, lora_alpha or targeted
// modules differ from a's, or when it is a full fine-tuning checkpoint (and load_checkpoint the
// other way round).
LoadedCheckpoint load_lora_checkpoint(const std::filesystem::path& checkpoint_dir, const ModelConfig& cfg,
                                      LoraAdapter& a);

// Complete checkpoints in output_dir (checkpoint-<digits> folders with trainer_state.json),
// ascending by step. Leftover .tmp/.old/.trash folders are ignored.
std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& output_dir);
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& output_dir);

// Cleans up after a kill: deletes checkpoint-*.tmp and *.trash folders, and puts back a
// checkpoint-<N>.old whose replacement never arrived (deletes it otherwise). Returns how many
// entries it handled.
int recover_checkpoints(const std::filesystem::path& output_dir);

// Deletes the oldest checkpoints until at most `limit` remain (limit <= 0: nothing), never `keep`
// nor the newest. Returns the deleted folders.
std::vector<std::filesystem::path> rotate_checkpoints(const std::filesystem::path& output_dir, int limit,
                                                      const std::filesystem::path& keep = {});

// Writes `text` to `file` atomically (temp file in the same folder, fsync, rename).
void write_file_atomic(const std::filesystem::path& file, const std::string& text);

}  // namespace lmforge
