// GenerationConfig::validate() and generation_config.json loading, with HF's names in every message.
#include <climits>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/generate/generation_config.h"

namespace lmforge {

namespace {

std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

void require(bool ok, const std::string& message) {
  if (!ok) throw Error(message);
}

}  // namespace

void GenerationConfig::validate() const {
  if (max_length) require(*max_length >= 1, "--max_length must be >= 1 (got " + std::to_string(*max_length) + ")");
  if (max_new_tokens)
    require(*max_new_tokens >= 1, "--max_new_tokens must be >= 1 (got " + std::to_string(*max_new_tokens) + ")");
  require(min_length >= 0, "--min_length must be >= 0 (got " + std::to_string(min_length) + ")");
  if (min_new_tokens)
    require(*min_new_tokens >= 0, "--min_new_tokens must be >= 0 (got " + std::to_string(*min_new_tokens) + ")");

  require(num_beams >= 1, "--num_beams must be >= 1 (got " + std::to_string(num_beams) + ")");
  require(num_return_sequences >= 1,
          "--num_return_sequences must be >= 1 (got " + std::to_string(num_return_sequences) + ")");
  if (num_beams == 1)
    require(do_sample || num_return_sequences == 1,
            "--num_return_sequences " + std::to_string(num_return_sequences) +
                " needs --do_sample or --num_beams >= it (greedy search returns one sequence per prompt)");
  else
    require(num_return_sequences <= num_beams, "--num_return_sequences (" + std::to_string(num_return_sequences) +
                                                   ") must be <= --num_beams (" + std::to_string(num_beams) +
                                                   ") for beam search");
  require(std::isfinite(length_penalty), "--length_penalty must be a finite number");

  if (do_sample)
    require(std::isfinite(temperature) && temperature > 0.0f,
            "--temperature must be > 0 when --do_sample is set (got " + num(temperature) + ")");
  require(top_k >= 0, "--top_k must be >= 0 (0 disables it; got " + std::to_string(top_k) + ")");
  require(top_p > 0.0f && top_p <= 1.0f, "--top_p must be in (0, 1] (got " + num(top_p) + ")");
  require(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f,
          "--repetition_penalty must be > 0 (got " + num(repetition_penalty) + ")");
  require(no_repeat_ngram_size >= 0,
          "--no_repeat_ngram_size must be >= 0 (got " + std::to_string(no_repeat_ngram_size) + ")");

  for (int32_t e : eos_token_id) require(e >= 0, "--eos_token_id must be >= 0 (got " + std::to_string(e) + ")");
  if (pad_token_id) require(*pad_token_id >= 0, "--pad_token_id must be >= 0 (got " + std::to_string(*pad_token_id) + ")");
  if (bos_token_id) require(*bos_token_id >= 0, "--bos_token_id must be >= 0 (got " + std::to_string(*bos_token_id) + ")");
  for (const auto& s : stop_strings) require(!s.empty(), "--stop_strings must not contain an empty string");
  // A constrained row ends with eos once its output is complete (or has no way on).
  if (constraint)
    require(!eos_token_id.empty(),
            "structured output (--regex / --grammar / --json_schema / --json_object) needs an eos token: set --eos_token_id");
}

namespace {

// Typed readers for one key of a generation_config.json; `where` is "<file>: key '<name>'".
struct KeyReader {
  const nlohmann::json& v;
  std::string where;

