// TrainConfig from YAML (yaml-cpp) and from flag values, with strict keys and types.
#include "lmforge/train/train_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>

#include "io/io_util.h"
#include "lmforge/error.h"
#include "lmforge/train/run_clm.h"

namespace lmforge {

namespace {

std::string at(const std::string& where, const YAML::Node& n) {
  const auto m = n.Mark();
  return m.line >= 0 ? where + ":" + std::to_string(m.line + 1) : where;
}

std::string shown(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  return "'" + io::printable(n.Scalar(), 80) + "'";
}

[[noreturn]] void type_error(const std::string& where, const std::string& key, const YAML::Node& n, const char* type) {
  io::fail(at(where, n), "key '" + key + "' must be " + type + ", got " + shown(n));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string get_string(const YAML::Node& n, const std::string& key, const std::string& where) {
  if (!n.IsScalar()) type_error(where, key, n, "a string");
  return n.Scalar();
}

template <typename Int>
Int get_int(const YAML::Node& n, const std::string& key, const std::string& where) {
  if (!n.IsScalar()) type_error(where, key, n, "an integer");
  std::string s = n.Scalar();
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  Int v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) {
    if (r.ec == std::errc::result_out_of_range) io::fail(at(where, n), "key '" + key + "' is out of range: " + shown(n));
    type_error(where, key, n, std::is_unsigned_v<Int> ? "a non-negative integer" : "an integer");
  }
  return v;
}

double get_double(const YAML::Node& n, const std::string& key, const std::string& where) {
  if (!n.IsScalar()) type_error(where, key, n, "a number");
  const std::string& s = n.Scalar();
  char* end = nullptr;
  const double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) type_error(where, key, n, "a finite number");
  return v;
}

bool get_bool(const YAML::Node& n, const std::string& key, const std::string& where) {
  if (!n.IsScalar()) type_error(where, key, n, "true or false");
  const std::string s = lower(n.Scalar());
  if (s == "true" || s == "yes" || s == "on" || s == "y") return true;
  if (s == "false" || s == "no" || s == "off" || s == "n") return false;
  type_error(where, key, n, "true or false");
}

// ---- the key table ---------------------------------------------------------------------------

using Setter = std::function<void(TrainConfig&, const YAML::Node&, const std::string& key, const std::string& where)>;

struct KeySpec {
  std::string name;
  Setter set;
  std::string alias_of;  // non-empty for an alias
};

template <typename T>
Setter str_member(T TrainConfig::*m) {
  return [m](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) { c.*m = get_string(n, k, w); };
}
template <typename T>
Setter int_member(T TrainConfig::*m) {
  return [m](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) { c.*m = get_int<T>(n, k, w); };
}
Setter opt_int_member(std::optional<int> TrainConfig::*m) {
  return [m](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) { c.*m = get_int<int>(n, k, w); };
}
Setter double_member(double TrainConfig::*m) {
  return [m](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) { c.*m = get_double(n, k, w); };
}
Setter bool_member(bool TrainConfig::*m) {
  return [m](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) { c.*m = get_bool(n, k, w); };
}

// lora_r, lora_alpha, lora_dropout and lora_target switch LoRA on (an explicit `lora` wins: apply_root).
Setter implies_lora(Setter set) {
  return [set](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) {
    set(c, n, k, w);
    c.lora = true;
  };
}

// Module names from a YAML list or a comma-separated string ("q_proj, v_proj"); spaces around a
// name are dropped, and so are empty names ("" = the architecture's default).
void set_lora_target(TrainConfig& c, const YAML::Node& n, const std::string& key, const std::string& where) {
  std::vector<std::string> items;
  if (n.IsSequence()) {
    for (const auto& item : n) items.push_back(get_string(item, key, where));
  } else if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    for (size_t b = 0, e; b <= s.size(); b = e + 1) {
      e = s.find(',', b);
      if (e == std::string::npos) e = s.size();
      items.push_back(s.substr(b, e - b));
    }
  } else {
    type_error(where, key, n, "a list of module names or a comma-separated string");
  }
  c.lora_target.clear();
  for (auto& item : items) {
    size_t b = 0, e = item.size();
    while (b < e && std::isspace(static_cast<unsigned char>(item[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(item[e - 1]))) --e;
    if (e > b) c.lora_target.push_back(item.substr(b, e - b));
  }
}

IntervalStrategy get_strategy(const YAML::Node& n, const std::string& key, const std::string& where) {
  const std::string v = lower(get_string(n, key, where));
  if (v == "steps") return IntervalStrategy::Steps;
  if (v == "epoch") return IntervalStrategy::Epoch;
  if (v == "no") return IntervalStrategy::No;
  type_error(where, key, n, "'steps', 'epoch' or 'no'");
}

Setter opt_bool_member(std::optional<bool> TrainConfig::*m) {
  return [m](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) { c.*m = get_bool(n, k, w); };
}

void set_model(TrainConfig& c, const YAML::Node& n, const std::string& key, const std::string& where);
void set_generation(TrainConfig& c, const YAML::Node& n, const std::string& key, const std::string& where);

const std::vector<KeySpec>& key_specs() {
  static const std::vector<KeySpec> specs = [] {
    std::vector<KeySpec> s = {
        {"model", set_model, ""},
        {"data_path", str_member(&TrainConfig::data_path), ""},
        {"save_path", str_member(&TrainConfig::save_path), ""},
        {"tokenizer", str_member(&TrainConfig::tokenizer), ""},
        {"resume_from_checkpoint", str_member(&TrainConfig::resume_from_checkpoint), ""},
        {"validation_file", str_member(&TrainConfig::validation_file), ""},
        {"overwrite_output_dir", bool_member(&TrainConfig::overwrite_output_dir), ""},
        {"text_column", str_member(&TrainConfig::text_column), ""},
        {"prefix", str_member(&TrainConfig::prefix), ""},
        {"suffix", str_member(&TrainConfig::suffix), ""},
        {"response_template", str_member(&TrainConfig::response_template), ""},
        {"max_rows", int_member(&TrainConfig::max_rows), ""},
        {"sample",
         [](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) {
           const std::string v = lower(get_string(n, k, w));
           if (v == "first") c.sample = SampleMode::First;
           else if (v == "random") c.sample = SampleMode::Random;
           else type_error(w, k, n, "'first' or 'random'");
         },
         ""},
        {"validation_fraction", double_member(&TrainConfig::validation_fraction), ""},
        {"packing", bool_member(&TrainConfig::packing), ""},
        {"block_size", int_member(&TrainConfig::block_size), ""},
        {"run_clm", bool_member(&TrainConfig::run_clm), ""},
        {"do_train", opt_bool_member(&TrainConfig::do_train), ""},
        {"do_eval", opt_bool_member(&TrainConfig::do_eval), ""},
        {"num_epochs", int_member(&TrainConfig::num_epochs), ""},
        {"max_steps", int_member(&TrainConfig::max_steps), ""},
        {"lr", double_member(&TrainConfig::lr), ""},
        {"per_device_train_batch_size", int_member(&TrainConfig::per_device_train_batch_size), ""},
        {"gradient_accumulation_steps", int_member(&TrainConfig::gradient_accumulation_steps), ""},
        {"zero_stage", int_member(&TrainConfig::zero_stage), ""},
        {"warmup_steps", int_member(&TrainConfig::warmup_steps), ""},
        {"weight_decay", double_member(&TrainConfig::weight_decay), ""},
        {"max_grad_norm", double_member(&TrainConfig::max_grad_norm), ""},
        {"seed", int_member(&TrainConfig::seed), ""},
        {"bfloat16", bool_member(&TrainConfig::bfloat16), ""},
        {"fp16", bool_member(&TrainConfig::fp16), ""},
        {"logging_steps", int_member(&TrainConfig::logging_steps), ""},
        {"evaluation_strategy",
         [](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) {
           c.evaluation_strategy = get_strategy(n, k, w);
         },
         ""},
        {"eval_steps", int_member(&TrainConfig::eval_steps), ""},
        {"save_strategy",
         [](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) {
           c.save_strategy = get_strategy(n, k, w);
         },
         ""},
        {"save_steps", int_member(&TrainConfig::save_steps), ""},
        {"save_total_limit", int_member(&TrainConfig::save_total_limit), ""},
        {"save_only_model", bool_member(&TrainConfig::save_only_model), ""},
        {"init",
         [](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) {
           const std::string v = lower(get_string(n, k, w));
           if (v == "pretrained") c.init = InitMode::Pretrained;
           else if (v == "random") c.init = InitMode::Random;
           else type_error(w, k, n, "'pretrained' or 'random'");
         },
         ""},
        {"n_layer", opt_int_member(&TrainConfig::n_layer), ""},
        {"n_embd", opt_int_member(&TrainConfig::n_embd), ""},
        {"n_head", opt_int_member(&TrainConfig::n_head), ""},
        {"n_positions", opt_int_member(&TrainConfig::n_positions), ""},
        {"lora", bool_member(&TrainConfig::lora), ""},
        {"lora_r", implies_lora(int_member(&TrainConfig::lora_r)), ""},
        {"lora_alpha", implies_lora(double_member(&TrainConfig::lora_alpha)), ""},
        {"lora_dropout", implies_lora(double_member(&TrainConfig::lora_dropout)), ""},
        {"lora_target", implies_lora(set_lora_target), ""},
        {"base_dtype", str_member(&TrainConfig::base_dtype), ""},
        {"gradient_checkpointing", bool_member(&TrainConfig::gradient_checkpointing), ""},
        {"overwrite_cache", bool_member(&TrainConfig::overwrite_cache), ""},
        {"use_fast_tokenizer", bool_member(&TrainConfig::use_fast_tokenizer), ""},
        {"deepspeed", str_member(&TrainConfig::deepspeed), ""},
        {"generation", set_generation, ""},
        {"version", [](TrainConfig&, const YAML::Node&, const std::string&, const std::string&) {}, ""},
    };
    // HF TrainingArguments and run_clm.py spellings.
    const std::pair<const char*, const char*> aliases[] = {
        {"learning_rate", "lr"},         {"num_train_epochs", "num_epochs"}, {"output_dir", "save_path"},
        {"bf16", "bfloat16"},            {"model_name_or_path", "model"},    {"tokenizer_name", "tokenizer"},
        {"eval_strategy", "evaluation_strategy"}};
    for (const auto& pair : aliases) {
      const char* target = pair.second;  // (clang 14 cannot capture a structured binding)
      auto it = std::find_if(s.begin(), s.end(), [&](const KeySpec& k) { return k.name == target; });
      s.push_back({pair.first, it->set, target});
    }
    // run_clm.py's --train_file: the data file, read by run_clm.py's pipeline.
    s.push_back({"train_file",
                 [](TrainConfig& c, const YAML::Node& n, const std::string& k, const std::string& w) {
                   c.data_path = get_string(n, k, w);
                   c.run_clm = true;
                 },
                 "data_path"});
    return s;
  }();
  return specs;
}

std::vector<std::string> names_of(const std::vector<KeySpec>& specs) {
  std::vector<std::string> out;
  for (const auto& k : specs) out.push_back(k.name);
  return out;
}

[[noreturn]] void unknown_key(const std::string& where, const YAML::Node& key_node, const std::string& shown_key,
                              const std::string& key, const std::vector<std::string>& valid, const std::string& prefix) {
  const std::string best = closest_match(key, valid);
  io::fail(at(where, key_node), "unknown key '" + io::printable(shown_key) + "'" +
                                    (best.empty() ? "" : " (did you mean '" + prefix + best + "'?)"));
}

void check_map(const YAML::Node& n, const std::string& key, const std::string& where) {
  if (!n.IsMap()) type_error(where, key, n, "a map");
}

// `model:` is either the folder (the flag's form) or the reference kit's block.
void set_model(TrainConfig& c, const YAML::Node& n, const std::string& key, const std::string& where) {
  if (n.IsScalar()) {
    c.model = n.Scalar();
    return;
  }
  if (!n.IsMap()) type_error(where, key, n, "a folder name or a map with 'path' / 'pretrained_model'");
  static const std::vector<std::string> sub = {"path", "pretrained_model", "format"};
  std::string path, pretrained;
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string k = it->first.Scalar();
    const YAML::Node v = it->second;
    if (std::find(sub.begin(), sub.end(), k) == sub.end()) unknown_key(where, it->first, key + "." + k, k, sub, key + ".");
    if (v.IsNull()) continue;
    if (k == "path") path = get_string(v, key + ".path", where);
    else if (k == "pretrained_model") pretrained = get_string(v, key + ".pretrained_model", where);
    else if (k == "format") {
      const std::string f = get_string(v, key + ".format", where);
      if (f != "default")
        io::fail(at(where, v), "key '" + key + ".format' is '" + io::printable(f) +
                                   "': only 'default' (HF folders) can be fine-tuned");
    }
  }
  if (!pretrained.empty()) c.pretrained_model = pretrained;
  if (!path.empty()) c.model = path;
  else if (!pretrained.empty()) c.model = pretrained;
}

void set_generation(TrainConfig& c, const YAML::Node& n, const std::string& key, const std::string& where) {
  check_map(n, key, where);
  static const std::vector<std::string> sub = {"prompt_file", "min_length", "max_length_buffer"};
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string k = it->first.Scalar();
    const YAML::Node v = it->second;
    if (std::find(sub.begin(), sub.end(), k) == sub.end()) unknown_key(where, it->first, key + "." + k, k, sub, key + ".");
    if (v.IsNull()) continue;
    const std::string full = key + "." + k;
    if (k == "prompt_file") c.generation.prompt_file = get_string(v, full, where);
    else if (k == "min_length") c.generation.min_length = get_int<int>(v, full, where);
    else c.generation.max_length_buffer = get_int<int>(v, full, where);
  }
}

