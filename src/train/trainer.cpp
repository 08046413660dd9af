#include "lmforge/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>

#include "lmforge/dist/world.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/output_dir.h"
#include "lmforge/model/save.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "lmforge/train/backprop.h"
#include "lmforge/train/data.h"
#include "lmforge/train/metrics.h"
#include "lmforge/train/optimizer.h"
#include "lmforge/train/run_clm.h"
#include "lmforge/train/train_state.h"
#include "train/data_parallel.h"
#include "train/train_target.h"

namespace lmforge {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The model to train: pretrained weights from cfg.model, or a fresh one (init: random) shaped by
// cfg.model's config.json when given, else GPT-2 small, with the n_* overrides.
ModelConfig model_config_for(const TrainConfig& cfg, const Tokenizer& tok) {
  ModelConfig c;
  if (!cfg.model.empty()) {
    c = load_model_config(fs::path(cfg.model) / "config.json");
  } else {
    c.bos_token_id = tok.bos_id();
    c.eos_token_id = tok.eos_id();
  }
  if (cfg.init == InitMode::Random) {
    if (cfg.n_layer) c.n_layer = *cfg.n_layer;
    if (cfg.n_embd) c.n_embd = *cfg.n_embd;
    if (cfg.n_head) c.n_head = *cfg.n_head;
    if (cfg.n_positions) c.n_positions = *cfg.n_positions;
    if (cfg.model.empty()) c.vocab_size = tok.vocab_size();
    c = parse_model_config(model_config_json(c), "--init random shape (--n_layer/--n_embd/--n_head/--n_positions)");
  }
  if (tok.vocab_size() > c.vocab_size)
    throw Error("tokenizer has " + std::to_string(tok.vocab_size()) + " tokens but the model's vocab_size is " +
                std::to_string(c.vocab_size));
  return c;
}

fs::path tokenizer_dir_of(const TrainConfig& cfg) {
  if (!cfg.tokenizer.empty()) return cfg.tokenizer;
  if (cfg.model.empty()) throw Error("--tokenizer: needed with --init random when no --model folder is given");
  return cfg.model;
}

int64_t real_tokens(const TrainBatch& b) {
  int64_t n = 0;
  for (auto m : b.attention_mask) n += m;
  return b.attention_mask.empty() ? static_cast<int64_t>(b.B) * b.T : n;
}

class Printer {
 public:
  // `quiet`: another rank than 0 of an mpirun job, whose lines would repeat rank 0's.
  Printer(const FinetuneHooks& h, bool quiet) : hooks_(h), tty_(isatty(STDERR_FILENO)), quiet_(quiet) {}
  void line(const std::string& s) {
    if (!quiet_) emit(s, false);
  }
  // A live line on a terminal; in a log file only the lines of logging steps.
  void progress(const std::string& s, bool logging_step) {
    if (!quiet_ && (tty_ || hooks_.print || logging_step)) emit(s, true);
  }
  void end_progress() {
    if (open_) std::cerr << "\n";
    open_ = false;
  }

