#include "lmforge/model/lora.h"

#include <cblas.h>

#include <climits>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/save.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPeftPrefix = "base_model.model.";

// A block linear as peft names it and the slice of our matrices it is.
struct LinearSite {
  const char* name;  // relative to transformer.h.{i}.
  LinearUnit unit;
  int row0_in_E;     // first output row, in units of n_embd (GPT-J's fused q/k/v)
  int rows_in_E;     // output rows in units of n_embd; 0: the MLP's inner dim
  bool inner_in;     // input is the MLP's inner dim (fc_out) instead of n_embd
};

const std::vector<LinearSite>& sites(Arch arch) {
  static const std::vector<LinearSite> gpt2 = {{"attn.c_attn", LinearUnit::Qkv, 0, 3, false},
                                               {"attn.c_proj", LinearUnit::AttnOut, 0, 1, false},
                                               {"mlp.c_fc", LinearUnit::FcIn, 0, 0, false},
                                               {"mlp.c_proj", LinearUnit::FcOut, 0, 1, true}};
  static const std::vector<LinearSite> gptj = {{"attn.q_proj", LinearUnit::Qkv, 0, 1, false},
                                               {"attn.k_proj", LinearUnit::Qkv, 1, 1, false},
                                               {"attn.v_proj", LinearUnit::Qkv, 2, 1, false},
                                               {"attn.out_proj", LinearUnit::AttnOut, 0, 1, false},
                                               {"mlp.fc_in", LinearUnit::FcIn, 0, 0, false},
                                               {"mlp.fc_out", LinearUnit::FcOut, 0, 1, true}};
  return arch == Arch::GPT2 ? gpt2 : gptj;
}

std::string layer_prefix(int layer) { return "transformer.h." + std::to_string(layer) + "."; }

// peft's check_target_module_exists for a list: equal, or a suffix after a dot.
bool matches(const std::string& name, const std::string& target) {
  return name == target ||
         (name.size() > target.size() && name.ends_with(target) && name[name.size() - target.size() - 1] == '.');
}

bool targeted(const LoraConfig& lc, const std::string& name, const std::regex* re) {
  if (re) return std::regex_match(name, *re);
  for (const auto& t : lc.target_modules)
    if (matches(name, t)) return true;
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

void check_ranges(const LoraConfig& lc) {
  if (lc.r <= 0) throw Error("LoRA r must be a positive integer, got " + std::to_string(lc.r));
  if (!(lc.lora_alpha > 0)) throw Error("LoRA lora_alpha must be > 0, got " + json(lc.lora_alpha).dump());
  if (!(lc.lora_dropout >= 0 && lc.lora_dropout < 1))
    throw Error("LoRA lora_dropout must be in [0, 1), got " + json(lc.lora_dropout).dump());
}

// The adapter's layout; strict: every target must match some linear (training), else targets
// that match nothing are ignored, as peft does once something matched (loading).
LoraAdapter layout(const ModelConfig& c, LoraConfig lc, bool strict) {
  check_ranges(lc);
  if (lc.target_modules.empty() && lc.target_regex.empty()) lc.target_modules = default_lora_targets(c);
  std::unique_ptr<std::regex> re;
  if (!lc.target_regex.empty()) {
    try {
      re = std::make_unique<std::regex>(lc.target_regex);
    } catch (const std::regex_error& e) {
      throw Error("LoRA target_modules: invalid regular expression '" + lc.target_regex + "': " + e.what());
    }
  }
  for (int l : lc.layers_to_transform)
    if (l < 0 || l >= c.n_layer)
      throw Error("LoRA layers_to_transform: layer " + std::to_string(l) + " does not exist (the model has " +
                  std::to_string(c.n_layer) + ")");
  const std::set<int> only(lc.layers_to_transform.begin(), lc.layers_to_transform.end());
  LoraAdapter a;
  a.config = lc;
  const int E = c.n_embd, I = c.inner_dim();
  std::set<std::string> hit;
  size_t offset = 0;
  for (int l = 0; l < c.n_layer; ++l) {
    for (const auto& s : sites(c.arch)) {
      const std::string name = layer_prefix(l) + s.name;
      if (!targeted(lc, name, re.get())) continue;
      for (const auto& t : lc.target_modules)
        if (matches(name, t)) hit.insert(t);
      if (!only.empty() && !only.count(l)) continue;
      LoraModule m;
      m.name = name;
      m.layer = l;
      m.unit = s.unit;
      m.row0 = s.row0_in_E * E;
      m.rows = s.rows_in_E ? s.rows_in_E * E : I;
      m.in = s.inner_in ? I : E;
      m.a = offset;
      offset += static_cast<size_t>(lc.r) * m.in;
      m.b = offset;
      offset += static_cast<size_t>(m.rows) * lc.r;
      a.modules.push_back(m);
    }
  }
  std::vector<std::string> valid;
  for (const auto& s : sites(c.arch)) valid.push_back(std::string(s.name).substr(std::string(s.name).find('.') + 1));
  const std::string arch = c.arch == Arch::GPT2 ? "GPT-2" : "GPT-J";
  if (strict)
    for (const auto& t : lc.target_modules)
      if (!hit.count(t))
        throw Error("LoRA target '" + t + "' matches no linear layer of this " + arch + " model; valid: " +
                    join(valid) + " (or with their attn./mlp. prefix)");
  if (a.modules.empty())
    throw Error("LoRA target_modules (" + (re ? lc.target_regex : join(lc.target_modules)) +
                ") match no linear layer of this " + arch + " model; valid: " + join(valid));
  a.params.assign(offset, 0.0f);
  return a;
}

// ---- adapter_config.json ------------------------------------------------------------------

template <class T>
T get_or(const json& j, const char* key, T fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw Error(where + ": key '" + key + "' has the wrong type (" + it->dump() + ")");
  }
}

