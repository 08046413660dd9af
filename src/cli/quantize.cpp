// lmforge quantize: seed 000's accuracy-aware dynamic quantization (Intel Neural Compressor's
// step), done natively. The search: include/lmforge/eval/quantize.h; the folder it writes:
// model/save.h (int8 tensors + "<name>_scale", config.json quantization_config), which
// `lmforge generate --model OUT` loads directly. docs/QUANTIZE.md has the details.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "lmforge/error.h"
#include "lmforge/eval/perplexity.h"
#include "lmforge/eval/quantize.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/data.h"
#include "lmforge/train/train_state.h"

namespace lmforge::cli {
namespace {
namespace fs = std::filesystem;

struct Args {
  std::string model, data_path, save_path, history;
  std::string column = "headline_text", prefix = "|HEADLINE| ", suffix = ".";
  std::string scheme = "dynamic", fallback_dtype = "bfloat16", metric = "perplexity";
  std::string labels_path, prompt_column = "prompt", label_column = "label";
  double tolerance = 0.01;
  int num_samples = 100, max_trials = 100, threads = 0;
  int64_t max_rows = 5000;
  double validation_fraction = 0.2;
  uint64_t seed = 42;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model, "fp32 HF checkpoint folder to quantize (e.g. a finetune output)")->required();
  app.add_option("--data_path", args.data_path,
                 "CSV whose column gives the held-out texts the perplexity is measured on (seed: abcnews-date-text.csv)");
  app.add_option("--save_path,--save_model_dir", args.save_path, "Folder to write the quantized model to")->required();
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
  app.add_option("--column", args.column, "--data_path: the text column (default headline_text)");
  app.add_option("--prefix", args.prefix, "Text before each row, as in training (default '|HEADLINE| ')");
  app.add_option("--suffix", args.suffix, "Text after each row, as in training (default '.')");
  app.add_option("--max_rows", args.max_rows, "Rows read from the CSV before the split, as finetune (default 5000)");
  app.add_option("--validation_fraction", args.validation_fraction,
                 "Held-out share of those rows, as finetune's split (default 0.2)");
  app.add_option("--seed", args.seed, "Split seed, as finetune's (default 42)");
  app.add_option("--num_samples", args.num_samples, "Held-out rows the metric uses (default 100)");
  app.add_option("--max_trials", args.max_trials,
                 "Metric evaluations after the baseline, sensitivity measurements included (default 100)");
  app.add_option("--history", args.history, "Tuning history JSON (default SAVE_PATH/tuning_history.json)");
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  app.footer(
      "Measures the fp32 metric, quantizes every weight matrix to int8 (per-output-row symmetric scales), and "
      "while the relative loss exceeds --tolerance measures each matrix's sensitivity (that matrix alone back in "
      "--fallback_dtype) and falls back the most sensitive ones, one more per try. Prints the seed's table "
      "(baseline, last try, best: metric and duration), saves the best model with a quantization_config in "
      "config.json, and the history as JSON. No try within the tolerance: nothing is saved, exit 1.");
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

// The files a quantized folder holds; a folder with anything else in it is not replaced.
bool is_ours(const std::string& name) {
  static const std::set<std::string> kFiles = {"config.json", "model.safetensors", "generation_config.json",
                                                "tuning_history.json", "vocab.json", "merges.txt", "tokenizer.json",
                                                "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"};
  return kFiles.count(name) != 0;
}

// "out/" and "out" alike: the folder's own path, without a trailing separator.
fs::path folder_path(const std::string& text) {
  fs::path p = fs::path(text).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p;
}

// Fails before the tuning when the folder cannot be written, or when it exists holding files
// that are not a quantized model's (the folder is replaced whole).
void check_save_path(const fs::path& p) {
  if (p.empty() || p == "." || p == "..") throw Error("--save_path: give a folder name, not '" + p.string() + "'");
  if (fs::exists(p) && !fs::is_directory(p)) throw Error("--save_path: '" + p.string() + "' exists and is not a folder");
  if (fs::is_directory(p))
    for (const auto& entry : fs::directory_iterator(p))
      if (!is_ours(entry.path().filename().string()))
        throw Error("--save_path: '" + p.string() + "' holds '" + entry.path().filename().string() +
                    "', which is not part of a quantized model; choose an empty or new folder");
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(parent))
    throw Error("--save_path: cannot write '" + p.string() + "': folder '" + parent.string() + "' does not exist");
  if (::access(parent.c_str(), W_OK) != 0)
    throw Error("--save_path: cannot write '" + p.string() + "': folder '" + parent.string() + "' is not writable");
}

// The held-out texts: finetune's selection and split of the column, its first num_samples
// validation rows.
std::vector<std::string> held_out_texts() {
  DataOptions d;
  d.data_path = args.data_path;
  d.text_column = args.column;
  d.max_rows = args.max_rows;
  d.validation_fraction = args.validation_fraction;
  d.seed = args.seed;
  const TextRows rows = read_text_rows(d);
  const int64_t n = static_cast<int64_t>(rows.texts.size());
  auto [train, validation] = split_indices(n, args.validation_fraction, args.seed);
  if (validation.empty()) validation = train;  // a tiny file: score what there is
  std::vector<std::string> texts;
  for (int64_t i : validation) {
    if (static_cast<int>(texts.size()) >= args.num_samples) break;
    texts.push_back(rows.texts[i]);
  }
  return texts;
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

eval::QualityMetric make_metric(const Tokenizer& tok) {
  eval::QualityMetric m;
  if (args.metric == "perplexity") {
    if (args.data_path.empty()) throw Error("--data_path: needed for --metric perplexity");
    auto texts = held_out_texts();
    if (texts.empty()) throw Error("--data_path: no usable rows in column '" + args.column + "' of '" + args.data_path + "'");
    std::cout << "metric: perplexity of " << texts.size() << " held-out rows of '" << args.data_path << "'\n";
    m.evaluate = [&tok, texts](const Model& model) {
      return eval::corpus_perplexity(model, tok, texts, {}, args.prefix, args.suffix).perplexity;
    };
  } else if (args.metric == "accuracy") {
    if (args.labels_path.empty()) throw Error("--labels_path: needed for --metric accuracy");
    auto [prompts, labels] = labelled_rows();
    std::cout << "metric: multiple-choice accuracy of " << prompts.size() << " rows of '" << args.labels_path << "'\n";
    m.name = "accuracy";
    m.higher_is_better = true;
    m.evaluate = [&tok, prompts, labels](const Model& model) { return eval::choice_accuracy(model, tok, prompts, labels); };
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

nlohmann::json history_json(const eval::QuantizeResult& r, const std::string& metric) {
  nlohmann::json trials = nlohmann::json::array();
  for (const auto& t : r.trials) trials.push_back(trial_json(t));
  return {{"model", args.model}, {"metric", metric}, {"tolerance", args.tolerance}, {"scheme", args.scheme},
          {"fallback_dtype", args.fallback_dtype}, {"baseline", trial_json(r.baseline)}, {"trials", trials},
          {"best", r.met() ? nlohmann::json(r.best) : nlohmann::json(nullptr)}, {"met", r.met()}};
}

// Writes the whole folder under a temporary name, then puts it in place of `dir`.
void save_folder(const fs::path& dir, const ModelConfig& cfg, const ModelWeights& w, const std::string& history) {
  const fs::path tmp = dir.string() + ".tmp", old = dir.string() + ".old";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  save_pretrained(tmp, cfg, w);
  copy_tokenizer_files(args.model, tmp);
  if (fs::exists(fs::path(args.model) / "generation_config.json"))
    fs::copy_file(fs::path(args.model) / "generation_config.json", tmp / "generation_config.json",
                  fs::copy_options::overwrite_existing);
  if (args.history.empty()) write_file_atomic(tmp / "tuning_history.json", history);
  fs::remove_all(old, ec);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old, ec);
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
  apply_threads(args.threads);

  const auto model = Model::load(args.model, kernels::WeightType::F32);
  if (model->config().quantization)
    throw Error("--model: '" + args.model + "' is already quantized; give the fp32 model it came from");
  const auto tok = load_tokenizer_for_model(args.model, model->vocab_size());
  if (!tok) throw Error("--model: the folder '" + args.model + "' has no tokenizer (vocab.json + merges.txt or tokenizer.json)");
  const eval::QualityMetric metric = make_metric(*tok);

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
  const std::string history = history_json(r, metric.name).dump(2) + "\n";
  if (!args.history.empty()) write_file_atomic(args.history, history);
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
  ModelConfig cfg = model->config();
  cfg.quantization = r.best_config;
  save_folder(save_path, cfg, convert_weights(cfg, model->weights(), r.best_types), history);
  std::cerr << "lmforge: wrote " << args.save_path
            << (args.history.empty() ? " (tuning history: tuning_history.json inside)" : "") << "\n";
  return 0;
}

Command command{"quantize", "INT8 quantization with an accuracy check against fp32 (seed 000's INC step)", setup, run};

}  // namespace
}  // namespace lmforge::cli
