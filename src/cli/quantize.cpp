// lmforge quantize: seed 000's accuracy-aware dynamic quantization (Intel Neural Compressor's
// step), done natively. The search: include/lmforge/eval/quantize.h; the folder it writes:
// model/save.h (int8 tensors + "<name>_scale", config.json quantization_config), which
// `lmforge generate --model OUT` loads directly. docs/QUANTIZE.md has the details.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/distributed.h"
#include "lmforge/error.h"
#include "lmforge/eval/perplexity.h"
#include "lmforge/eval/quantize.h"
#include "lmforge/eval/training_record.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/output_dir.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/data.h"
#include "lmforge/train/train_state.h"

namespace lmforge::cli {
namespace {
namespace fs = std::filesystem;

// The held-out split and text format: a flag, else the model's training record, else finetune's
// own default (DataOptions), so "held-out" means rows finetune did not train on.
struct SplitArgs {
  std::optional<std::string> data_path, column, prefix, suffix, sample;
  std::optional<int64_t> max_rows;
  std::optional<double> validation_fraction;
  std::optional<uint64_t> seed;
};

struct Args {
  std::string model, save_path, history;
  SplitArgs split;
  std::string scheme = "dynamic", fallback_dtype = "bfloat16", metric = "perplexity";
  std::string labels_path, prompt_column = "prompt", label_column = "label";
  double tolerance = 0.01;
  int num_samples = 100, max_trials = 100, threads = 0;
  bool overwrite_output_dir = false;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model, "fp32 HF checkpoint folder to quantize (e.g. a finetune output)")->required();
  app.add_option("--data_path", args.split.data_path,
                 "CSV whose column gives the held-out texts the perplexity is measured on (default: the training "
                 "record's data_path)");
  app.add_option("--save_path,--save_model_dir", args.save_path, "Folder to write the quantized model to")->required();
  app.add_flag("--overwrite_output_dir", args.overwrite_output_dir,
               "Write into --save_path even when it holds files that are not an earlier quantize output (HF's flag)");
  app.add_option("--tolerance", args.tolerance,
                 "Relative metric loss allowed against fp32 (default 0.01 = 1 %, INC's default)")->capture_default_str();
  app.add_option("--scheme", args.scheme,
                 "dynamic (int8 weights, per-token int8 activations, int8 x int8 products; default) or weight_only "
                 "(int8 weights, fp32 activations)");
  app.add_option("--fallback_dtype", args.fallback_dtype,
                 "Type of the matrices the accuracy check keeps out of int8: bfloat16 (default), float16 or float32");
  app.add_option("--metric", args.metric,
                 "perplexity (default; of the held-out CSV rows, lower is better) or accuracy (multiple choice over "
                 "the labels of --labels_path, higher is better)");
  app.add_option("--labels_path", args.labels_path, "--metric accuracy: CSV with a prompt and a label column");
  app.add_option("--prompt_column", args.prompt_column, "--labels_path: prompt column (default prompt)");
  app.add_option("--label_column", args.label_column, "--labels_path: label column (default label)");
  // "the record": the training record finetune left in --model (lmforge_output.json).
  app.add_option("--column,--text_column", args.split.column, "--data_path: the text column (default: the record's text_column, else headline_text)");
  app.add_option("--prefix", args.split.prefix, "Text before each row, as in training (default: the record's prefix, else '|HEADLINE| ')");
  app.add_option("--suffix", args.split.suffix, "Text after each row, as in training (default: the record's suffix, else '.')");
  app.add_option("--max_rows", args.split.max_rows, "Rows read from the CSV before the split, as finetune (default: the record's, else 5000)");
  app.add_option("--sample", args.split.sample, "first | random: how those rows are chosen, as finetune (default: the record's, else first)");
  app.add_option("--validation_fraction", args.split.validation_fraction,
                 "Held-out share of those rows, as finetune's split (default: the record's, else 0.2)");
  app.add_option("--seed", args.split.seed, "Split seed, as finetune's (default: the record's, else 42)");
  app.add_option("--num_samples", args.num_samples, "Held-out rows the metric uses (default 100)");
  app.add_option("--max_trials", args.max_trials,
                 "Metric evaluations after the baseline, sensitivity measurements included (default 100)");
  app.add_option("--history", args.history, "Tuning history JSON (default SAVE_PATH/tuning_history.json)");
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  app.footer(
      "Measures the fp32 metric, quantizes every weight matrix to int8 (per-output-row symmetric scales), and "
      "while the relative loss exceeds --tolerance measures each matrix's sensitivity (that matrix alone back in "
      "--fallback_dtype) and falls back the most sensitive ones, one more per try. Prints the tuning table "
      "(baseline, last try, best: metric and duration), saves the best model with a quantization_config in "
      "config.json, and the history as JSON. No try within the tolerance: nothing is saved, exit 1. The held-out "
      "rows are finetune's validation split, chosen by finetune's own code with the split settings (data_path, "
      "text_column, max_rows, sample, validation_fraction, seed) and text format (prefix, suffix) recorded in "
      "--model's lmforge_output.json; a flag overrides one. Each row is scored as finetune trained on it: prefix + "
      "row + suffix + <|endoftext|>.");
}

std::string fixed4(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

// Fails before the tuning when `file` cannot be created.
void check_writable_file(const fs::path& file, const std::string& flag) {
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  if (fs::is_directory(file)) throw Error(flag + ": '" + file.string() + "' is a folder");
  if (!fs::is_directory(dir) || ::access(dir.c_str(), W_OK) != 0)
    throw Error(flag + ": cannot write '" + file.string() + "': folder '" + dir.string() + "' is missing or not writable");
}

// The files a quantized folder is made of. A folder holding only these is swapped whole on a
// rerun; any other file in it (allowed by its quantize record or --overwrite_output_dir) is kept.
bool is_ours(const std::string& name) {
  static const std::set<std::string> kFiles = {"config.json", "model.safetensors", "generation_config.json",
                                                "tuning_history.json", "vocab.json", "merges.txt", "tokenizer.json",
                                                "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                                                kOutputRecordFile};
  return kFiles.count(name) != 0;
}

// "out/" and "out" alike: the folder's own path, without a trailing separator.
fs::path folder_path(const std::string& text) {
  fs::path p = fs::path(text).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p;
}

// Fails before the tuning when the folder cannot be written, or (HF's --overwrite_output_dir rule)
// when it exists, is not empty and is not an earlier quantize output.
void check_save_path(const fs::path& p) {
  if (p.empty() || p == "." || p == "..") throw Error("--save_path: give a folder name, not '" + p.string() + "'");
  check_output_dir(p, "quantize", args.overwrite_output_dir, "--save_path");
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(parent))
    throw Error("--save_path: cannot write '" + p.string() + "': folder '" + parent.string() + "' does not exist");
  if (::access(parent.c_str(), W_OK) != 0)
    throw Error("--save_path: cannot write '" + p.string() + "': folder '" + parent.string() + "' is not writable");
}

// ---- the held-out split -------------------------------------------------------------------------

// The value of one split setting: its flag, else the training record's (noted in `taken` for the
// "using finetune's ..." line), else finetune's default.
template <typename T>
T pick(const std::optional<T>& flag, const std::optional<T>& recorded, T fallback, const char* name,
       std::vector<std::pair<std::string, std::string>>& taken, const std::function<std::string(const T&)>& show) {
  if (flag) return *flag;
  if (!recorded) return fallback;
  taken.emplace_back(name, show(*recorded));
  return *recorded;
}

SampleMode sample_mode(const std::string& s, const std::string& where) {
  if (s == "first") return SampleMode::First;
  if (s == "random") return SampleMode::Random;
  throw Error(where + ": first or random, not '" + s + "'");
}

std::string number_text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// finetune's DataOptions for the held-out rows: flags over the record over finetune's defaults
// (data_path "" when neither a flag nor the record gives it). `record_line` lists what the record gave.
DataOptions resolve_split(const std::optional<eval::TrainingRecord>& rec, std::string& record_line) {
  const SplitArgs& f = args.split;
  const bool have = rec.has_value();
  const DataOptions defaults;
  std::vector<std::pair<std::string, std::string>> taken;
  const std::function<std::string(const std::string&)> quoted = [](const std::string& v) { return eval::quote_text(v); };
  const std::function<std::string(const int64_t&)> whole = [](const int64_t& v) { return std::to_string(v); };
  const std::function<std::string(const uint64_t&)> seed_text = [](const uint64_t& v) { return std::to_string(v); };
  const std::function<std::string(const double&)> real = [](const double& v) { return number_text(v); };
  DataOptions d;
  d.prefix = pick(f.prefix, have ? rec->prefix : std::nullopt, defaults.prefix, "prefix", taken, quoted);
  d.suffix = pick(f.suffix, have ? rec->suffix : std::nullopt, defaults.suffix, "suffix", taken, quoted);
  d.text_column = pick(f.column, have ? rec->text_column : std::nullopt, defaults.text_column, "text_column", taken, quoted);
  d.data_path = pick(f.data_path, have ? rec->data_path : std::nullopt, std::string(), "data_path", taken, quoted);
  d.max_rows = pick(f.max_rows, have ? rec->max_rows : std::nullopt, defaults.max_rows, "max_rows", taken, whole);
  const std::string sample = pick(f.sample, have ? rec->sample : std::nullopt,
                                  std::string(defaults.sample == SampleMode::Random ? "random" : "first"), "sample",
                                  taken, quoted);
  d.sample = sample_mode(sample, "--sample");  // a record's value was checked when it was read
  d.validation_fraction = pick(f.validation_fraction, have ? rec->validation_fraction : std::nullopt,
                               defaults.validation_fraction, "validation_fraction", taken, real);
  if (!(d.validation_fraction >= 0.0 && d.validation_fraction < 1.0))
    throw Error("--validation_fraction: must be in [0, 1), got " + number_text(d.validation_fraction));
  d.seed = pick(f.seed, have ? rec->seed : std::nullopt, defaults.seed, "seed", taken, seed_text);
  if (have) record_line = eval::record_used_line(*rec, taken);
  return d;
}

// A --data_path other than the file finetune trained on has no held-out split: say so.
void warn_if_other_data(const DataOptions& d, const std::optional<eval::TrainingRecord>& rec) {
  if (!rec || !rec->data_path || !args.split.data_path) return;
  std::error_code ec;
  if (fs::equivalent(d.data_path, *rec->data_path, ec)) return;
  std::cerr << "lmforge: warning: --data_path '" << d.data_path.string() << "' is not the training data '"
            << *rec->data_path << "' recorded in " << rec->file.string()
            << "; its 'held-out' rows are unseen only if they are not in the training data\n";
}

// The held-out rows: finetune's own selection (read_text_rows: columns, skips, max_rows, sample)
// and split (split_indices) of the data, its first num_samples validation rows. What was chosen
// goes into tuning_history.json ("held_out"), so it can be checked against finetune's split.
struct HeldOut {
  std::vector<std::string> texts;
  std::vector<int64_t> lines;  // CSV line of each
  nlohmann::json info;
};

HeldOut held_out_rows(const DataOptions& d) {
  const TextRows rows = read_text_rows(d);
  auto [train, validation] = split_indices(static_cast<int64_t>(rows.texts.size()), d.validation_fraction, d.seed);
  const bool from_training = validation.empty();
  if (from_training) {
    if (dist::launch_rank() == 0)
      std::cerr << "lmforge: warning: validation_fraction " << number_text(d.validation_fraction) << " of "
              << rows.texts.size() << " rows holds nothing out: measuring on training rows\n";
    validation = train;
  }
  HeldOut h;
  for (int64_t i : validation) {
    if (static_cast<int>(h.texts.size()) >= args.num_samples) break;
    h.texts.push_back(rows.texts[static_cast<size_t>(i)]);
    h.lines.push_back(rows.lines[static_cast<size_t>(i)]);
  }
  h.info = {{"data_path", d.data_path.string()}, {"text_column", d.text_column}, {"prefix", d.prefix},
            {"suffix", d.suffix}, {"max_rows", d.max_rows}, {"sample", d.sample == SampleMode::Random ? "random" : "first"},
            {"validation_fraction", d.validation_fraction}, {"seed", d.seed}, {"validation_rows", validation.size()},
            {"training_rows_used", from_training}, {"lines", h.lines}};
  return h;
}

// prompt/label pairs of --labels_path.
std::pair<std::vector<std::string>, std::vector<std::string>> labelled_rows() {
  CsvReader csv(args.labels_path);
  std::vector<std::string> header, f, prompts, labels;
  if (!csv.next(header)) throw Error("--labels_path: '" + args.labels_path + "' is empty");
  auto index_of = [&](const std::string& name, const char* flag) {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return i;
    throw Error(std::string(flag) + ": no column '" + name + "' in '" + args.labels_path + "'");
  };
  const size_t pi = index_of(args.prompt_column, "--prompt_column"), li = index_of(args.label_column, "--label_column");
  while (csv.next(f) && static_cast<int>(prompts.size()) < args.num_samples) {
    if (f.size() != header.size() || f[pi].empty() || f[li].empty()) continue;
    prompts.push_back(f[pi]);
    labels.push_back(f[li]);
  }
  if (prompts.empty()) throw Error("--labels_path: no usable rows (non-empty prompt and label) in '" + args.labels_path + "'");
  return {prompts, labels};
}

eval::QualityMetric make_metric(const dist::World& w, const Tokenizer& tok, const DataOptions& split,
                                const std::string& record_line, nlohmann::json& held_out_info) {
  eval::QualityMetric m;
  if (args.metric == "perplexity") {
    HeldOut h = held_out_rows(split);
    held_out_info = std::move(h.info);
    if (!record_line.empty()) std::cout << record_line << "\n";  // next to the metric it shaped
    std::cout << "metric: perplexity of " << h.texts.size() << " held-out rows of '" << split.data_path.string() << "'\n";
    // finetune's rows: prefix + text + suffix + eos, so the baseline is exp(its validation loss).
    const eval::TextFormat format{split.prefix, split.suffix, false, true};
    announce_shard(w, "quantize", "held-out rows", dist::shard_range(h.texts.size(), w), h.texts.size());
    // Under mpirun each rank scores its rows; every rank gets rank 0's sum, the same bits as one
    // process, so all of them take the same accept/reject decisions.
    m.evaluate = [&tok, &w, texts = std::move(h.texts), format](const Model& model) {
      const auto corpus = sharded_corpus(w, model, tok, texts, {}, format, "");
      return share_root_value(w, corpus ? corpus->perplexity : 0.0, "quantize perplexity");
    };
  } else if (args.metric == "accuracy") {
    if (args.labels_path.empty()) throw Error("--labels_path: needed for --metric accuracy");
    auto rows = labelled_rows();  // (not a structured binding: clang 14 cannot capture one)
    auto prompts = std::move(rows.first);
    auto labels = std::move(rows.second);
    std::cout << "metric: multiple-choice accuracy of " << prompts.size() << " rows of '" << args.labels_path << "'\n";
    m.name = "accuracy";
    m.higher_is_better = true;
    const dist::Range mine = dist::shard_range(prompts.size(), w);
    announce_shard(w, "quantize", "labelled rows", mine, prompts.size());
    m.evaluate = [&tok, &w, prompts, labels, mine](const Model& model) {
      double correct = static_cast<double>(eval::choice_correct(model, tok, prompts, labels, mine.begin, mine.end));
      w.allreduce_sum(&correct, 1, "quantize accuracy");  // counts: exact in a double
      return correct / static_cast<double>(prompts.size());  // choice_accuracy's division
    };
  } else {
    throw Error("--metric: perplexity or accuracy, not '" + args.metric + "'");
  }
  return m;
}

nlohmann::json trial_json(const eval::QuantizeTrial& t) {
  return {{"label", t.label}, {"metric", std::isfinite(t.metric) ? nlohmann::json(t.metric) : nlohmann::json(nullptr)},
          {"seconds", t.seconds}, {"relative_loss", std::isfinite(t.relative_loss) ? nlohmann::json(t.relative_loss) : nlohmann::json(nullptr)},
          {"accepted", t.accepted}, {"fallback", t.fallback}};
}

nlohmann::json history_json(const eval::QuantizeResult& r, const std::string& metric, const nlohmann::json& held_out) {
  nlohmann::json trials = nlohmann::json::array();
  for (const auto& t : r.trials) trials.push_back(trial_json(t));
  nlohmann::json j = {{"model", args.model}, {"metric", metric}, {"tolerance", args.tolerance}, {"scheme", args.scheme},
                      {"fallback_dtype", args.fallback_dtype}, {"baseline", trial_json(r.baseline)}, {"trials", trials},
                      {"best", r.met() ? nlohmann::json(r.best) : nlohmann::json(nullptr)}, {"met", r.met()}};
  if (!held_out.is_null()) j["held_out"] = held_out;
  return j;
}

// `dir` holds nothing but files a quantized folder is made of (or does not exist).
bool only_ours(const fs::path& dir) {
  if (!fs::exists(dir)) return true;
  for (const auto& entry : fs::directory_iterator(dir))
    if (!is_ours(entry.path().filename().string())) return false;
  return true;
}

// Puts the finished folder `tmp` at `dir`. A folder of our files alone is swapped whole (two
// renames: the old model stays complete until the new one is in place, no stale file survives).
// A folder that also holds other files (allowed by check_save_path) keeps them: each new file is
// renamed in on its own, and our files the new model does not have (a stale tokenizer.json, say)
// are removed so they cannot be loaded with it.
void put_in_place(const fs::path& tmp, const fs::path& dir) {
  std::error_code ec;
  if (only_ours(dir)) {
    const fs::path old = dir.string() + ".lmforge-old";
    fs::remove_all(old, ec);
    if (fs::exists(dir)) fs::rename(dir, old);
    fs::rename(tmp, dir);
    fs::remove_all(old, ec);
    return;
  }
  std::set<std::string> written;
  for (const auto& entry : fs::directory_iterator(tmp)) written.insert(entry.path().filename().string());
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (is_ours(name) && !written.count(name) && entry.is_regular_file()) fs::remove(entry.path());
  }
  for (const std::string& name : written) fs::rename(tmp / name, dir / name);
  fs::remove_all(tmp, ec);
}

// Writes the whole folder under a temporary name, then puts it in place of `dir`. Its record
// (command "quantize") carries the source's training block, so synth, eval and a later quantize of
// the same folder keep using finetune's format.
void save_folder(const fs::path& dir, const ModelConfig& cfg, const ModelWeights& w, const std::string& history,
                 const std::optional<eval::TrainingRecord>& rec) {
  const fs::path tmp = dir.string() + ".lmforge-tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  save_pretrained(tmp, cfg, w);
  copy_tokenizer_files(args.model, tmp);
  if (fs::exists(fs::path(args.model) / "generation_config.json"))
    fs::copy_file(fs::path(args.model) / "generation_config.json", tmp / "generation_config.json",
                  fs::copy_options::overwrite_existing);
  if (args.history.empty()) write_file_atomic(tmp / "tuning_history.json", history);
  write_output_record(tmp, "quantize", rec ? nlohmann::json{{"training", rec->block}} : nlohmann::json(nullptr));
  put_in_place(tmp, dir);
}

int run() {
  const auto fallback = kernels::weight_type_from_string(args.fallback_dtype);
  if (!fallback) throw Error("--fallback_dtype: bfloat16, float16 or float32, not '" + args.fallback_dtype + "'");
  eval::QuantizeOptions opt;  // an int8 fallback is refused by check_quantize_options
  opt.scheme = args.scheme;
  opt.tolerance = args.tolerance;
  opt.fallback = *fallback;
  opt.max_trials = args.max_trials;
  eval::check_quantize_options(opt);  // every check before the model is read
  if (args.num_samples < 1) throw Error("--num_samples: must be at least 1");
  const fs::path save_path = folder_path(args.save_path);
  check_save_path(save_path);
  if (!args.history.empty()) check_writable_file(args.history, "--history");
  // Under mpirun the metric's rows are split across ranks (docs/SCALE_OUT.md); every rank runs the
  // same search on the same figures, and rank 0 alone prints and writes.
  const dist::World& w = sharded_world(args.model);
  if (!w.is_root()) std::cout.setstate(std::ios::badbit);  // silent: rank 0 prints the one report
  const std::optional<eval::TrainingRecord> record = eval::load_training_record(args.model);
  // The split matters to the perplexity metric only (accuracy reads --labels_path).
  std::string record_line;
  const DataOptions split = args.metric == "perplexity" ? resolve_split(record, record_line) : DataOptions{};
  if (args.metric == "perplexity" && split.data_path.empty())
    throw Error("--data_path: needed for --metric perplexity (the model folder has no training record naming its data)");
  if (args.metric == "perplexity" && !args.split.data_path && !fs::is_regular_file(split.data_path))
    throw Error("--data_path: not given, and the training data '" + split.data_path.string() + "' recorded in " +
                record->file.string() + " is not a readable file here; give --data_path");
  if (w.is_root()) warn_if_other_data(split, record);
  apply_threads(args.threads);

  const auto model = Model::load(args.model, kernels::WeightType::F32);
  if (model->config().quantization)
    throw Error("--model: '" + args.model + "' is already quantized; give the fp32 model it came from");
  const auto tok = load_tokenizer_for_model(args.model, model->vocab_size());
  if (!tok) throw Error("--model: the folder '" + args.model + "' has no tokenizer (vocab.json + merges.txt or tokenizer.json)");
  nlohmann::json held_out_info;
  const eval::QualityMetric metric = make_metric(w, *tok, split, record_line, held_out_info);

  std::cout << "tuning " << args.scheme << " int8 quantization of " << args.model << " (tolerance "
            << args.tolerance * 100 << " % relative " << metric.name << " loss, fallback " << args.fallback_dtype << ")\n";
  const eval::QuantizeResult r = eval::tune_quantization(
      model->config(), model->weights(), metric, opt, [&](const eval::QuantizeTrial& t) {
        std::cout << "  " << t.label << ": " << metric.name << " " << fixed4(t.metric) << ", " << fixed4(t.seconds) << " s";
        if (t.label != "baseline")
          std::cout << ", relative loss " << fixed4(t.relative_loss * 100) << " %" << (t.accepted ? " (within tolerance)" : "");
        std::cout << std::endl;
      });
  std::cout << eval::format_quantize_table(r, metric.name);
  const std::string history = history_json(r, metric.name, held_out_info).dump(2) + "\n";
  if (!args.history.empty() && w.is_root()) write_file_atomic(args.history, history);
  if (!r.met()) {
    double best_loss = INFINITY;
    for (const auto& t : r.trials) best_loss = std::min(best_loss, t.relative_loss);
    throw Error("no quantized model within --tolerance " + fixed4(args.tolerance) + " after " +
                std::to_string(r.trials.size()) + " tries (best relative loss " + fixed4(best_loss) +
                "); nothing saved. Raise --tolerance or --max_trials, or use --fallback_dtype float32");
  }
  const eval::QuantizeTrial& best = r.trials[r.best];
  std::cout << "Found a model that meets the accuracy requirements: " << best.label << ", " << best.fallback.size()
            << " module(s) in " << args.fallback_dtype << "\n";
  if (!w.is_root()) return 0;
  ModelConfig cfg = model->config();
  cfg.quantization = r.best_config;
  save_folder(save_path, cfg, convert_weights(cfg, model->weights(), r.best_types), history, record);
  std::cerr << "lmforge: wrote " << args.save_path
            << (args.history.empty() ? " (tuning history: tuning_history.json inside)" : "") << "\n";
  return 0;
}

Command command{"quantize", "INT8 quantization with an accuracy check against fp32 (as Intel Neural Compressor's accuracy-aware tuning)", setup, run};

}  // namespace
}  // namespace lmforge::cli
