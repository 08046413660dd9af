// Decoding grid search, seed 001's tune_hyperparameters (see include/lmforge/eval/tune.h).
#include "lmforge/eval/tune.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "generate/plan.h"
#include "lmforge/error.h"
#include "lmforge/generate/generate.h"
#include "lmforge/generate/language_model.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

GenerationConfig setting_config(const GenerationConfig& base, const TuneSetting& s, int samples) {
  GenerationConfig g = base;
  g.do_sample = true;
  g.num_beams = 1;
  g.num_return_sequences = samples;
  g.top_k = s.top_k;
  g.top_p = s.top_p;
  g.temperature = s.temperature;
  return g;
}

void require_values(size_t n, const char* flag) {
  if (n == 0) throw Error(std::string(flag) + ": the grid needs at least one value");
}

// Scores one generated row as the seed does: decode (skip special tokens), re-encode, perplexity.
TuneSample score_row(const LanguageModel& model, const Tokenizer& tokenizer, const std::vector<int32_t>& row,
                     size_t prompt_length, const gen::GenerationPlan& plan, const TuneOptions& options) {
  TuneSample s;
  size_t end = prompt_length;
  while (end < row.size() && !plan.is_eos(row[end])) ++end;
  if (end < row.size()) ++end;  // keep the EOS (decode drops it), not the padding after it
  s.sequence.assign(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(end));
  const std::vector<int32_t> generated(s.sequence.begin() + static_cast<std::ptrdiff_t>(prompt_length), s.sequence.end());
  s.continuation = tokenizer.decode(generated, true, options.clean_up_tokenization_spaces);
  s.text = tokenizer.decode(s.sequence, true, options.clean_up_tokenization_spaces);
  const std::vector<int32_t> ids = tokenizer.encode(s.text);
  if (ids.size() < 2) {
    s.perplexity = kNaN;
    return s;
  }
  const PerplexityResult r = perplexity(model, ids, options.perplexity);
  s.tokens = r.tokens;
  s.nll_sum = r.nll_sum;
  s.perplexity = r.perplexity;
  return s;
}

}  // namespace

std::vector<TuneSetting> grid_settings(const TuneGrid& grid) {
  std::vector<TuneSetting> out;
  out.reserve(grid.top_k.size() * grid.top_p.size() * grid.temperature.size());
  for (int k : grid.top_k)
    for (float p : grid.top_p)
      for (float t : grid.temperature) out.push_back({k, p, t});
  return out;
}

void check_grid(const TuneGrid& grid, int samples_per_setting) {
  require_values(grid.top_k.size(), "--top_k");
  require_values(grid.top_p.size(), "--top_p");
  require_values(grid.temperature.size(), "--temperature");
  if (samples_per_setting < 1)
    throw Error("--samples_per_setting must be >= 1 (got " + std::to_string(samples_per_setting) + ")");
  for (const TuneSetting& s : grid_settings(grid)) setting_config({}, s, samples_per_setting).validate();
}

TuneReport tune(const LanguageModel& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt_ids,
                const TuneGrid& grid, const TuneOptions& options,
                const std::function<void(size_t, size_t, const TuneResult&)>& on_result) {
  check_grid(grid, options.samples_per_setting);
  if (prompt_ids.empty()) throw Error("--prompt: the prompt is empty");

  // Check every setting (and the lengths against the context) before generating anything.
  const std::vector<TuneSetting> settings = grid_settings(grid);
  const std::vector<std::vector<int32_t>> prompts{prompt_ids};
  std::vector<gen::GenerationPlan> plans;
  plans.reserve(settings.size());
  for (const TuneSetting& s : settings) {
    plans.push_back(gen::resolve_plan(setting_config(options.generation, s, options.samples_per_setting),
                                      static_cast<int>(prompt_ids.size())));
    gen::check_fits_model(plans.back(), model, prompts);
  }

  TuneReport report;
  report.results.reserve(settings.size());
  for (size_t i = 0; i < settings.size(); ++i) {
    const GenerationOutput out = generate(model, prompts, plans[i].cfg);
    TuneResult r;
    r.setting = settings[i];
    double ppl_sum = 0, nll_sum = 0;
    int64_t tokens = 0;
    for (const auto& row : out.sequences) {
      r.samples.push_back(score_row(model, tokenizer, row, static_cast<size_t>(out.prompt_length), plans[i], options));
      const TuneSample& s = r.samples.back();
      if (s.tokens == 0) continue;
      ++r.scored;
      ppl_sum += s.perplexity;
      nll_sum += s.nll_sum;
      tokens += s.tokens;
    }
    r.perplexity = r.scored > 0 ? ppl_sum / r.scored : kNaN;
    r.pooled_perplexity = tokens > 0 ? std::exp(nll_sum / static_cast<double>(tokens)) : kNaN;
    // Strictly lower wins, so a tie keeps the earlier setting; NaN never compares lower.
    if (r.scored > 0 && (!report.best || r.perplexity < report.results[*report.best].perplexity)) report.best = i;
    report.results.push_back(std::move(r));
    if (on_result) on_result(i, settings.size(), report.results.back());
  }
  return report;
}

std::string format_float(float v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  if (std::isfinite(v) && s.find_first_of(".e") == std::string::npos) s += ".0";  // 1 -> 1.0: still a float in YAML
  return s;
}

namespace {
// `text` as a JSON string, which is also a YAML double-quoted scalar. Linux paths are bytes, YAML
// is UTF-8: a path that is not UTF-8 cannot be written (nlohmann would throw its own type_error).
std::string yaml_quoted(const std::string& text, const std::string& what) {
  try {
    return nlohmann::json(text).dump();
  } catch (const nlohmann::json::type_error&) {
    throw Error(what + " is not valid UTF-8, which the YAML file cannot hold: '" + nlohmann::json(text).dump(
                    -1, ' ', false, nlohmann::json::error_handler_t::replace) + "'");
  }
}
}  // namespace

std::string synth_yaml(const TuneSetting& best, const std::string& model_path, const std::string& comment,
                       const std::string& prefix) {
  std::ostringstream y;
  if (!comment.empty()) {
    std::istringstream lines(comment);
    for (std::string line; std::getline(lines, line);) y << "# " << line << "\n";
  }
  // A JSON string is a valid YAML double-quoted scalar: any path survives (':', '#', spaces, ...).
  y << "model:\n  path: " << yaml_quoted(model_path, "the model path") << "\n"
    << "do_sample: true\n"
    << "top_k: " << best.top_k << "\n"
    << "top_p: " << format_float(best.top_p) << "\n"
    << "temperature: " << format_float(best.temperature) << "\n";
  if (!prefix.empty()) y << "prefix: " << yaml_quoted(prefix, "--prefix") << "\n";
  return y.str();
}

}  // namespace lmforge::eval