const KeySpec* find_key(const std::string& name) {
  for (const auto& k : key_specs())
    if (k.name == name) return &k;
  return nullptr;
}

void apply_root(const YAML::Node& root, const std::string& where, TrainConfig& cfg) {
  if (!root.IsDefined() || root.IsNull()) return;  // an empty file: nothing to set
  if (!root.IsMap()) io::fail(at(where, root), "expected a map of settings at the top level, got " + shown(root));
  std::map<std::string, std::string> seen;  // canonical name -> key as written
  std::optional<YAML::Node> lora_node;       // an explicit `lora:` wins over the keys that imply it
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!it->first.IsScalar()) io::fail(at(where, it->first), "keys must be plain names");
    const std::string k = it->first.Scalar();
    const KeySpec* spec = find_key(k);
    if (spec == nullptr) unknown_key(where, it->first, k, k, train_config_keys(), "");
    const std::string canonical = spec->alias_of.empty() ? spec->name : spec->alias_of;
    if (auto s = seen.find(canonical); s != seen.end())
      io::fail(at(where, it->first), s->second == k ? "duplicate key '" + k + "'"
                                                    : "key '" + k + "' sets the same setting as '" + s->second + "'");
    seen[canonical] = k;
    if (it->second.IsNull()) continue;
    spec->set(cfg, it->second, k, where);
    if (canonical == "lora") lora_node.emplace(it->second);
  }
  if (lora_node) find_key("lora")->set(cfg, *lora_node, "lora", where);
}

