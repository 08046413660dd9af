// SynthConfig from YAML and flags: YAML nodes and flag strings both become typed JSON values, so
// one table of setters serves both, and the HF generation keys go through generation_config.h's
// reader unchanged.
#include "lmforge/synth/synth_config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "lmforge/error.h"
#include "lmforge/train/train_config.h"

namespace lmforge::synth {

namespace {

// A key's value as given: its text (for string keys, kept byte-exact) and its YAML reading.
struct Value {
  std::string text;
  nlohmann::json typed;  // null, bool, integer, float, string or (YAML only) array
  std::string where;     // "cfg.yml:7" or "--top_p"
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What YAML 1.1 (yaml-cpp's reading) makes of an unquoted scalar.
nlohmann::json scalar_value(const std::string& s) {
  const std::string l = lower(s);
  if (s.empty() || s == "~" || l == "null") return nullptr;
  if (l == "true" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "no" || l == "off") return false;
  int64_t i = 0;
  const char* end = s.data() + s.size();
  const char* first = s.data() + (s[0] == '+' ? 1 : 0);
  if (auto r = std::from_chars(first, end, i); r.ec == std::errc() && r.ptr == end) return i;
  char* stop = nullptr;
  const double d = std::strtod(s.c_str(), &stop);
  if (stop == s.c_str() + s.size() && std::isfinite(d)) return d;
  return s;
}

std::string where_of(const std::string& file, const YAML::Node& n) {
  const auto m = n.Mark();
  return m.line >= 0 ? file + ":" + std::to_string(m.line + 1) : file;
}

[[noreturn]] void fail(const Value& v, const std::string& key, const std::string& what) {
  throw Error(v.where + ": key '" + key + "' " + what);
}

// ---- typed readers ------------------------------------------------------------------------------

std::string as_string(const Value& v, const std::string& key) {
  if (v.typed.is_array()) fail(v, key, "must be a single value, got a list");
  return v.text;
}

int64_t as_int64(const Value& v, const std::string& key) {
  if (!v.typed.is_number_integer()) fail(v, key, "must be an integer, got '" + v.text + "'");
  return v.typed.get<int64_t>();
}

int as_int(const Value& v, const std::string& key) {
  const int64_t i = as_int64(v, key);
  if (i < INT32_MIN || i > INT32_MAX) fail(v, key, "is out of range: '" + v.text + "'");
  return static_cast<int>(i);
}

bool as_bool(const Value& v, const std::string& key) {
  if (!v.typed.is_boolean()) fail(v, key, "must be true or false, got '" + v.text + "'");
  return v.typed.get<bool>();
}

template <typename Enum>
Enum as_choice(const Value& v, const std::string& key, const std::vector<std::pair<std::string, Enum>>& choices) {
  const std::string s = lower(as_string(v, key));
  std::string names;
  for (const auto& [name, e] : choices) {
    if (name == s) return e;
    names += (names.empty() ? "" : " | ") + name;
  }
  fail(v, key, "must be " + names + ", got '" + v.text + "'");
}

// ---- HF generation keys -------------------------------------------------------------------------

const std::vector<std::string> kGenerationKeys = {
    "do_sample",      "temperature",  "top_k",        "top_p",       "num_beams",    "no_repeat_ngram_size",
    "repetition_penalty", "length_penalty", "early_stopping", "eos_token_id", "pad_token_id", "bos_token_id",
    "stop_strings"};

bool is_generation_key(const std::string& key) {
  return std::find(kGenerationKeys.begin(), kGenerationKeys.end(), key) != kGenerationKeys.end();
}

// The HF keys go through generation_config.h's reader, so its checks and HF's None semantics
// apply exactly as for the model folder's own generation_config.json.
void apply_generation_keys(const nlohmann::json& keys, const std::string& where, GenerationConfig& g) {
  apply_generation_config_json(keys, where, g);
}

void set_generation_key(SynthConfig& c, const std::string& key, const Value& v) {
  const nlohmann::json one = {{key, v.typed}};
  GenerationConfig scratch;
  apply_generation_keys(one, v.where, scratch);  // type errors surface here, with the key's line
  c.generation[key] = v.typed;
}

// ---- the key table ------------------------------------------------------------------------------

using Setter = std::function<void(SynthConfig&, const std::string& key, const Value&)>;

Setter string_member(std::string SynthConfig::*m) {
  return [m](SynthConfig& c, const std::string& k, const Value& v) { c.*m = as_string(v, k); };
}
Setter int_member(int SynthConfig::*m) {
  return [m](SynthConfig& c, const std::string& k, const Value& v) { c.*m = as_int(v, k); };
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = [] {
    std::map<std::string, Setter> t = {
        {"model", string_member(&SynthConfig::model)},
        {"pretrained_model", string_member(&SynthConfig::pretrained_model)},
        {"tokenizer", string_member(&SynthConfig::tokenizer)},
        {"prompt_file", string_member(&SynthConfig::prompt_file)},
        {"prompt_column", string_member(&SynthConfig::prompt_column)},
        {"min_length", int_member(&SynthConfig::min_length)},
        {"max_length_buffer", int_member(&SynthConfig::max_length_buffer)},
        {"prefix", string_member(&SynthConfig::prefix)},
        {"suffix", string_member(&SynthConfig::suffix)},
        {"keep_suffix", [](SynthConfig& c, const std::string& k, const Value& v) { c.keep_suffix = as_bool(v, k); }},
        {"num_samples", int_member(&SynthConfig::num_samples)},
        {"batch_size", int_member(&SynthConfig::batch_size)},
        {"seed",
         [](SynthConfig& c, const std::string& k, const Value& v) {
           const int64_t s = as_int64(v, k);
           if (s < 0) fail(v, k, "must be >= 0, got '" + v.text + "'");
           c.seed = static_cast<uint64_t>(s);
         }},
        {"output", string_member(&SynthConfig::output)},
        {"overwrite_output_dir",
         [](SynthConfig& c, const std::string& k, const Value& v) { c.overwrite_output_dir = as_bool(v, k); }},
        {"format",
         [](SynthConfig& c, const std::string& k, const Value& v) {
           c.format = as_choice<OutputFormat>(
               v, k, {{"json", OutputFormat::Json}, {"jsonl", OutputFormat::Jsonl}, {"csv", OutputFormat::Csv}});
         }},
        {"reference_data", string_member(&SynthConfig::reference_data)},
        {"column", string_member(&SynthConfig::column)},
        {"max_copy_ngram", int_member(&SynthConfig::max_copy_ngram)},
        {"privacy",
         [](SynthConfig& c, const std::string& k, const Value& v) {
           c.privacy = as_choice<PrivacyMode>(v, k, {{"drop", PrivacyMode::Drop}, {"flag", PrivacyMode::Flag}});
         }},
        {"report", string_member(&SynthConfig::report)},
        {"self_bleu_samples", int_member(&SynthConfig::self_bleu_samples)},
        {"threads", int_member(&SynthConfig::threads)},
    };
    for (const auto& key : kGenerationKeys)
      t[key] = [](SynthConfig& c, const std::string& k, const Value& v) { set_generation_key(c, k, v); };
    return t;
  }();
  return table;
}

// HF length keys whose job min_length / max_length_buffer do here.
const std::map<std::string, std::string> kRefusedKeys = {
    {"max_length", "the length is min_length + max_length_buffer generated tokens"},
    {"max_new_tokens", "the length is min_length + max_length_buffer generated tokens"},
    {"min_new_tokens", "use min_length (generated tokens before the suffix)"},
    {"num_return_sequences", "use num_samples"},
};

const std::vector<std::string> kPathKeys = {"model", "pretrained_model", "tokenizer", "prompt_file", "reference_data"};

void set_value(SynthConfig& cfg, const std::string& key, const Value& v) {
  if (auto r = kRefusedKeys.find(key); r != kRefusedKeys.end())
    throw Error(v.where + ": key '" + key + "' is not a synth key: " + r->second);
  const auto& table = setters();
  const auto it = table.find(key);
  if (it == table.end()) {
    const std::string best = closest_match(key, synth_config_keys());
    throw Error(v.where + ": unknown key '" + key + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)"));
  }
  if (v.typed.is_null() && !is_generation_key(key)) return;  // `key:` alone keeps the default
  it->second(cfg, key, v);
  cfg.given.insert(key);
}

// ---- YAML ---------------------------------------------------------------------------------------

Value yaml_value(const YAML::Node& n, const std::string& key, const std::string& where) {
  Value v{"", nullptr, where};
  if (n.IsMap()) throw Error(where + ": key '" + key + "' must be a single value, got a map");
  if (n.IsSequence()) {
    v.typed = nlohmann::json::array();
    for (const auto& e : n) v.typed.push_back(yaml_value(e, key, where).typed);
    v.text = v.typed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // YAML strings may hold any bytes
  } else if (n.IsScalar()) {
    v.text = n.Scalar();
    v.typed = n.Tag() == "!" ? nlohmann::json(v.text) : scalar_value(v.text);  // "!" = quoted
  }
  return v;
}

struct YamlReader {
  std::string file;
  std::filesystem::path folder;
  std::map<std::string, std::string> seen;  // key -> where it was first given

  Value value_of(const YAML::Node& n, const std::string& key) const { return yaml_value(n, key, where_of(file, n)); }

  // A relative path: from the working directory when it exists there, else from the YAML's folder.
  // (A name the OS refuses, e.g. too long, counts as not there: the reader of the file names it.)
  std::string resolve(const std::string& path) const {
    std::error_code ec;
    if (path.empty() || std::filesystem::path(path).is_absolute() || std::filesystem::exists(path, ec)) return path;
    const auto beside = folder / path;
    return std::filesystem::exists(beside, ec) ? beside.string() : path;
  }

  void set(SynthConfig& cfg, const YAML::Node& key_node, const YAML::Node& value) {
    if (!key_node.IsScalar()) throw Error(where_of(file, key_node) + ": keys must be plain names");
    const std::string key = key_node.Scalar();
    const std::string where = where_of(file, key_node);
    if (auto s = seen.find(key); s != seen.end())
      throw Error(where + ": key '" + key + "' is given twice (also at " + s->second + ")");
    seen[key] = where;
    Value v = value_of(value, key);
    if (std::find(kPathKeys.begin(), kPathKeys.end(), key) != kPathKeys.end() && v.typed.is_string())
      v.text = resolve(v.text);
    set_value(cfg, key, v);
  }

  void model_block(SynthConfig& cfg, const YAML::Node& n) {
    if (!n.IsMap()) {
      set(cfg, YAML::Node("model"), n);
      return;
    }
    static const std::vector<std::string> sub = {"path", "pretrained_model", "format"};
    std::string path;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.Scalar();
      const std::string where = where_of(file, it->first);
      if (std::find(sub.begin(), sub.end(), k) == sub.end())
        throw Error(where + ": unknown key 'model." + k + "' (did you mean 'model." + closest_match(k, sub) + "'?)");
      const Value v = value_of(it->second, "model." + k);
      if (v.typed.is_null()) continue;
      if (k == "format" && lower(v.text) != "default")
        throw Error(v.where + ": key 'model.format' is '" + v.text +
                    "': only 'default' (HF checkpoint folders) is supported; point model.path at the fine-tuned HF folder");
      if (k == "path") path = resolve(as_string(v, "model.path"));
      if (k == "pretrained_model") cfg.pretrained_model = resolve(as_string(v, "model.pretrained_model"));
    }
    // As the kit: the fine-tuned `path` is the model; without it, the pretrained one.
    cfg.model = path.empty() ? cfg.pretrained_model : path;
  }

  void root(SynthConfig& cfg, const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull()) return;
    if (!root.IsMap()) throw Error(where_of(file, root) + ": expected a map of settings at the top level");
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      if (key == "version") continue;
      if (key == "model") model_block(cfg, it->second);
      else if (key == "generation") {
        if (!it->second.IsMap() && !it->second.IsNull())
          throw Error(where_of(file, it->second) + ": key 'generation' must be a map");
        if (it->second.IsMap())
          for (auto g = it->second.begin(); g != it->second.end(); ++g) set(cfg, g->first, g->second);
      } else {
        set(cfg, it->first, it->second);
      }
    }
  }
};

}  // namespace