// An integer that fits an int (nlohmann's get<int> of a float or of a huge number is a cast, which
// is undefined past int's range).
int to_int(const json& v, const std::string& what, const std::string& where) {
  const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(INT_MAX)
                                           : v.is_number_integer() && v.get<int64_t>() >= INT_MIN && v.get<int64_t>() <= INT_MAX;
  if (!fits) throw Error(where + ": " + what + " must be an integer (got " + v.dump() + ")");
  return static_cast<int>(v.get<int64_t>());
}

int int_or(const json& j, const char* key, int fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return to_int(*it, std::string("key '") + key + "'", where);
}

bool empty_value(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() || (it->is_object() && it->empty()) || (it->is_array() && it->empty());
}

LoraConfig parse_adapter_config(const fs::path& file) {
  const std::string where = file.string();
  if (!fs::exists(file)) throw Error(where + ": no such file (not a PEFT adapter folder)");
  json j;
  try {
    std::ifstream in(file);
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(where + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": not a JSON object");
  const std::string type = get_or<std::string>(j, "peft_type", "", where);
  if (type != "LORA") throw Error(where + ": peft_type is '" + type + "', only LORA adapters are supported");
  LoraConfig lc;
  lc.r = int_or(j, "r", 8, where);
  lc.lora_alpha = get_or<double>(j, "lora_alpha", 8.0, where);
  lc.lora_dropout = get_or<double>(j, "lora_dropout", 0.0, where);
  lc.fan_in_fan_out = get_or<bool>(j, "fan_in_fan_out", false, where);
  lc.use_rslora = get_or<bool>(j, "use_rslora", false, where);
  lc.base_model_name_or_path = get_or<std::string>(j, "base_model_name_or_path", "", where);
  if (get_or<bool>(j, "use_dora", false, where)) throw Error(where + ": use_dora (DoRA) adapters are not supported");
  if (get_or<std::string>(j, "bias", "none", where) != "none")
    throw Error(where + ": bias '" + j["bias"].get<std::string>() + "' is not supported (only \"none\")");
  for (const char* key : {"rank_pattern", "alpha_pattern", "modules_to_save", "layer_replication"})
    if (!empty_value(j, key)) throw Error(where + ": '" + key + "' is not supported by lmforge");
  if (auto t = j.find("target_modules"); t != j.end() && !t->is_null()) {
    if (t->is_string())
      lc.target_regex = t->get<std::string>();
    else
      lc.target_modules = get_or<std::vector<std::string>>(j, "target_modules", {}, where);
  }
  if (auto t = j.find("layers_to_transform"); t != j.end() && !t->is_null()) {
    if (t->is_array())
      for (const json& v : *t) lc.layers_to_transform.push_back(to_int(v, "layers_to_transform[]", where));
    else
      lc.layers_to_transform = {to_int(*t, "key 'layers_to_transform'", where)};
  }
  try {
    check_ranges(lc);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  return lc;
}

}  // namespace

float LoraConfig::scaling() const {
  return static_cast<float>(use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / r);
}

std::vector<std::string> lora_linear_modules(const ModelConfig& c) {
  std::vector<std::string> v;
  for (const auto& s : sites(c.arch)) v.emplace_back(s.name);
  return v;
}

std::vector<std::string> default_lora_targets(const ModelConfig& c) {
  if (c.arch == Arch::GPT2) return {"c_attn"};
  return {"q_proj", "v_proj"};
}

std::string peft_tensor_name(const LoraModule& m, bool b) {
  return kPeftPrefix + m.name + (b ? ".lora_B.weight" : ".lora_A.weight");
}

LoraAdapter make_lora_adapter(const ModelConfig& c, LoraConfig lc) {
  if (c.arch == Arch::GPT2) lc.fan_in_fan_out = true;  // Conv1D: peft sets it (with a warning) whatever was asked
  return layout(c, std::move(lc), true);
}

void init_lora_weights(LoraAdapter& a, uint64_t seed) {
  std::mt19937_64 gen(seed);
  for (const auto& m : a.modules) {
    // kaiming_uniform_(a = sqrt(5)): gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in) = 1/sqrt(fan_in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(m.in));
    float* A = a.A(m);
    for (size_t i = 0, n = static_cast<size_t>(a.config.r) * m.in; i < n; ++i) {
      const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53;  // [0, 1)
      A[i] = static_cast<float>((2 * u - 1) * bound);
    }
    std::fill_n(a.B(m), static_cast<size_t>(m.rows) * a.config.r, 0.0f);
  }
}

LoraConfig read_lora_config(const fs::path& dir) { return parse_adapter_config(dir / "adapter_config.json"); }

LoraAdapter load_lora_adapter(const fs::path& dir, const ModelConfig& c) {
  if (!fs::is_directory(dir)) throw Error("--adapter: '" + dir.string() + "' is not a folder");
  LoraAdapter a;
  try {
    a = layout(c, parse_adapter_config(dir / "adapter_config.json"), false);
  } catch (const Error& e) {
    const std::string msg = e.what();
    throw Error(msg.starts_with(dir.string()) ? msg : (dir / "adapter_config.json").string() + ": " + msg);
  }
  fs::path file = dir / "adapter_model.safetensors";
  const bool st = fs::exists(file);
  if (!st) file = dir / "adapter_model.bin";
  if (!fs::exists(file))
    throw Error(dir.string() + ": no adapter_model.safetensors (or adapter_model.bin) in the adapter folder");
  const Checkpoint ck = st ? Checkpoint::open_safetensors(file) : Checkpoint::open_torch_bin(file);
  std::map<std::string, std::pair<const LoraModule*, bool>> expected;
  for (const auto& m : a.modules) {
    expected[peft_tensor_name(m, false)] = {&m, false};
    expected[peft_tensor_name(m, true)] = {&m, true};
  }
  std::set<std::string> seen;
  const int r = a.config.r;
  for (const auto& [stored, view] : ck.tensors()) {
    std::string name = stored;
    // An in-memory state dict keeps the adapter name ("lora_A.default.weight"); files do not.
    for (const char* ab : {".lora_A.", ".lora_B."})
      if (auto p = name.find(std::string(ab) + "default.weight"); p != std::string::npos)
        name = name.substr(0, p) + ab + "weight";
    auto it = expected.find(name);
    if (it == expected.end())
      throw Error(file.string() + ": unexpected tensor '" + stored + "' (adapter_config.json targets " +
                  std::to_string(a.modules.size()) + " linears of this " + std::to_string(c.n_layer) +
                  "-layer model, not this one)");
    const auto& [m, is_b] = it->second;
    const std::vector<int64_t> want = is_b ? std::vector<int64_t>{m->rows, r} : std::vector<int64_t>{r, m->in};
    if (view.shape != want) {
      auto str = [](const std::vector<int64_t>& s) {
        std::string t = "[";
        for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
        return t + "]";
      };
      throw Error(file.string() + ": tensor '" + stored + "' has shape " + str(view.shape) + ", the base model needs " +
                  str(want) + " (an adapter for another model?)");
    }
    try {
      to_float32(view, is_b ? a.B(*m) : a.A(*m));
    } catch (const Error& e) {
      throw Error(file.string() + ": tensor '" + stored + "': " + e.what());
    }
    seen.insert(name);
  }
  for (const auto& [name, unused] : expected)
    if (!seen.count(name)) throw Error(file.string() + ": tensor '" + name + "' is missing");
  return a;
}

std::string lora_config_json(const LoraConfig& lc) {
  json j;
  j["alpha_pattern"] = json::object();
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = lc.base_model_name_or_path;
  j["bias"] = "none";
  j["fan_in_fan_out"] = lc.fan_in_fan_out;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["layer_replication"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = lc.layers_to_transform.empty() ? json(nullptr) : json(lc.layers_to_transform);
  j["loftq_config"] = json::object();
  // peft writes lora_alpha as the user gave it: an int for an integral value.
  if (lc.lora_alpha == std::floor(lc.lora_alpha) && std::abs(lc.lora_alpha) < 1e9)
    j["lora_alpha"] = static_cast<int64_t>(lc.lora_alpha);
  else
    j["lora_alpha"] = lc.lora_alpha;
  j["lora_dropout"] = lc.lora_dropout;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["r"] = lc.r;
  j["rank_pattern"] = json::object();
  j["revision"] = nullptr;
  j["target_modules"] = lc.target_regex.empty() ? json(lc.target_modules) : json(lc.target_regex);
  j["task_type"] = "CAUSAL_LM";
  j["use_dora"] = false;
  j["use_rslora"] = lc.use_rslora;
  return j.dump(2) + "\n";
}

void save_lora_adapter(const fs::path& dir, const LoraAdapter& a) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) throw Error("cannot create adapter folder '" + dir.string() + "'");
  std::vector<TensorToWrite> tensors;
  for (const auto& m : a.modules) {
    tensors.push_back({peft_tensor_name(m, false), DType::F32, {a.config.r, m.in}, a.A(m)});
    tensors.push_back({peft_tensor_name(m, true), DType::F32, {m.rows, a.config.r}, a.B(m)});
  }
  write_safetensors(dir / "adapter_model.safetensors", tensors);
  write_text_atomic(dir / "adapter_config.json", lora_config_json(a.config));
}