std::string fmt_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Shortest form that reads back exactly.
  for (int p = 1; p <= 17; ++p) {
    char b[40];
    std::snprintf(b, sizeof b, "%.*g", p, v);
    if (std::strtod(b, nullptr) == v) return b;
  }
  return buf;
}

}  // namespace

// ---- public ----------------------------------------------------------------------------------

const std::vector<std::string>& train_config_keys() {
  static const std::vector<std::string> keys = names_of(key_specs());
  return keys;
}

size_t edit_distance(std::string_view a_in, std::string_view b_in) {
  const std::string a = lower(a_in), b = lower(b_in);
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

void parse_train_config(const std::string& yaml_text, const std::string& where, TrainConfig& cfg) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    const std::string pos = e.mark.line >= 0 ? ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) : "";
    io::fail(where + pos, "invalid YAML: " + e.msg);
  }
  try {
    apply_root(root, where, cfg);
  } catch (const YAML::Exception& e) {  // e.g. a key that is itself a map
    io::fail(where, "invalid YAML: " + e.msg);
  }
}

void load_train_config(const std::filesystem::path& file, TrainConfig& cfg) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) io::fail(file.string(), "no such file");
  const std::string text = io::read_text_file(file, "training config");
  parse_train_config(text, file.string(), cfg);
}

