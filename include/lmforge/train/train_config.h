#pragma once
// Fine-tuning settings, read from YAML (yaml-cpp) and/or set from CLI flags. Every YAML key is
// spelled like the `lmforge finetune` flag that sets it (`lr:` <-> `--lr`).
//
// Also accepted, for the reference kit's configs/config_base.yml and HF habits:
//   model: {pretrained_model: NAME_OR_DIR, path: DIR, format: default}
//       `path` (when not null/empty) wins over `pretrained_model`; both name a local HF folder.
//       `format` must be `default` (ONNX models cannot be fine-tuned).
//   version: <anything>                      ignored
//   generation: {prompt_file, min_length, max_length_buffer}   kept in TrainConfig::generation
//   learning_rate -> lr, num_train_epochs -> num_epochs, output_dir -> save_path, bf16 -> bfloat16
// and HF run_clm.py's command line (docs/TRAINING.md): model_name_or_path -> model, tokenizer_name
// -> tokenizer, eval_strategy -> evaluation_strategy, and train_file, which is data_path plus
// run_clm: true (run_clm.py's data pipeline, see run_clm.h).
// A null value (`key:` with nothing after it) leaves the default.
//
// Errors (lmforge::Error, one line): "<file>:<line>: unknown key 'lerning_rate' (did you mean
// 'learning_rate'?)", "<file>:<line>: key 'lr' must be a number, got 'fast'", YAML syntax errors
// with their position, and validate()'s range checks naming the key.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/train/data.h"

namespace lmforge {

enum class InitMode { Pretrained, Random };

// HF's IntervalStrategy: when to evaluate / save (evaluation_strategy, save_strategy).
enum class IntervalStrategy { Steps, Epoch, No };

struct GenerationSection {  // the reference kit's `generation:` block (used for post-training samples)
  std::string prompt_file;
  int min_length = 0;
  int max_length_buffer = 20;
};

struct TrainConfig {
  // Where things are.
  std::string model;      // HF folder to start from (init: pretrained), or whose config.json sizes a random model
  std::string data_path;  // the CSV
  std::string save_path;  // output folder: final model, checkpoint-<step>/, metrics
  std::string tokenizer;  // tokenizer folder; empty = the model folder
  std::string resume_from_checkpoint;  // "" = fresh run; a checkpoint folder, or "latest" (newest in save_path)
  // A separate validation set in the training file's format; when set, validation_fraction is not used.
  std::string validation_file;
  // HF's rule for save_path: a non-empty folder that is not an earlier finetune output is refused
  // unless this is set (io/output_dir.h); a resume may always write into its folder.
  bool overwrite_output_dir = false;

  // Data (see data.h).
  std::string text_column = "headline_text";
  std::string prefix = "|HEADLINE| ";
  std::string suffix = ".";
  // Completion-only loss (TRL's name): prompt tokens up to and including this string get no loss
  // (headline mode, no packing). Empty: every token is trained, as run_clm.py does.
  std::string response_template;
  int64_t max_rows = 5000;  // <= 0: all rows
  SampleMode sample = SampleMode::First;
  double validation_fraction = 0.2;
  bool packing = false;
  int block_size = 0;  // packing row length; 0 = min(n_positions, 1024)
  // run_clm.py's data pipeline (set by train_file): rows read by the file's extension (csv, json,
  // jsonl, txt), column `text` or else the first one, no prefix/suffix/eos, every 1000 rows
  // concatenated and cut into block_size blocks (the remainder dropped). text_column, prefix,
  // suffix, max_rows, sample and packing are not used.
  bool run_clm = false;

  // Optimisation (HF Trainer defaults unless the reference kit says otherwise).
  int num_epochs = 3;
  int64_t max_steps = -1;  // > 0: stop after this many optimizer steps (overrides num_epochs)
  double lr = 5e-5;
  int per_device_train_batch_size = 8;
  int gradient_accumulation_steps = 1;
  // DeepSpeed's ZeRO stage under mpirun (docs/SCALE_OUT.md): 0 = every rank holds the whole AdamW
  // state; 1 = each rank holds and updates 1/N of it. Only 0 and 1; one process runs both alike.
  int zero_stage = 0;
  int64_t warmup_steps = 0;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;  // 0: no clipping
  uint64_t seed = 42;
  bool bfloat16 = false;
  bool fp16 = false;  // HF's --fp16: there is no fp16 autocast on the CPU, so it means bfloat16

  // What to run (run_clm.py's flags). Neither given: train (and evaluate as below). Either given:
  // train only with do_train, evaluate at the end with do_eval (or any evaluation_strategy but
  // `no`, as HF sets do_eval then); do_eval alone evaluates `model` on the validation set.
  std::optional<bool> do_train, do_eval;