LinearWeights& unit_of(BlockWeights& b, LinearUnit unit) {
  switch (unit) {
    case LinearUnit::Qkv: return b.qkv;
    case LinearUnit::AttnOut: return b.attn_out;
    case LinearUnit::FcIn: return b.fc_in;
    case LinearUnit::FcOut: return b.fc_out;
  }
  return b.qkv;
}

const LinearWeights& unit_of(const BlockWeights& b, LinearUnit unit) {
  return unit_of(const_cast<BlockWeights&>(b), unit);
}

void merge_lora(const LoraAdapter& a, ModelWeights& w) {
  const int r = a.config.r;
  for (const auto& m : a.modules) {
    const LinearWeights& lw = unit_of(w.blocks[m.layer], m.unit);
    if (!lw.w) throw Error("merge: " + m.name + " is not held in float32; merge into the float model, then quantize");
    float* W = const_cast<float*>(lw.w) + static_cast<size_t>(m.row0) * lw.in;  // points into w.params
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m.rows, m.in, r, a.config.scaling(), a.B(m), r, a.A(m),
                m.in, 1.0f, W, lw.in);
  }
}

void attach_lora(const LoraAdapter& a, std::vector<BlockWeights>& blocks) {
  for (const auto& m : a.modules)
    unit_of(blocks.at(m.layer), m.unit).lora.push_back({a.A(m), a.B(m), a.config.r, m.row0, m.rows, a.config.scaling()});
}