TrainConfig load_train_config(const std::filesystem::path& file) {
  TrainConfig cfg;
  load_train_config(file, cfg);
  return cfg;
}

void set_config_value(TrainConfig& cfg, const std::string& key, const std::string& value, const std::string& where) {
  const KeySpec* spec = find_key(key);
  if (spec == nullptr || spec->name == "version" || spec->name == "generation") {
    std::vector<std::string> valid;
    for (const auto& k : train_config_keys())
      if (k != "version" && k != "generation") valid.push_back(k);
    io::fail(where, "unknown setting '" + io::printable(key) + "' (did you mean '" + closest_match(key, valid) + "'?)");
  }
  YAML::Node n(value);
  spec->set(cfg, n, key, where);
}

void validate(const TrainConfig& c, bool require_paths) {
  auto bad = [](const std::string& key, const std::string& what) { throw Error("invalid " + key + ": " + what); };
  const bool train = will_train(c), eval_only = !train;
  if (eval_only && !will_evaluate(c))
    throw Error("nothing to do: --do_train and --do_eval are both false (as in run_clm.py, without --do_train "
                "nothing is trained; --do_eval alone evaluates --model on the validation set)");
  if (eval_only && c.init == InitMode::Random)
    throw Error("--do_eval without --do_train evaluates --model as it is: it needs init: pretrained, not random");
  const bool validation_set = !c.validation_file.empty() || c.validation_fraction > 0.0;
  if (do_eval_requested(c) && !validation_set)
    throw Error(std::string(c.do_eval.value_or(false) ? "--do_eval" : "--evaluation_strategy") +
                " needs a validation set: --validation_file FILE, or --validation_fraction > 0");
  if (train && eval_strategy(c) == IntervalStrategy::Steps && c.eval_steps <= 0 && c.logging_steps <= 0)
    throw Error("--evaluation_strategy steps needs --eval_steps > 0 (or --logging_steps > 0, HF's default for it)");
  if (c.run_clm && !c.data_path.empty()) check_text_file_extension(c.data_path, data_flag(c));
  if (!c.validation_file.empty() && (c.run_clm || c.data_path.empty()))
    check_text_file_extension(c.validation_file, "--validation_file");
  if (require_paths) {
    if (c.data_path.empty() && (train || c.validation_file.empty()))
      bad(c.run_clm ? "train_file" : "data_path", train ? "required (the training data)" : "required (--do_eval: or --validation_file)");
    if (c.save_path.empty()) bad("save_path", "required (the output folder)");
    if (c.init == InitMode::Pretrained && c.model.empty()) bad("model", "required with init: pretrained (an HF model folder)");
  }
  if (c.text_column.empty()) bad("text_column", "must not be empty");
  if (!is_valid_utf8(c.prefix)) bad("prefix", "not valid UTF-8");
  if (!is_valid_utf8(c.suffix)) bad("suffix", "not valid UTF-8");
  if (!is_valid_utf8(c.response_template)) bad("response_template", "not valid UTF-8");
  if (!c.response_template.empty() && c.run_clm)
    bad("response_template", "not with --train_file/run_clm: its rows are concatenated into blocks, so there is no prompt to mask");
  if (!c.response_template.empty() && c.packing)
    bad("response_template", "not with --packing (rows are cut across examples; TRL refuses it too)");
  if (!(c.validation_fraction >= 0.0 && c.validation_fraction < 1.0))
    bad("validation_fraction", "must be in [0, 1), got " + fmt_double(c.validation_fraction));
  if (c.block_size < 0) bad("block_size", "must be >= 0 (0 = the model's n_positions), got " + std::to_string(c.block_size));
  if (c.num_epochs < 1 && c.max_steps <= 0) bad("num_epochs", "must be >= 1 (or set max_steps), got " + std::to_string(c.num_epochs));
  if (!(c.lr > 0.0)) bad("lr", "must be > 0, got " + fmt_double(c.lr));
  if (c.per_device_train_batch_size < 1)
    bad("per_device_train_batch_size", "must be >= 1, got " + std::to_string(c.per_device_train_batch_size));
  if (c.gradient_accumulation_steps < 1)
    bad("gradient_accumulation_steps", "must be >= 1, got " + std::to_string(c.gradient_accumulation_steps));
  if (c.zero_stage != 0 && c.zero_stage != 1)
    throw Error("--zero_stage " + std::to_string(c.zero_stage) +
                ": only 0 and 1 are supported (1: each mpirun rank holds 1/N of the AdamW state; ZeRO stages 2 and 3 "
                "are not implemented)");
  if (c.warmup_steps < 0) bad("warmup_steps", "must be >= 0, got " + std::to_string(c.warmup_steps));
  if (c.weight_decay < 0.0) bad("weight_decay", "must be >= 0, got " + fmt_double(c.weight_decay));
  if (c.max_grad_norm < 0.0) bad("max_grad_norm", "must be >= 0 (0 = no clipping), got " + fmt_double(c.max_grad_norm));
  if (c.logging_steps < 0) bad("logging_steps", "must be >= 0, got " + std::to_string(c.logging_steps));
  if (c.eval_steps < 0) bad("eval_steps", "must be >= 0, got " + std::to_string(c.eval_steps));
  if (c.save_steps < 0) bad("save_steps", "must be >= 0, got " + std::to_string(c.save_steps));
  if (c.save_total_limit < 0) bad("save_total_limit", "must be >= 0 (0 = keep all), got " + std::to_string(c.save_total_limit));
  const std::pair<const char*, const std::optional<int>*> dims[] = {
      {"n_layer", &c.n_layer}, {"n_embd", &c.n_embd}, {"n_head", &c.n_head}, {"n_positions", &c.n_positions}};
  for (const auto& [name, v] : dims)
    if (v->has_value() && **v < 1) bad(name, "must be >= 1, got " + std::to_string(**v));
  if (c.n_embd && c.n_head && *c.n_embd % *c.n_head != 0)
    bad("n_head", "n_embd " + std::to_string(*c.n_embd) + " is not divisible by n_head " + std::to_string(*c.n_head));
  if (c.init == InitMode::Pretrained && (c.n_layer || c.n_embd || c.n_head || c.n_positions))
    bad("init", "n_layer/n_embd/n_head/n_positions change the architecture: they need init: random");
  if (c.lora_r <= 0) throw Error("--lora_r must be a positive integer, got " + std::to_string(c.lora_r));
  if (!(c.lora_alpha > 0.0)) throw Error("--lora_alpha must be > 0, got " + fmt_double(c.lora_alpha));
  if (!(c.lora_dropout >= 0.0 && c.lora_dropout < 1.0))
    throw Error("--lora_dropout must be in [0, 1), got " + fmt_double(c.lora_dropout));
  if (c.base_dtype != "float32" && c.base_dtype != "bfloat16" && c.base_dtype != "int8")
    throw Error("--base_dtype must be float32, bfloat16 or int8, got '" + io::printable(c.base_dtype, 40) + "'");
  if (c.base_dtype != "float32" && !c.lora)
    throw Error("--base_dtype " + c.base_dtype +
                " needs --lora (only a frozen LoRA base can be held in it): a full fine-tune trains fp32 weights");
  if (c.generation.min_length < 0) bad("generation.min_length", "must be >= 0");
  if (c.generation.max_length_buffer < 0) bad("generation.max_length_buffer", "must be >= 0");
}

