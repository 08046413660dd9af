// lmforge finetune: causal-LM fine-tuning (or training from scratch) on a CSV column.
// Every TrainConfig key is a flag of the same name; --model_config reads them from YAML first and
// flags given on the command line win.
#include <cmath>
#include <fstream>
#include <iostream>
#include <set>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/distributed.h"
#include "lmforge/dist/same_model.h"
#include "lmforge/error.h"
#include "lmforge/train/trainer.h"

namespace lmforge::cli {
namespace {

struct Args {
  std::string model_config;
  std::vector<std::pair<std::string, std::string>> overrides;  // in command-line order
  int threads = 0;
} args;

const std::set<std::string> kBoolKeys = {"bfloat16", "bf16", "packing", "overwrite_output_dir", "save_only_model",
                                         "lora", "gradient_checkpointing", "run_clm", "do_train", "do_eval",
                                         "fp16", "overwrite_cache", "use_fast_tokenizer"};

std::string help_for(const std::string& key) {
  static const std::map<std::string, std::string> help = {
      {"model", "HF folder to fine-tune (or whose config.json shapes --init random)"},
      {"data_path", "CSV file with the training text"},
      {"save_path", "Output folder: final HF model, checkpoint-<step>/, metrics.jsonl, loss_curve.png"},
      {"text_column", "CSV column with the text (default headline_text)"},
      {"prefix", "Text put before every row (default '|HEADLINE| ')"},
      {"suffix", "Text put after every row (default '.')"},
      {"response_template",
       "Completion-only loss (TRL's name): no loss on the tokens up to and including this string's first "
       "occurrence in each row (default: none, every token trained)"},
      {"max_rows", "Rows to use (default 5000; <= 0: all)"},
      {"sample", "first | random: which max_rows rows"},
      {"validation_fraction", "Held-out share for validation (default 0.2)"},
      {"num_epochs", "Epochs (default 3)"},
      {"max_steps", "Stop after this many optimizer steps (overrides num_epochs)"},
      {"lr", "Peak learning rate (default 5e-5)"},
      {"per_device_train_batch_size", "Rows per micro-batch (default 8)"},
      {"gradient_accumulation_steps", "Micro-batches per optimizer step (default 1)"},
      {"zero_stage",
       "0 | 1: under mpirun, 1 shards the AdamW state across the ranks (DeepSpeed's ZeRO stage 1: each holds and "
       "updates 1/N of it; same results); 0 = every rank holds all of it (default 0; one process: no difference)"},
      {"warmup_steps", "Linear warm-up steps, then linear decay to 0"},
      {"weight_decay", "AdamW decoupled weight decay (default 0; biases and LayerNorm never decay)"},
      {"max_grad_norm", "Gradient clipping norm (default 1.0; 0 = off)"},
      {"seed", "Seed for sampling, split, shuffling and random init"},
      {"bfloat16", "bf16 matrix products with fp32 master weights (the reference workflow's flag; HF --bf16)"},
      {"save_steps", "Checkpoint every N steps (default 500; 0 = none; the final model is always written)"},
      {"save_only_model", "Checkpoints hold the model only, no optimizer state (smaller, but cannot be resumed)"},
      {"overwrite_output_dir",
       "Write into a --save_path that is not empty and not an earlier finetune output, or start over in one "
       "that holds checkpoints (they are deleted)"},
      {"eval_steps", "Validate every N steps (default 0 = every epoch; with --evaluation_strategy steps: --logging_steps)"},
      {"save_total_limit", "Keep at most N checkpoints (0 = all)"},
      {"resume_from_checkpoint", "checkpoint-<step> folder, or 'latest' in --save_path (Ctrl-C saves one)"},
      {"packing", "Concatenate rows into blocks of block_size instead of padding"},
      {"block_size", "Row length with --packing"},
      {"init", "pretrained | random (train from scratch)"},
      {"n_layer", "Layers for --init random"},
      {"n_embd", "Width for --init random"},
      {"n_head", "Heads for --init random"},
      {"n_positions", "Context for --init random"},
      {"tokenizer", "Folder with vocab.json + merges.txt (default: the model folder)"},
      {"logging_steps", "Log train loss every N steps (default 10)"},
      {"lora", "LoRA fine-tuning (HF peft) on a frozen base instead of a full fine-tune (default false)"},
      {"lora_r", "LoRA rank (default 8; setting it implies --lora)"},
      {"lora_alpha", "LoRA scaling alpha, scale = alpha / r (default 8, peft's; implies --lora)"},
      {"lora_dropout", "Dropout on the LoRA input, in [0, 1) (default 0; implies --lora)"},
      {"lora_target",
       "Comma-separated module names to adapt (default: the architecture's peft default; implies --lora)"},
      {"base_dtype", "float32 | bfloat16 | int8: how the frozen base is held with --lora (default float32)"},
      {"gradient_checkpointing", "Recompute activations in backward to save memory (default false)"},
      // HF run_clm.py's command line (docs/TRAINING.md).
      {"train_file", "run_clm.py's training file (.csv, .json/.jsonl, .txt): --data_path read by run_clm's pipeline "
                     "(column text or the first, no prefix/suffix/eos, rows grouped into --block_size blocks)"},
      {"run_clm", "Read --data_path with run_clm.py's pipeline (what --train_file sets)"},
      {"validation_file", "Separate validation set in the training file's format (then --validation_fraction is not used)"},
      {"do_train", "Train (run_clm.py: without it nothing is trained; give neither --do_train nor --do_eval to train)"},
      {"do_eval", "Evaluate at the end (eval_results.json); alone: evaluate --model on the validation set"},
      {"evaluation_strategy", "steps | epoch | no: when to validate (default: steps with --eval_steps, else epoch)"},
      {"eval_strategy", "Same as --evaluation_strategy (HF's newer name)"},
      {"save_strategy", "steps | epoch | no: when to write checkpoint-<step>/ (default steps, with --save_steps)"},
      {"fp16", "HF's fp16 mixed precision: on the CPU this is bf16 autocast (--bfloat16), with a notice"},
      {"overwrite_cache", "Accepted for run_clm.py command lines; no effect (nothing is cached)"},
      {"use_fast_tokenizer", "Accepted; no effect (one byte-level BPE tokenizer, the ids of HF's fast and slow ones)"},
      {"deepspeed", "A DeepSpeed config file: accepted and ignored, with a notice (no DeepSpeed; data parallel: mpirun)"},
      {"model_name_or_path", "Same as --model (also a model in the local HF cache)"},
      {"tokenizer_name", "Same as --tokenizer (also a model in the local HF cache)"},
  };
  auto it = help.find(key);
  return it == help.end() ? "Same as the YAML key '" + key + "'" : it->second;
}

void setup(CLI::App& app) {
  app.add_option("--model_config", args.model_config, "YAML file with any of these keys (flags win)");
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  add_key_flags(
      app, train_config_keys(), [](const std::string& key) { return kBoolKeys.count(key) > 0; }, help_for,
      args.overrides);
}

// `s` as one shell word.
std::string shell_quote(const std::string& s) {
  const bool plain = !s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                       "0123456789_-+=./:,@%") == std::string::npos;
  if (plain) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// How this program was started (argv[0]), so the printed command runs as typed; "lmforge" if unknown.
std::string program_name() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string first;
  std::getline(in, first, '\0');
  return first.empty() ? "lmforge" : first;
}

// This run's command line with --resume_from_checkpoint latest in place of any earlier choice.
// --overwrite_output_dir is left out: a resume may always write into its folder.
std::string resume_command() {
  std::string cmd = shell_quote(program_name()) + " finetune";
  if (!args.model_config.empty()) cmd += " --model_config " + shell_quote(args.model_config);
  if (args.threads != 0) cmd += " --threads " + std::to_string(args.threads);
  for (const auto& [key, value] : args.overrides)
    if (key != "resume_from_checkpoint" && key != "overwrite_output_dir")
      cmd += " --" + key + " " + shell_quote(value);
  return cmd + " --resume_from_checkpoint latest";
}

int run() {
  apply_threads(args.threads);
  TrainConfig cfg;
  if (!args.model_config.empty()) load_train_config(args.model_config, cfg);
  for (const auto& [key, value] : args.overrides) set_config_value(cfg, key, value, "--" + key);
  // An explicit --lora wins over --lora_r/--lora_alpha/--lora_dropout/--lora_target, which imply it.
  for (auto it = args.overrides.rbegin(); it != args.overrides.rend(); ++it)
    if (it->first == "lora") {
      set_config_value(cfg, it->first, it->second, "--lora");
      break;
    }
  // Under mpirun: data-parallel training (docs/SCALE_OUT.md); every rank's --model checked first.
  const dist::World& w = sharded_world(cfg.model);
  dist::check_same_file(w, "--data_path", cfg.data_path);
  if (!cfg.validation_file.empty()) dist::check_same_file(w, "--validation_file", cfg.validation_file);
  if (cfg.fp16 && w.is_root())
    std::cerr << "lmforge: --fp16: training runs on the CPU, which has no fp16 autocast; using bf16 autocast "
                 "(--bfloat16) instead\n";
  if (!cfg.deepspeed.empty() && w.is_root())
    std::cerr << "lmforge: --deepspeed " << cfg.deepspeed
              << ": ignored (lmforge trains on the CPU without DeepSpeed; for several processes or machines run it "
                 "under mpirun: docs/SCALE_OUT.md)\n";
  const StopSignalHandlers ctrl_c;  // Ctrl-C: stop after the current step with a checkpoint
  const FinetuneResult r = finetune(cfg);
  if (!w.is_root()) return r.interrupted ? 1 : 0;  // rank 0 reports for the job
  if (!will_train(cfg)) {  // --do_eval alone
    std::cout << "eval_loss " << r.final_eval_loss << ", perplexity " << std::exp(r.final_eval_loss) << "\n";
    return 0;
  }
  if (r.interrupted) {
    std::cout.flush();
    std::cerr << "interrupted after step " << r.steps << " of " << r.total_steps
              << "; resumable checkpoint: " << r.checkpoint.string() << "\n"
              << "to resume: " << resume_command() << "\n";
    return 1;  // the job did not finish: scripts must not take the folder for a trained model
  }
  std::cout << "final train loss " << r.final_train_loss;
  if (!std::isnan(r.final_eval_loss))
    std::cout << ", validation loss " << r.final_eval_loss << ", perplexity " << std::exp(r.final_eval_loss);
  std::cout << ", model in " << r.output_dir.string() << "\n";
  return 0;
}

Command command{"finetune", "Fine-tune GPT-2/GPT-J on a CSV column (causal LM), or train from scratch", setup, run};

}  // namespace
}  // namespace lmforge::cli