  [[noreturn]] void fail(const char* expected) const {
    // (keys from a YAML file may hold any bytes: dump() would throw on invalid UTF-8)
    throw Error(where + " must be " + expected + " (got " + v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ")");
  }
  int integer() const {
    if (!v.is_number_integer()) fail("an integer");
    const auto x = v.get<int64_t>();
    if (x < INT32_MIN || x > INT32_MAX) fail("a 32-bit integer");
    return static_cast<int>(x);
  }
  float number() const {
    if (!v.is_number()) fail("a number");
    return v.get<float>();
  }
  bool boolean() const {
    if (!v.is_boolean()) fail("true or false");
    return v.get<bool>();
  }
  std::vector<int32_t> int_list() const {  // HF: an int or a list of ints
    if (v.is_number_integer()) return {integer()};
    if (!v.is_array()) fail("an integer or a list of integers");
    std::vector<int32_t> out;
    for (const auto& e : v) out.push_back(KeyReader{e, where}.integer());
    return out;
  }
  std::vector<std::string> string_list() const {  // HF: a string or a list of strings
    if (v.is_string()) return {v.get<std::string>()};
    if (!v.is_array()) fail("a string or a list of strings");
    std::vector<std::string> out;
    for (const auto& e : v) {
      if (!e.is_string()) KeyReader{e, where}.fail("a string or a list of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  EarlyStopping early_stopping() const {
    if (v.is_boolean()) return v.get<bool>() ? EarlyStopping::True : EarlyStopping::False;
    if (v.is_string() && v.get<std::string>() == "never") return EarlyStopping::Never;
    fail("true, false or \"never\"");
  }
};

// One key. null means HF's None: the setting is off / at its default.
void apply_key(const std::string& key, const KeyReader& r, GenerationConfig& cfg) {
  const GenerationConfig defaults;
  const bool null = r.v.is_null();
  if (key == "max_length") cfg.max_length = null ? std::nullopt : std::optional<int>(r.integer());
  else if (key == "max_new_tokens") cfg.max_new_tokens = null ? std::nullopt : std::optional<int>(r.integer());
  else if (key == "min_length") cfg.min_length = null ? 0 : r.integer();
  else if (key == "min_new_tokens") cfg.min_new_tokens = null ? std::nullopt : std::optional<int>(r.integer());
  else if (key == "do_sample") cfg.do_sample = null ? false : r.boolean();
  else if (key == "num_beams") cfg.num_beams = null ? 1 : r.integer();
  else if (key == "num_return_sequences") cfg.num_return_sequences = null ? 1 : r.integer();
  else if (key == "length_penalty") cfg.length_penalty = null ? defaults.length_penalty : r.number();
  else if (key == "early_stopping") cfg.early_stopping = null ? EarlyStopping::False : r.early_stopping();
  else if (key == "temperature") cfg.temperature = null ? 1.0f : r.number();
  else if (key == "top_k") cfg.top_k = null ? 0 : r.integer();  // HF: top_k None -> no top-k warper
  else if (key == "top_p") cfg.top_p = null ? 1.0f : r.number();
  else if (key == "repetition_penalty") cfg.repetition_penalty = null ? 1.0f : r.number();
  else if (key == "no_repeat_ngram_size") cfg.no_repeat_ngram_size = null ? 0 : r.integer();
  else if (key == "eos_token_id") cfg.eos_token_id = null ? std::vector<int32_t>{} : r.int_list();
  else if (key == "pad_token_id") cfg.pad_token_id = null ? std::nullopt : std::optional<int32_t>(r.integer());
  else if (key == "bos_token_id") cfg.bos_token_id = null ? std::nullopt : std::optional<int32_t>(r.integer());
  else if (key == "stop_strings") cfg.stop_strings = null ? std::vector<std::string>{} : r.string_list();
  // Every other key (transformers_version, _from_model_config, ...) is not ours to interpret.
}

// "'<file>'" (built with append: GCC 12 warns falsely on "'" + std::string).
std::string quoted(const std::filesystem::path& file) {
  std::string q(1, '\'');
  q.append(file.string()).push_back('\'');
  return q;
}

}  // namespace

void apply_generation_config_file(const std::filesystem::path& file, GenerationConfig& cfg) {
  const std::string name = quoted(file);
  std::ifstream in(file);
  if (!in) throw Error("cannot open generation config " + name);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number past double
    throw Error(name + " is not valid JSON: " + e.what());
  }
  apply_generation_config_json(j, name, cfg);
}

void apply_generation_config_json(const nlohmann::json& j, const std::string& where, GenerationConfig& cfg) {
  if (!j.is_object()) throw Error(where + " must hold a JSON object");
  GenerationConfig out = cfg;  // all keys or none: a bad key leaves `cfg` untouched
  for (const auto& [key, value] : j.items())
    apply_key(key, KeyReader{value, where + ": key '" + key + "'"}, out);
  cfg = std::move(out);
}

GenerationConfig generation_defaults(std::optional<int> eos_token_id, std::optional<int> bos_token_id,
                                     std::optional<int> pad_token_id, const std::filesystem::path& model_dir) {
  GenerationConfig g;
  if (eos_token_id) g.eos_token_id = {*eos_token_id};
  g.bos_token_id = bos_token_id;
  g.pad_token_id = pad_token_id;
  const auto file = model_dir / "generation_config.json";
  if (std::filesystem::exists(file)) apply_generation_config_file(file, g);
  return g;
}

}  // namespace lmforge