const std::vector<std::string>& synth_config_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const auto& [name, setter] : setters()) k.push_back(name);
    k.push_back("version");
    k.push_back("generation");
    return k;
  }();
  return keys;
}

bool is_bool_key(const std::string& key) {
  return key == "do_sample" || key == "keep_suffix" || key == "overwrite_output_dir";
}

void load_synth_config(const std::filesystem::path& file, SynthConfig& cfg) {
  if (!std::filesystem::is_regular_file(file)) throw Error("--model_config: cannot read '" + file.string() + "'");
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    throw Error(file.string() + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  YamlReader reader{file.string(), file.parent_path(), {}};
  SynthConfig out = cfg;  // all keys or none
  reader.root(out, root);
  cfg = std::move(out);
}

void set_synth_value(SynthConfig& cfg, const std::string& key, const std::string& value, const std::string& where) {
  // A list flag (`--eos_token_id "[13, 50256]"`) is read as YAML flow; anything else as a scalar,
  // its text kept byte-exact for string keys (a prefix such as "|HEADLINE| " is no YAML).
  if (!value.empty() && value.front() == '[') {
    try {
      const YAML::Node n = YAML::Load(value);
      if (n.IsSequence()) return set_value(cfg, key, yaml_value(n, key, where));
    } catch (const YAML::Exception&) {
    }
  }
  // An empty flag value is the empty string (`--prefix ''`: no prefix), not YAML's null that keeps
  // the default; the HF keys keep HF's None reading.
  if (value.empty() && !is_generation_key(key)) return set_value(cfg, key, Value{value, std::string(), where});
  set_value(cfg, key, Value{value, scalar_value(value), where});
}

std::vector<std::pair<std::string, std::string>> apply_training_record(SynthConfig& cfg,
                                                                       const eval::TrainingRecord& record) {
  std::vector<std::pair<std::string, std::string>> taken;
  auto take = [&](const char* key, const std::optional<std::string>& recorded, std::string& target) {
    if (!recorded || cfg.given.count(key)) return;
    target = *recorded;
    taken.emplace_back(key, eval::quote_text(*recorded));
  };
  take("prefix", record.prefix, cfg.prefix);
  take("suffix", record.suffix, cfg.suffix);
  return taken;
}

// ---- output files -------------------------------------------------------------------------------

namespace {

std::string read_all(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool is_rows_json(const nlohmann::json& j) {
  if (!j.is_array()) return false;
  for (const auto& entry : j)
    if (!entry.is_object() || !entry.contains("sentences") || !entry["sentences"].is_array()) return false;
  return true;
}

bool is_rows_jsonl(const std::string& content) {
  std::istringstream lines(content);
  bool any = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("prompt") || !j.contains("text")) return false;
    any = true;
  }
  return any;
}

bool is_rows_csv(const std::string& content) {
  std::string header = content.substr(0, content.find('\n'));
  if (!header.empty() && header.back() == '\r') header.pop_back();
  return header == "prompt,text,tokens,stop" || header == "prompt,text,tokens,stop,privacy";
}

void check_output_file(const std::string& path, const std::string& key, bool overwrite,
                       bool (*is_ours)(const std::string&), const char* what) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  const fs::path p(path);
  if (fs::is_directory(p)) throw Error(key + ": '" + path + "' is a folder, not a file");
  const fs::path folder = p.parent_path().empty() ? "." : p.parent_path();
  if (!fs::is_directory(folder))
    throw Error(key + ": cannot write '" + path + "': folder '" + folder.string() + "' does not exist");
  if (access(folder.c_str(), W_OK) != 0) throw Error(key + ": cannot write '" + path + "': folder is not writable");
  std::error_code ec;
  if (!fs::exists(p, ec) || overwrite) return;
  if (!fs::is_regular_file(p, ec))
    throw Error(key + ": '" + path + "' exists and is not a regular file; pass --overwrite_output_dir to replace it");
  if (fs::file_size(p, ec) == 0) return;  // nothing to lose
  if (access(p.c_str(), R_OK) == 0 && is_ours(read_all(p))) return;
  throw Error(key + ": '" + path + "' exists and is not an earlier `lmforge synth` " + what +
              "; pass --overwrite_output_dir to replace it");
}

}  // namespace