std::string to_yaml(const TrainConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  auto str = [&](const char* k, const std::string& v) { out << YAML::Key << k << YAML::Value << YAML::DoubleQuoted << v; };
  auto num = [&](const char* k, const std::string& v) { out << YAML::Key << k << YAML::Value << v; };
  auto boolean = [&](const char* k, bool v) { num(k, v ? "true" : "false"); };
  str("model", c.model);
  str("data_path", c.data_path);
  str("save_path", c.save_path);
  str("tokenizer", c.tokenizer);
  str("resume_from_checkpoint", c.resume_from_checkpoint);
  str("validation_file", c.validation_file);
  boolean("overwrite_output_dir", c.overwrite_output_dir);
  str("text_column", c.text_column);
  str("prefix", c.prefix);
  str("suffix", c.suffix);
  str("response_template", c.response_template);
  num("max_rows", std::to_string(c.max_rows));
  num("sample", to_string(c.sample));
  num("validation_fraction", fmt_double(c.validation_fraction));
  boolean("packing", c.packing);
  num("block_size", std::to_string(c.block_size));
  boolean("run_clm", c.run_clm);
  const std::pair<const char*, const std::optional<bool>*> runs[] = {{"do_train", &c.do_train}, {"do_eval", &c.do_eval}};
  for (const auto& [name, v] : runs) {
    if (v->has_value()) boolean(name, **v);
    else out << YAML::Key << name << YAML::Value << YAML::Null;
  }
  num("num_epochs", std::to_string(c.num_epochs));
  num("max_steps", std::to_string(c.max_steps));
  num("lr", fmt_double(c.lr));
  num("per_device_train_batch_size", std::to_string(c.per_device_train_batch_size));
  num("gradient_accumulation_steps", std::to_string(c.gradient_accumulation_steps));
  num("zero_stage", std::to_string(c.zero_stage));
  num("warmup_steps", std::to_string(c.warmup_steps));
  num("weight_decay", fmt_double(c.weight_decay));
  num("max_grad_norm", fmt_double(c.max_grad_norm));
  num("seed", std::to_string(c.seed));
  boolean("bfloat16", c.bfloat16);
  boolean("fp16", c.fp16);
  num("logging_steps", std::to_string(c.logging_steps));
  // Quoted: a bare `no` is false to YAML 1.1 readers (PyYAML).
  if (c.evaluation_strategy) str("evaluation_strategy", to_string(*c.evaluation_strategy));
  else out << YAML::Key << "evaluation_strategy" << YAML::Value << YAML::Null;
  num("eval_steps", std::to_string(c.eval_steps));
  str("save_strategy", to_string(c.save_strategy));
  num("save_steps", std::to_string(c.save_steps));
  num("save_total_limit", std::to_string(c.save_total_limit));
  boolean("save_only_model", c.save_only_model);
  num("init", to_string(c.init));
  const std::pair<const char*, const std::optional<int>*> dims[] = {
      {"n_layer", &c.n_layer}, {"n_embd", &c.n_embd}, {"n_head", &c.n_head}, {"n_positions", &c.n_positions}};
  for (const auto& [name, v] : dims) {
    if (v->has_value()) num(name, std::to_string(**v));
    else out << YAML::Key << name << YAML::Value << YAML::Null;
  }
  boolean("lora", c.lora);
  num("lora_r", std::to_string(c.lora_r));
  num("lora_alpha", fmt_double(c.lora_alpha));
  num("lora_dropout", fmt_double(c.lora_dropout));
  out << YAML::Key << "lora_target" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& t : c.lora_target) out << YAML::DoubleQuoted << t;
  out << YAML::EndSeq;
  str("base_dtype", c.base_dtype);
  boolean("gradient_checkpointing", c.gradient_checkpointing);
  boolean("overwrite_cache", c.overwrite_cache);
  boolean("use_fast_tokenizer", c.use_fast_tokenizer);
  str("deepspeed", c.deepspeed);
  out << YAML::Key << "generation" << YAML::Value << YAML::BeginMap;
  str("prompt_file", c.generation.prompt_file);
  num("min_length", std::to_string(c.generation.min_length));
  num("max_length_buffer", std::to_string(c.generation.max_length_buffer));
  out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