void add_lora_rows(const LinearWeights& w, const float* x, int M, float* y, int ldy) {
  thread_local std::vector<float> t, u;
  for (const auto& v : w.lora) {
    t.resize(static_cast<size_t>(M) * v.r);
    u.resize(static_cast<size_t>(M) * v.rows);
    kernels::matmul_wt_rows(x, M, kernels::WeightMatrix{kernels::WeightType::F32, v.A, nullptr, v.r, w.in}, nullptr,
                            t.data());
    kernels::matmul_wt_rows(t.data(), M, kernels::WeightMatrix{kernels::WeightType::F32, v.B, nullptr, v.rows, v.r},
                            nullptr, u.data());
    for (int m = 0; m < M; ++m) {
      float* ym = y + static_cast<size_t>(m) * ldy + v.row0;
      const float* um = u.data() + static_cast<size_t>(m) * v.rows;
      for (int j = 0; j < v.rows; ++j) ym[j] += v.scaling * um[j];
    }
  }
}

void add_lora(const LinearWeights& w, const float* x, int M, float* y, int ldy) {
  thread_local std::vector<float> t;
  for (const auto& v : w.lora) {
    t.resize(static_cast<size_t>(M) * v.r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, v.r, w.in, 1.0f, x, w.in, v.A, w.in, 0.0f, t.data(), v.r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, v.rows, v.r, v.scaling, t.data(), v.r, v.B, v.r, 1.0f,
                y + v.row0, ldy);
  }
}

}  // namespace lmforge