bool is_synth_rows_output(const std::string& content) {
  if (is_rows_csv(content)) return true;
  const nlohmann::json whole = nlohmann::json::parse(content, nullptr, false);
  if (!whole.is_discarded()) return is_rows_json(whole) || (whole.is_object() && is_rows_jsonl(content));
  return is_rows_jsonl(content);
}

bool is_synth_report_output(const std::string& content) {
  const nlohmann::json j = nlohmann::json::parse(content, nullptr, false);
  return j.is_object() && j.contains("rows") && j["rows"].is_object() && j["rows"].contains("generated") &&
         j["rows"].contains("kept") && j.contains("self_bleu");
}

void check_output_files(const SynthConfig& cfg) {
  namespace fs = std::filesystem;
  if (!cfg.output.empty() && !cfg.report.empty()) {
    std::error_code ec;
    if (cfg.output == cfg.report || fs::equivalent(cfg.output, cfg.report, ec))
      throw Error("report: '" + cfg.report + "' is also the output file; give two different files");
  }
  check_output_file(cfg.output, "output", cfg.overwrite_output_dir, is_synth_rows_output, "output (rows)");
  check_output_file(cfg.report, "report", cfg.overwrite_output_dir, is_synth_report_output, "report");
}

void validate(const SynthConfig& c) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw Error(message);
  };
  require(!c.model.empty(), "no model: set model.path in --model_config or give --model");
  require(c.min_length >= 0, "min_length must be >= 0 (got " + std::to_string(c.min_length) + ")");
  require(c.max_length_buffer >= 0,
          "min_length (" + std::to_string(c.min_length) + ") is greater than the max length min_length + max_length_buffer (" +
              std::to_string(c.max_new_tokens()) + "): max_length_buffer must be >= 0");
  require(c.max_new_tokens() >= 1, "the max length min_length + max_length_buffer must be >= 1 (got 0)");
  require(c.num_samples >= 1, "num_samples must be >= 1 (got " + std::to_string(c.num_samples) + ")");
  require(c.batch_size >= 1, "batch_size must be >= 1 (got " + std::to_string(c.batch_size) + ")");
  require(c.max_copy_ngram >= 1, "max_copy_ngram must be >= 1 (got " + std::to_string(c.max_copy_ngram) + ")");
  require(c.self_bleu_samples >= 1, "self_bleu_samples must be >= 1 (got " + std::to_string(c.self_bleu_samples) + ")");
  require(!c.column.empty(), "column must not be empty");
  require(c.reference_data.empty() || std::filesystem::is_regular_file(c.reference_data),
          "reference_data: cannot read '" + c.reference_data + "'");
}