DataOptions data_options(const TrainConfig& c, int n_positions) {
  DataOptions o;
  o.data_path = c.data_path;
  o.text_column = c.text_column;
  o.prefix = c.prefix;
  o.suffix = c.suffix;
  o.response_template = c.response_template;
  o.max_rows = c.max_rows;
  o.sample = c.sample;
  o.validation_fraction = c.validation_fraction;
  o.seed = c.seed;
  o.max_tokens = n_positions;
  return o;
}

LoaderOptions loader_options(const TrainConfig& c, int n_positions, int32_t pad_id) {
  LoaderOptions o;
  o.batch_size = c.per_device_train_batch_size;
  o.packing = c.packing && !c.run_clm;  // run_clm rows are whole blocks already
  o.block_size = c.block_size > 0 ? c.block_size : std::min(n_positions, 1024);
  if ((c.packing || c.run_clm) && o.block_size > n_positions)
    throw Error("invalid block_size: " + std::to_string(c.block_size) + " exceeds the model's n_positions " +
                std::to_string(n_positions));
  o.pad_id = pad_id;
  o.seed = c.seed;
  o.shuffle = true;
  return o;
}

const char* to_string(SampleMode m) { return m == SampleMode::First ? "first" : "random"; }
const char* to_string(InitMode m) { return m == InitMode::Pretrained ? "pretrained" : "random"; }
const char* to_string(IntervalStrategy s) {
  return s == IntervalStrategy::Steps ? "steps" : s == IntervalStrategy::Epoch ? "epoch" : "no";
}