 private:
  void emit(const std::string& s, bool transient) {
    if (hooks_.print) return hooks_.print(s, transient);
    if (transient && tty_) {
      std::cerr << "\r" << s << "\x1b[K" << std::flush;
      open_ = true;
      return;
    }
    end_progress();
    std::cerr << s << "\n" << std::flush;
  }
  const FinetuneHooks& hooks_;
  bool tty_, quiet_;
  bool open_ = false;
};

// ---- the output folder -----------------------------------------------------------------------

// What this run changed about --save_path, so a failure can undo it (and only it).
struct SaveFolder {
  fs::path created_root;   // the topmost folder this run created; empty when save_path existed
  bool was_empty = false;  // save_path existed and was empty
};

// The topmost missing folder on the way to `p` (p itself when only it is missing); empty when p exists.
fs::path first_missing(const fs::path& p) {
  std::error_code ec;
  fs::path q = fs::absolute(p, ec).lexically_normal();
  if (!q.has_filename()) q = q.parent_path();  // "out/" -> "out"
  fs::path missing;
  while (!q.empty() && !fs::exists(q, ec) && q != q.parent_path()) {
    missing = q;
    q = q.parent_path();
  }
  return missing;
}

// A fresh run must not mix with an earlier one in the same folder: its checkpoints (complete or
// left over by a kill), metrics and curves go. The earlier final model is overwritten at the end.
void remove_earlier_run(const fs::path& save) {
  std::error_code ec;
  std::vector<fs::path> old;
  for (const auto& e : fs::directory_iterator(save, ec)) {
    const std::string name = e.path().filename().string();
    if ((name.starts_with("checkpoint-") && e.is_directory(ec)) || name == "metrics.jsonl" ||
        name == "loss_curve.png" || name == "loss_curve.svg" || name == "eval_results.json")
      old.push_back(e.path());
  }
  for (const auto& p : old) {
    fs::remove_all(p, ec);
    if (ec) throw Error("--save_path: cannot delete '" + p.string() + "' of the earlier run: " + ec.message());
  }
}

// HF's --overwrite_output_dir rule, then the folder itself. A resume may always write into its folder.
SaveFolder prepare_save_folder(const TrainConfig& cfg) {
  const fs::path save = cfg.save_path;
  const bool resuming = !cfg.resume_from_checkpoint.empty();
  if (!resuming) {
    check_output_dir(save, "finetune", cfg.overwrite_output_dir, "--save_path");
    // Its own earlier output with checkpoints: the user most likely wants to continue it, which
    // a fresh run would silently throw away. HF's scripts need the flag to start over, too.
    if (auto latest = latest_checkpoint(save); latest && !cfg.overwrite_output_dir)
      throw Error("--save_path: '" + save.string() + "' holds checkpoints of an earlier run (latest: " +
                  latest->filename().string() + "); pass --resume_from_checkpoint latest to continue it, or "
                  "--overwrite_output_dir to start over (its checkpoints and metrics are deleted)");
  }
  SaveFolder f;
  std::error_code ec;
  f.created_root = first_missing(save);
  f.was_empty = f.created_root.empty() && fs::is_directory(save, ec) && fs::is_empty(save, ec);
  fs::create_directories(save, ec);
  if (ec || !fs::is_directory(save)) throw Error("--save_path: cannot create folder '" + save.string() + "'");
  return f;
}

// After a failure that saved no checkpoint: a folder this run created goes, a folder that was
// empty is emptied again; one that held anything before is left alone.
void undo_save_folder(const SaveFolder& f, const fs::path& save) {
  std::error_code ec;
  if (!list_checkpoints(save).empty()) return;  // progress to keep (the error names it)
  if (!f.created_root.empty()) {
    fs::remove_all(f.created_root, ec);
  } else if (f.was_empty) {
    std::vector<fs::path> entries;
    for (const auto& e : fs::directory_iterator(save, ec)) entries.push_back(e.path());
    for (const auto& p : entries) fs::remove_all(p, ec);
  }
}

// The "training" block of lmforge_output.json (io/output_dir.h): what synth, eval, quantize and
// tune need to rebuild the exact text format and held-out split. block_size is the packing row
// length actually used. run_clm mode: no prefix/suffix, and no held-out split to rebuild from a CSV
// column (the keys that describe one are left out); a --validation_file replaces the split.
nlohmann::json training_record(const TrainConfig& c, int block_size) {
  std::error_code ec;
  const fs::path data = fs::absolute(c.data_path, ec).lexically_normal();
  const std::string validation = c.validation_file.empty() ? "" : fs::absolute(c.validation_file, ec).lexically_normal().string();
  if (c.run_clm)
    return {{"prefix", ""},
            {"suffix", ""},
            {"run_clm", true},
            {"train_file", data.string()},
            {"validation_file", validation},
            {"block_size", block_size},
            {"seed", c.seed}};
  nlohmann::json j;
  if (!validation.empty())
    j = {{"prefix", c.prefix},
          {"suffix", c.suffix},
          {"text_column", c.text_column},
          {"data_path", data.string()},
          {"validation_file", validation},
          {"packing", c.packing},
          {"block_size", block_size}};
  else
    j = {{"prefix", c.prefix},
          {"suffix", c.suffix},
          {"text_column", c.text_column},
          {"data_path", ec ? c.data_path : data.string()},
          {"max_rows", c.max_rows},
          {"sample", to_string(c.sample)},
          {"validation_fraction", c.validation_fraction},
          {"seed", c.seed},
          {"packing", c.packing},
          {"block_size", block_size}};
  // Recorded for the reader; eval perplexity and the others still score every token of a row.
  if (!c.response_template.empty()) j["response_template"] = c.response_template;
  return j;
}

std::string signal_name(int sig) {
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  return sig ? "signal " + std::to_string(sig) : "a stop request";
}

FinetuneResult run_training(const TrainConfig& cfg, const FinetuneHooks& hooks, const dist::World& w);

}  // namespace