GenerationConfig generation_config(const SynthConfig& cfg, const ModelConfig& model, std::optional<int32_t> suffix_id) {
  GenerationConfig g = generation_defaults(model.eos_token_id, model.bos_token_id, model.pad_token_id, cfg.model);
  // Seed 000 samples from the full softmax (torch.multinomial), so HF's top_k 50 is switched off.
  g.do_sample = true;
  g.top_k = 0;
  if (!cfg.generation.empty()) apply_generation_keys(cfg.generation, "generation keys", g);

  g.min_new_tokens = cfg.min_length;
  g.max_new_tokens = cfg.max_new_tokens();
  if (suffix_id) {
    if (std::find(g.eos_token_id.begin(), g.eos_token_id.end(), *suffix_id) == g.eos_token_id.end())
      g.eos_token_id.push_back(*suffix_id);
  } else if (!cfg.suffix.empty()) {
    g.stop_strings.push_back(cfg.suffix);
  }
  if (!g.pad_token_id && !g.eos_token_id.empty()) g.pad_token_id = g.eos_token_id.front();  // HF's fallback
  // Beam search returns its num_samples best beams; sampling and greedy repeat the prompt instead.
  if (g.num_beams > 1) g.num_return_sequences = cfg.num_samples;
  g.seed = cfg.seed;
  try {
    g.validate();
  } catch (const Error& e) {
    const std::string m = e.what();
    if (m.rfind("--num_return_sequences", 0) == 0)
      throw Error("num_samples (" + std::to_string(cfg.num_samples) + ") must be <= num_beams (" +
                  std::to_string(g.num_beams) + ") with beam search");
    throw;
  }
  return g;
}

const char* to_string(OutputFormat f) {
  static constexpr const char* kNames[] = {"json", "jsonl", "csv"};  // in enum order
  return kNames[static_cast<int>(f)];
}

const char* to_string(PrivacyMode m) { return m == PrivacyMode::Flag ? "flag" : "drop"; }

}  // namespace lmforge::synth