bool will_train(const TrainConfig& c) { return c.do_train.value_or(!c.do_eval.has_value()); }

bool will_evaluate(const TrainConfig& c) {
  if (!will_train(c)) return c.do_eval.value_or(false);
  return c.do_eval.value_or(false) || eval_strategy(c) != IntervalStrategy::No;  // HF: a strategy sets do_eval
}

bool do_eval_requested(const TrainConfig& c) {
  return c.do_eval.value_or(false) || (c.evaluation_strategy && *c.evaluation_strategy != IntervalStrategy::No);
}

IntervalStrategy eval_strategy(const TrainConfig& c) {
  if (c.evaluation_strategy) return *c.evaluation_strategy;
  return c.eval_steps > 0 ? IntervalStrategy::Steps : IntervalStrategy::Epoch;
}

bool eval_due(const TrainConfig& c, int64_t step, bool epoch_end) {
  switch (eval_strategy(c)) {
    case IntervalStrategy::Steps: {
      const int64_t every = c.eval_steps > 0 ? c.eval_steps : c.logging_steps;
      return every > 0 && step % every == 0;
    }
    case IntervalStrategy::Epoch: return epoch_end;
    case IntervalStrategy::No: return false;
  }
  return false;
}

bool save_due(const TrainConfig& c, int64_t step, bool epoch_end) {
  switch (c.save_strategy) {
    case IntervalStrategy::Steps: return c.save_steps > 0 && step % c.save_steps == 0;
    case IntervalStrategy::Epoch: return epoch_end;
    case IntervalStrategy::No: return false;
  }
  return false;
}

const char* data_flag(const TrainConfig& c) { return c.run_clm ? "--train_file" : "--data_path"; }

}  // namespace lmforge