FinetuneResult finetune(const TrainConfig& cfg, const FinetuneHooks& hooks) {
  validate(cfg);
  // A mistyped data path fails before the model loads (minutes for GPT-J) and before the save
  // folder exists; the CSV reader gives the same message for the same cause.
  std::error_code ec;
  if (!cfg.validation_file.empty() && !fs::exists(cfg.validation_file, ec))
    throw Error(cfg.validation_file + ": no such file (--validation_file)");
  const dist::World& w = dist::world();  // this process alone unless started by mpirun
  if (!will_train(cfg)) {  // run_clm.py's --do_eval alone
    if (w.distributed())
      throw Error("--do_eval without training does not split across mpirun ranks: run it without mpirun, or use "
                  "lmforge eval perplexity, which does");
    return evaluate_only(cfg, hooks);
  }
  if (!fs::exists(cfg.data_path, ec)) throw Error(cfg.data_path + ": no such file");
  // Rank 0 alone owns the folder; the others only read checkpoints from it when resuming.
  const SaveFolder folder = w.is_root() ? prepare_save_folder(cfg) : SaveFolder{};
  try {
    return run_training(cfg, hooks, w);
  } catch (...) {
    undo_save_folder(folder, cfg.save_path);
    throw;
  }
}

namespace {

FinetuneResult run_training(const TrainConfig& cfg, const FinetuneHooks& hooks, const dist::World& w) {
  Printer out(hooks, !w.is_root());
  const fs::path save = cfg.save_path;
  const std::function<bool()> stop_requested =
      hooks.stop_requested ? hooks.stop_requested : std::function<bool()>([] { return stop_signal() != 0; });
  // Model and tokenizer.
  const fs::path tok_dir = tokenizer_dir_of(cfg);
  const Tokenizer tok = Tokenizer::from_dir(tok_dir);
  const ModelConfig mc = model_config_for(cfg, tok);
  TrainTarget target(cfg, mc);  // the model, or LoRA adapters over a frozen base
  out.line("model: " + std::string(mc.arch == Arch::GPTJ ? "GPT-J" : "GPT-2") + ", " + target.describe() + " (" +
           (cfg.init == InitMode::Random ? "random init" : "from " + cfg.model) + ")");

  // Data.
  const TrainingData td = load_training_data(cfg, mc.n_positions, tok);  // run_clm.h: every data mode
  const Dataset& ds = td.data;
  for (const auto& line : td.summary) out.line(line);
  if (ds.train.empty()) throw Error(cfg.data_path + ": no training rows left after filtering");
  const LoaderOptions lo = loader_options(cfg, mc.n_positions, ds.eos_id);
  DataLoader train(ds.train, lo);
  LoaderOptions vo = lo;
  vo.shuffle = false;
  vo.drop_last = false;
  std::unique_ptr<DataLoader> val;
  if (!ds.validation.empty()) val = std::make_unique<DataLoader>(ds.validation, vo);

  // Micro-batches per optimizer step over all ranks (data_parallel.h): a step of N ranks is the
  // step of one process with N times the accumulation.
  const int accum = cfg.gradient_accumulation_steps * w.size();
  if (w.distributed())
    out.line("data parallel: " + std::to_string(w.size()) + " ranks; global batch " +
             std::to_string(cfg.per_device_train_batch_size) + " x " + std::to_string(cfg.gradient_accumulation_steps) +
             " x " + std::to_string(w.size()) + " = " + std::to_string(cfg.per_device_train_batch_size * accum) +
             " rows per optimizer step");
  const int64_t steps_per_epoch = std::max<int64_t>(1, train.batches_per_epoch() / accum);
  const int64_t total_steps = cfg.max_steps > 0 ? cfg.max_steps : steps_per_epoch * cfg.num_epochs;

  // ZeRO stage 1 (docs/SCALE_OUT.md): this rank's AdamW holds and updates one slice of the flat
  // parameters; the gradients are reduce-scattered to the slices and the updated slices all-gathered.
  // In a world of one it is stage 0.
  const bool zero1 = cfg.zero_stage == 1 && w.distributed();
  const std::vector<size_t> slices = zero1 ? zero_slices(target.size(), w.size()) : std::vector<size_t>{0, target.size()};
  const ParamRange mine{slices[zero1 ? w.rank() : 0], slices[zero1 ? w.rank() + 1 : 1]};
  AdamW opt(target.size(), {cfg.lr, 0.9, 0.999, 1e-8, cfg.weight_decay}, mine);
  opt.set_decay_ranges(target.decay_ranges());
  if (zero1) {
    const double mb = 1.0 / (1 << 20);
    out.line("ZeRO stage 1: AdamW state of " + std::to_string(opt.size()) + " of the " + std::to_string(target.size()) +
             " parameters per rank (" + fmt("%.1f", 2.0 * sizeof(float) * opt.size() * mb) + " MiB on rank 0, " +
             fmt("%.1f", 2.0 * sizeof(float) * target.size() * mb) + " MiB without sharding)");
  }
  const LinearSchedule sched{cfg.lr, cfg.warmup_steps, total_steps};

  TrainerState st;
  st.max_steps = total_steps;
  st.num_train_epochs = cfg.num_epochs;
  st.num_parameters = static_cast<int64_t>(target.size());
  if (!cfg.resume_from_checkpoint.empty()) {
    fs::path ckpt = cfg.resume_from_checkpoint;
    if (cfg.resume_from_checkpoint == "latest") {
      auto latest = latest_checkpoint(save);
      if (!latest) throw Error("--resume_from_checkpoint latest: no checkpoint in '" + save.string() + "'");
      ckpt = *latest;
    }
    LoadedCheckpoint lc = target.load_checkpoint(ckpt);
    st = lc.state;
    if (zero1) {  // a checkpoint holds the whole state: keep this rank's slice
      opt.m.assign(lc.adam_m.begin() + mine.begin, lc.adam_m.begin() + mine.end);
      opt.v.assign(lc.adam_v.begin() + mine.begin, lc.adam_v.begin() + mine.end);
    } else {
      opt.m = std::move(lc.adam_m);
      opt.v = std::move(lc.adam_v);
    }
    opt.steps = st.optimizer.step;
    train.set_position(st.data);
    check_resume_micro_batches(st.data.epoch * train.batches_per_epoch() + st.data.batch, st.global_step, accum,
                               cfg.gradient_accumulation_steps, w.size());
    out.line("resumed from " + ckpt.string() + " at step " + std::to_string(st.global_step));
  }
  // Model and data are fine: only now does an earlier run in this folder give way (a run that
  // fails on a bad CSV leaves it as it was).
  const std::string config_yaml = to_yaml(cfg);
  std::optional<MetricsLog> metrics;  // rank 0's alone
  if (w.is_root()) {
    if (cfg.resume_from_checkpoint.empty()) remove_earlier_run(save);
    try {  // from here on the folder is finetune's own output (check_output_dir)
      write_output_record(save, "finetune", {{"training", training_record(cfg, lo.block_size)}});
    } catch (const Error& e) {
      throw Error("--save_path: " + std::string(e.what()));
    }
    metrics.emplace(save / "metrics.jsonl", st.global_step);
    write_file_atomic(save / "train_config.yml", config_yaml);
  }

  TrainWorkspace ws(target.workspace_options());  // --bfloat16 (--fp16): bf16 matmuls; --gradient_checkpointing
  std::vector<float> grads(target.size(), 0.0f);
  const auto t_start = Clock::now();
  const int64_t start_step = st.global_step;
  int64_t run_tokens = 0;
  double last_loss = NAN, last_eval = NAN;
  fs::path last_checkpoint = st.best_model_checkpoint;
  int64_t resumable_step = -1;  // the step of this run's last checkpoint with optimizer state
  auto t_window = Clock::now();
  int64_t window_tokens = 0;

  auto checkpoint = [&](bool model_only) {
    st.data = train.position();
    st.optimizer = {"adamw", opt.steps, 0.9, 0.999, 1e-8, cfg.weight_decay};
    st.scheduler = {"linear", cfg.warmup_steps, total_steps, cfg.lr, sched.lr(std::max<int64_t>(0, st.global_step - 1))};
    CheckpointSaveOptions so;
    so.save_total_limit = cfg.save_total_limit;
    so.tokenizer_dir = tok_dir;
    so.train_config_yaml = config_yaml;
    so.save_only_model = model_only;
    target.prepare_save(so);
    // The other ranks hold the same weights and state; they only note where rank 0 saved them.
    if (zero1 && !model_only) {  // rank 0 gathers the whole state and writes what stage 0 writes
      std::vector<float> m(w.is_root() ? target.size() : 0), v(m.size());
      const std::string what = "optimizer state of step " + std::to_string(st.global_step);
      w.gather_to_root(opt.m.data(), m.data(), slices, what);
      w.gather_to_root(opt.v.data(), v.data(), slices, what);
      last_checkpoint = w.is_root() ? save_checkpoint(save, mc, target.weights(), m, v, st, so)
                                    : save / ("checkpoint-" + std::to_string(st.global_step));
    } else {
      last_checkpoint = w.is_root() ? save_checkpoint(save, mc, target.weights(), opt.m, opt.v, st, so)
                                    : save / ("checkpoint-" + std::to_string(st.global_step));
    }
    if (!model_only) resumable_step = st.global_step;
    out.line("saved " + last_checkpoint.string() + (model_only ? " (model only)" : ""));
  };
  auto evaluate = [&]() {
    if (!val) return;
    last_eval = sharded_validation_loss(*val, [&](const TrainBatch& b) { return target.evaluate_loss(b, ws); }, w);
    if (metrics) metrics->log_eval(st.global_step, st.epoch, last_eval);
    st.log_history.push_back({{"step", st.global_step}, {"eval_loss", last_eval}});
    if (!st.best_metric || last_eval < *st.best_metric) st.best_metric = last_eval;
    out.line("step " + std::to_string(st.global_step) + " (epoch " + fmt("%.2f", st.epoch) + "): validation loss " +
             fmt("%.4f", last_eval) + ", perplexity " + fmt("%.2f", std::exp(last_eval)));
  };

  if (any_rank(w, stop_requested(), "stop request"))  // before any step of this run there is nothing new to save
    throw Error("interrupted by " + signal_name(stop_signal()) + " before the first training step; nothing was saved");
  bool interrupted = false;
  double comm_seconds = 0;  // in the step's collectives (distributed runs)
  while (st.global_step < total_steps) {
    std::fill(grads.begin(), grads.end(), 0.0f);
    StepTally tally(accum);
    for (int a = 0; a < accum; ++a) {
      const TrainBatch batch = train.next();  // every rank walks the whole order (the data position)
      if (!owns_micro_batch(w, a)) continue;
      if (count_targets(batch) == 0) continue;  // every row masked (response template absent or cut off)
      // LoRA dropout masks: a function of the seed, the step and the micro-batch (not of the process).
      const uint64_t dropout_seed = cfg.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(st.global_step) * accum + a;
      tally.record(a, target.forward_backward(batch, grads, ws, 1.0f / accum, dropout_seed), real_tokens(batch));
    }
    const auto t_comm = Clock::now();  // communication time, the wait for the slowest rank included
    if (zero1) {  // each rank sums its slice's gradients; the norm's squares ride with the losses
      dist::test_hook_before_results(w);
      w.reduce_scatter_sum(grads.data(), slices, "gradients of step " + std::to_string(st.global_step + 1));
      tally.add_grad_squares(grad_sum_squares(grads.data() + mine.begin, opt.size()));
      tally.reduce(w, "losses of step " + std::to_string(st.global_step + 1));
    } else if (w.distributed()) {
      dist::test_hook_before_results(w);
      w.allreduce_sum(grads.data(), grads.size(), "gradients of step " + std::to_string(st.global_step + 1));
      tally.reduce(w, "losses of step " + std::to_string(st.global_step + 1));
    }
    comm_seconds += std::chrono::duration<double>(Clock::now() - t_comm).count();
    double step_loss = 0;
    int counted = 0;
    for (int a = 0; a < accum; ++a) {  // in micro-batch order, as one process sums them
      if (!tally.counted(a)) continue;
      const float loss = tally.loss(a);
      if (!std::isfinite(loss))
        throw Error("loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") + " at step " +
                    std::to_string(st.global_step + 1) + "; stopped. Last good checkpoint: " +
                    (last_checkpoint.empty() ? std::string("none") : last_checkpoint.string()));
      step_loss += loss;
      ++counted;
      run_tokens += tally.tokens(a);
      window_tokens += tally.tokens(a);
      st.tokens_seen += tally.tokens(a);
    }
    const double lr = sched.lr(st.global_step);
    const double norm = zero1 ? std::sqrt(tally.grad_squares()) : grad_norm(grads.data(), grads.size());
    if (!std::isfinite(norm))
      throw Error("gradient norm is not finite at step " + std::to_string(st.global_step + 1) +
                  "; stopped. Last good checkpoint: " + (last_checkpoint.empty() ? std::string("none") : last_checkpoint.string()));
    const float coef = cfg.max_grad_norm > 0 ? clip_coefficient(norm, cfg.max_grad_norm) : 1.0f;
    if (zero1) {
      opt.step(target.params() + mine.begin, grads.data() + mine.begin, lr, coef);
      const auto t_gather = Clock::now();
      w.allgather(target.params(), slices, "parameters of step " + std::to_string(st.global_step + 1));
      comm_seconds += std::chrono::duration<double>(Clock::now() - t_gather).count();
    } else {
      opt.step(target.params(), grads.data(), lr, coef);
    }
    ++st.global_step;
    st.epoch = static_cast<double>(st.global_step) / steps_per_epoch;
    if (counted > 0) {
      st.window_loss_sum += step_loss / counted;
      ++st.window_steps;
    }

    const bool last = st.global_step == total_steps;
    const bool logging_step = (cfg.logging_steps > 0 && st.global_step % cfg.logging_steps == 0) || last;
    if (logging_step && st.window_steps > 0) {
      const double secs = std::chrono::duration<double>(Clock::now() - t_window).count();
      last_loss = st.window_loss_sum / st.window_steps;
      const double tps = secs > 0 ? window_tokens / secs : 0;
      if (metrics) metrics->log_train(st.global_step, st.epoch, last_loss, lr, tps, norm);
      st.log_history.push_back({{"step", st.global_step}, {"loss", last_loss}, {"lr", lr}});
      st.window_loss_sum = 0, st.window_steps = 0, window_tokens = 0;
      t_window = Clock::now();
    }
    ProgressInfo pi;
    pi.step = st.global_step, pi.total_steps = total_steps, pi.start_step = start_step;
    pi.epoch = st.epoch, pi.num_epochs = cfg.max_steps > 0 ? static_cast<int>(std::ceil(static_cast<double>(total_steps) / steps_per_epoch)) : cfg.num_epochs;
    pi.loss = std::isnan(last_loss) ? (counted ? step_loss / counted : NAN) : last_loss, pi.lr = lr;
    pi.elapsed_s = std::chrono::duration<double>(Clock::now() - t_start).count();
    pi.tokens_per_s = pi.elapsed_s > 0 ? run_tokens / pi.elapsed_s : 0;
    out.progress(format_progress(pi), logging_step);

    const bool epoch_end = st.global_step % steps_per_epoch == 0;
    if (eval_due(cfg, st.global_step, epoch_end) || (last && will_evaluate(cfg))) evaluate();
    // No checkpoint at the last step, even a multiple of save_steps: the root folder is the result,
    // and a copy with optimizer state (3x the model) would only fill the disk.
    if (!last && save_due(cfg, st.global_step, epoch_end)) checkpoint(cfg.save_only_model);
    if (hooks.after_step && !hooks.after_step(st.global_step)) break;
    if (!last && any_rank(w, stop_requested(), "stop request")) {
      interrupted = true;
      out.line("stopping after step " + std::to_string(st.global_step) + " of " + std::to_string(total_steps) + " (" +
               signal_name(stop_signal()) + "): saving a resumable checkpoint; press Ctrl-C again to abort at once");
      // Resuming needs the optimizer state, --save_only_model or not.
      if (resumable_step != st.global_step) checkpoint(false);
      break;
    }
  }
  out.end_progress();