  // Bookkeeping. Steps are optimizer steps.
  int64_t logging_steps = 10;  // 0: never (only at the end)
  // Unset: `steps` when eval_steps > 0, else `epoch`. `steps` with eval_steps 0 uses logging_steps (HF).
  std::optional<IntervalStrategy> evaluation_strategy;
  int64_t eval_steps = 0;      // 0: at the end of every epoch
  IntervalStrategy save_strategy = IntervalStrategy::Steps;
  int64_t save_steps = 500;    // 0: no intermediate checkpoints (the final model is always written)
  int save_total_limit = 0;    // 0: keep every checkpoint
  bool save_only_model = false;  // HF: checkpoints hold the model only (no optimizer state: not resumable)

  // Model construction.
  InitMode init = InitMode::Pretrained;
  std::optional<int> n_layer, n_embd, n_head, n_positions;  // init: random overrides

  // LoRA (HF peft's LoraConfig names and defaults). Setting lora_r, lora_alpha, lora_dropout or
  // lora_target (YAML key or flag) also sets lora = true, unless the same YAML file (or the
  // command line) sets `lora` itself: an explicit `lora` always wins, in any order.
  bool lora = false;  // LoRA adapters on a frozen base instead of a full fine-tune
  int lora_r = 8;     // adapter rank
  double lora_alpha = 8.0;    // scaling = lora_alpha / lora_r
  double lora_dropout = 0.0;  // [0, 1)
  std::vector<std::string> lora_target;  // module names; empty = the architecture's peft default
  // How the frozen base is held with LoRA: "float32" | "bfloat16" | "int8" (full fine-tunes: float32).
  std::string base_dtype = "float32";
  bool gradient_checkpointing = false;  // HF's name: recompute activations in backward

  // Accepted for run_clm.py command lines, without effect here (docs/TRAINING.md).
  bool overwrite_cache = false;    // nothing is cached
  bool use_fast_tokenizer = true;  // one byte-level BPE tokenizer: the ids of both HF tokenizers
  std::string deepspeed;           // a DeepSpeed config file: ignored, with a notice

  GenerationSection generation;
  std::string pretrained_model;  // model.pretrained_model as written (informational)
};

// What a config runs (see do_train / do_eval above). validate() refuses a config that does neither.
bool will_train(const TrainConfig& cfg);
bool will_evaluate(const TrainConfig& cfg);  // the evaluation at the end (after training, or alone)
// HF's do_eval as the config states it: do_eval, or an evaluation_strategy other than `no` given.
// Then the run writes eval_results.json (lmforge's default evaluation does not).
bool do_eval_requested(const TrainConfig& cfg);
// evaluation_strategy with its default resolved.
IntervalStrategy eval_strategy(const TrainConfig& cfg);
// Whether to evaluate / save after optimizer step `step`; `epoch_end`: the step ends an epoch.
bool eval_due(const TrainConfig& cfg, int64_t step, bool epoch_end);
bool save_due(const TrainConfig& cfg, int64_t step, bool epoch_end);
// The file the training rows come from (data_path; its flag is --train_file in run_clm mode).
const char* data_flag(const TrainConfig& cfg);

// Every top-level key set_config_value/YAML accept (canonical names first, then aliases).
const std::vector<std::string>& train_config_keys();

// Reads a YAML file onto `cfg` (keys it does not name keep their values). Throws lmforge::Error
// naming the file (and line) for a missing file, bad YAML, an unknown key or a wrong type.
void load_train_config(const std::filesystem::path& file, TrainConfig& cfg);
TrainConfig load_train_config(const std::filesystem::path& file);
// The same on YAML text; `where` names it in messages.
void parse_train_config(const std::string& yaml_text, const std::string& where, TrainConfig& cfg);

// Sets one key from its textual value, parsed as YAML would parse it (so "5e-5", "true", "8").
// `where` names the source in messages (e.g. "--lr"). Throws like the YAML readers.
void set_config_value(TrainConfig& cfg, const std::string& key, const std::string& value, const std::string& where);

// Range and consistency checks; `require_paths`: data_path and save_path must be set, and model
// unless init is random. Throws lmforge::Error naming the key.
void validate(const TrainConfig& cfg, bool require_paths = true);

// The canonical YAML for `cfg` (every key, canonical names); parse_train_config reads it back
// to an equal config.
std::string to_yaml(const TrainConfig& cfg);

// The candidate with the smallest (case-insensitive) edit distance to `word`; "" when empty.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);
size_t edit_distance(std::string_view a, std::string_view b);

// Settings for the data pipeline and loader from the config and the model's n_positions.
DataOptions data_options(const TrainConfig& cfg, int n_positions);
// Throws lmforge::Error when block_size exceeds n_positions.
LoaderOptions loader_options(const TrainConfig& cfg, int n_positions, int32_t pad_id);

const char* to_string(SampleMode m);
const char* to_string(InitMode m);
const char* to_string(IntervalStrategy s);

}  // namespace lmforge
