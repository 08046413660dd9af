// lmforge tune: seed 001's tune_hyperparameters. Grid search over top_k x top_p x temperature,
// each setting scored by the perplexity of its sampled text; the best setting is written as a
// `lmforge synth --model_config` YAML. How it is computed: include/lmforge/eval/tune.h, docs/EVAL.md.
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/options.h"
#include "lmforge/error.h"
#include "lmforge/eval/training_record.h"
#include "lmforge/eval/tune.h"
#include "lmforge/model/model.h"

namespace lmforge::cli {
namespace {

constexpr int kSeedMaxLength = 100;  // seed 001 generates with max_length=100 (prompt included)
constexpr size_t kSampleChars = 60;  // bytes of a sample shown in the table

struct Args {
  std::string model, prompt, dtype = "auto";
  std::string adapter;  // --adapter: PEFT LoRA folder applied unmerged
  std::string top_k = "0,25,50", top_p = "0.8,0.9,0.95", temperature = "0.7,0.8,1.0";
  int samples_per_setting = 1;
  std::optional<int> max_length, max_new_tokens;
  uint64_t seed = 42;
  std::string output;
  std::optional<std::string> prefix;  // unset: the training record's, else none
  bool json = false;
  int threads = 0;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model, "HF checkpoint folder (config.json, weights, tokenizer)")->required();
  app.add_option("--prompt,-p", args.prompt, "Prompt the samples continue")->required();
  app.add_option("--top_k", args.top_k, "Comma-separated top_k values, each >= 0 (0 = off)")->capture_default_str();
  app.add_option("--top_p", args.top_p, "Comma-separated top_p values, each in (0, 1]")->capture_default_str();
  app.add_option("--temperature", args.temperature, "Comma-separated temperatures, each > 0")->capture_default_str();
  app.add_option("--samples_per_setting", args.samples_per_setting,
                 "Samples per setting, one generate() call with num_return_sequences (default 1, as the reference workflow)");
  auto* ml = add_optional(app, "--max_length", args.max_length,
                          "HF max_length: total length, prompt included (default 100 as the reference workflow, capped at n_positions)");
  auto* mn = add_optional(app, "--max_new_tokens", args.max_new_tokens, "HF max_new_tokens: tokens to generate");
  ml->excludes(mn);
  mn->excludes(ml);
  app.add_option("--prefix", args.prefix,
                 "Text put before the prompt, as synth does (default: the prefix finetune recorded in the model "
                 "folder, else none)");
  app.add_option("--seed", args.seed, "Sampling seed, the same for every setting (default 42)");
  app.add_option("--output,-o", args.output, "Write the best setting here as a `lmforge synth --model_config` YAML");
  app.add_flag("--json", args.json, "Print the whole grid as JSON");
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  add_dtype_option(app, args.dtype);
  add_adapter_option(app, args.adapter);
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// "0, 25,50" -> {0, 25, 50}. Every item must be a whole number (T = int) or a finite number.
template <typename T>
std::vector<T> parse_list(const std::string& text, const std::string& flag) {
  const char* what = std::is_integral_v<T> ? "an integer" : "a number";
  if (trim(text).empty()) throw Error(flag + ": empty list; give comma-separated values, e.g. " + flag + " " +
                                      (std::is_integral_v<T> ? "0,25,50" : "0.8,0.9"));
  std::vector<T> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    T v{};
    const auto res = std::from_chars(item.data(), item.data() + item.size(), v);
    bool ok = !item.empty() && res.ec == std::errc() && res.ptr == item.data() + item.size();
    if constexpr (!std::is_integral_v<T>) ok = ok && std::isfinite(v);
    if (!ok) throw Error(flag + ": '" + item + "' in '" + text + "' is not " + what);
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Fails before any work when `path` cannot be created: its folder is missing or not writable.
void check_writable(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  if (fs::is_directory(p)) throw Error("--output: '" + path + "' is a directory");
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(dir)) throw Error("--output: cannot write '" + path + "': folder '" + dir.string() + "' does not exist");
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error("--output: cannot write '" + path + "': folder '" + dir.string() + "' is not writable");
}

// One line of at most kSampleChars bytes, cut on a UTF-8 character boundary.
std::string table_text(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (out.size() <= kSampleChars) return out;
  size_t cut = kSampleChars;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  return out.substr(0, cut) + "...";
}

std::string fixed(double v) {
  if (!std::isfinite(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

std::string setting_text(const eval::TuneSetting& s) {
  return "top_k=" + std::to_string(s.top_k) + " top_p=" + eval::format_float(s.top_p) +
         " temperature=" + eval::format_float(s.temperature);
}

void print_header(size_t total) {
  std::cout << "tuning " << total << " settings x " << args.samples_per_setting
            << " sample(s), scored by perplexity (mean over samples; lower is better)\n";
  char buf[160];
  std::snprintf(buf, sizeof buf, "%*s  %5s  %5s  %11s  %10s  ", static_cast<int>(2 * std::to_string(total).size() + 1), "#",
                "top_k", "top_p", "temperature", "perplexity");
  std::cout << buf << "sample continuation\n";
}

void print_row(size_t i, size_t total, const eval::TuneResult& r) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%*zu/%zu  %5d  %5s  %11s  %10s  ", static_cast<int>(std::to_string(total).size()), i + 1,
                total, r.setting.top_k, eval::format_float(r.setting.top_p).c_str(),
                eval::format_float(r.setting.temperature).c_str(), fixed(r.perplexity).c_str());
  std::cout << buf << table_text(r.samples.empty() ? "" : r.samples.front().continuation) << std::endl;
}

nlohmann::json setting_json(const eval::TuneSetting& s) {
  return {{"top_k", s.top_k}, {"top_p", std::stod(eval::format_float(s.top_p))},
          {"temperature", std::stod(eval::format_float(s.temperature))}};
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json report_json(const eval::TuneReport& report, int max_length_used, const std::string& prefix) {
  nlohmann::json j{{"prompt", args.prompt},
                   {"prefix", prefix},
                   {"seed", args.seed},
                   {"samples_per_setting", args.samples_per_setting},
                   {"aggregate", "mean of the samples' perplexities"},
                   {"settings", nlohmann::json::array()}};
  if (args.max_new_tokens) j["max_new_tokens"] = *args.max_new_tokens;
  else j["max_length"] = max_length_used;
  for (const auto& r : report.results) {
    nlohmann::json s = setting_json(r.setting);
    s["perplexity"] = number_or_null(r.perplexity);
    s["pooled_perplexity"] = number_or_null(r.pooled_perplexity);
    s["scored"] = r.scored;
    s["samples"] = nlohmann::json::array();
    for (const auto& x : r.samples)
      s["samples"].push_back({{"text", x.text}, {"continuation", x.continuation}, {"ids", x.sequence},
                              {"tokens", x.tokens}, {"perplexity", number_or_null(x.perplexity)}});
    j["settings"].push_back(std::move(s));
  }
  if (report.best) {
    j["best"] = setting_json(report.results[*report.best].setting);
    j["best"]["perplexity"] = report.results[*report.best].perplexity;
    j["best"]["index"] = *report.best;
  } else {
    j["best"] = nullptr;
  }
  j["output"] = args.output.empty() ? nlohmann::json(nullptr) : nlohmann::json(args.output);
  return j;
}

// The prefix put before the prompt: --prefix, else the one finetune recorded (`record_line` says
// so), else none.
std::string resolve_prefix(std::string& record_line) {
  if (args.prefix) return *args.prefix;
  const auto rec = eval::load_training_record(args.model);
  if (!rec || !rec->prefix) return "";
  record_line = eval::record_used_line(*rec, {{"prefix", eval::quote_text(*rec->prefix)}}) + " (put before the prompt)";
  return *rec->prefix;
}

int run() {
  eval::TuneGrid grid;
  grid.top_k = parse_list<int>(args.top_k, "--top_k");
  grid.top_p = parse_list<float>(args.top_p, "--top_p");
  grid.temperature = parse_list<float>(args.temperature, "--temperature");
  eval::check_grid(grid, args.samples_per_setting);  // before the model is loaded
  if (!args.output.empty()) check_writable(args.output);
  std::string record_line;
  const std::string prefix = resolve_prefix(record_line);
  apply_threads(args.threads);

  auto model = load_model(args.model, args.dtype, args.adapter);
  auto tok = load_tokenizer_for_model(args.model, model->vocab_size());
  if (!tok)
    throw Error("--model: the folder '" + args.model + "' has no tokenizer (vocab.json + merges.txt or tokenizer.json)");
  // As synth: the model was trained on prefix + row, so it is prompted the same way.
  const std::vector<int32_t> prompt_ids = tok->encode(prefix + args.prompt);
  if (prompt_ids.empty()) throw Error("--prompt: the prompt is empty");

  // Model config -> generation_config.json -> the seed's lengths and the flags (HF order).
  eval::TuneOptions opt;
  const ModelConfig& c = model->config();
  opt.generation = generation_defaults(c.eos_token_id, c.bos_token_id, c.pad_token_id, args.model);
  GenerationConfig& g = opt.generation;
  const int max_length_used = args.max_length.value_or(std::min(kSeedMaxLength, model->max_positions()));
  if (args.max_new_tokens) {
    g.max_new_tokens = args.max_new_tokens;
    g.max_length.reset();
  } else {
    g.max_length = max_length_used;
    g.max_new_tokens.reset();
  }
  g.seed = args.seed;
  opt.samples_per_setting = args.samples_per_setting;

  const size_t total = grid.top_k.size() * grid.top_p.size() * grid.temperature.size();
  const eval::TuneReport report = eval::tune(*model, *tok, prompt_ids, grid, opt, [&](size_t i, size_t n, const eval::TuneResult& r) {
    if (i == 0 && !record_line.empty()) std::cerr << record_line << std::endl;  // every check has passed
    if (args.json) return;
    if (i == 0) print_header(n);  // only once every check has passed
    print_row(i, n, r);
  });
  if (!report.best) throw Error("no setting produced a text of at least 2 tokens to score; raise --max_length or --max_new_tokens");
  const eval::TuneResult& best = report.results[*report.best];

  if (!args.output.empty()) {
    const std::string comment = "lmforge tune: best of " + std::to_string(total) + " settings, perplexity " +
                                fixed(best.perplexity) + " (mean of " + std::to_string(best.scored) + " sample(s), seed " +
                                std::to_string(args.seed) + ")\nprompt: " + nlohmann::json(args.prompt).dump() +
                                (prefix.empty() ? "" : ", after the prefix " + nlohmann::json(prefix).dump());
    write_file_atomic(args.output, eval::synth_yaml(best.setting, std::filesystem::absolute(args.model).lexically_normal().string(),
                                                    comment, prefix));
  }
  if (args.json) {
    std::cout << report_json(report, max_length_used, prefix).dump() << "\n";
  } else {
    std::cout << "best: " << setting_text(best.setting) << "  perplexity " << fixed(best.perplexity) << " (setting "
              << *report.best + 1 << " of " << total << ")\n";
  }
  if (!args.output.empty()) std::cerr << "lmforge: wrote " << args.output << "\n";
  return 0;
}

Command command{"tune", "Grid-search top_k x top_p x temperature by the perplexity of sampled text", setup, run};

}  // namespace
}  // namespace lmforge::cli