  FinetuneResult r;
  r.steps = st.global_step;
  r.final_train_loss = last_loss;
  r.final_eval_loss = last_eval;
  r.train_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  r.tokens_per_second = r.train_seconds > 0 ? run_tokens / r.train_seconds : 0;
  r.output_dir = save;
  r.total_steps = total_steps;
  r.interrupted = interrupted;
  if (interrupted) r.checkpoint = last_checkpoint;
  if (!interrupted && st.global_step == total_steps && w.is_root()) {
    target.save_final(save);  // the HF folder, or the PEFT adapter files
    copy_tokenizer_files(tok_dir, save);
    const LossCurve curve = loss_curve_from_records(read_metrics(save / "metrics.jsonl"));
    write_loss_curve_png(save / "loss_curve.png", curve);
    write_loss_curve_svg(save / "loss_curve.svg", curve);
    if (val && do_eval_requested(cfg) && !std::isnan(last_eval)) write_eval_results(save, last_eval, val->num_rows(), &st.epoch);
    out.line("saved the model to " + save.string() + " (loss curve: " + (save / "loss_curve.png").string() + ")");
  }
  // The other ranks wait for rank 0's files: a rank that exits first makes mpirun end the job,
  // rank 0 included, perhaps halfway through a checkpoint.
  any_rank(w, false, "the end of training");
  out.line("training time " + format_duration(r.train_seconds) + " (" + fmt("%.1f", r.tokens_per_second) +
           " tokens/s), " + std::to_string(st.global_step - start_step) + " steps");
  if (w.distributed() && r.train_seconds > 0)  // what scaling out costs: docs/SCALE_OUT.md, "Measured"
    out.line("data parallel over " + std::to_string(w.size()) + " ranks: " + fmt("%.2f", comm_seconds) + " s (" +
             fmt("%.1f", 100.0 * comm_seconds / r.train_seconds) + " %) of rank 0's training time in the " +
             (zero1 ? "gradient reduce-scatter and parameter all-gather" : "gradient all-reduce") +
             ", waiting for the slowest rank included");
  return r;
}

}  // namespace
}  // namespace lmforge
