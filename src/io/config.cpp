// config.json -> ModelConfig with HF's defaults (transformers 4.43 GPT2Config / GPTJConfig) for
// keys a file leaves out. Only keys that change the math are read; the rest are ignored, as HF
// keeps them as inert attributes.
#include "lmforge/model/config.h"

#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>

#include "io/io_util.h"

namespace lmforge {

namespace {

using io::fail;
using io::printable;
using nlohmann::json;

// Reads keys of one config object, with errors that name the file and the key.
class Reader {
 public:
  Reader(const json& j, const std::string& where) : j_(j), where_(where) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  [[noreturn]] void bad(const char* key, const std::string& what) const { fail(where_, "key '" + std::string(key) + "': " + what); }
  std::string got(const json& v) const { return std::string(v.type_name()) + " " + printable(v.dump(), 40); }

  // An integer key; `*out` keeps its default when absent. JSON floats (12.0) are refused because
  // HF would fail on them too (range(12.0)).
  void integer(const char* key, int* out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    *out = as_int(key, *v);
  }
  int as_int(const char* key, const json& v) const {
    if (!v.is_number_integer()) bad(key, "expected an integer, got " + got(v));
    if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(INT_MAX) : v.get<int64_t>() < INT_MIN)
      bad(key, "value " + v.dump() + " is out of range");
    return static_cast<int>(v.get<int64_t>());
  }
  // An integer that may also be null (HF's None); null -> nullopt, absent -> unchanged.
  void nullable_integer(const char* key, std::optional<int>* out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    *out = v->is_null() ? std::nullopt : std::optional<int>(as_int(key, *v));
  }
  void boolean(const char* key, bool* out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) bad(key, "expected true/false, got " + got(*v));
    *out = v->get<bool>();
  }
  void number(const char* key, float* out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    if (!v->is_number()) bad(key, "expected a number, got " + got(*v));
    *out = static_cast<float>(v->get<double>());
  }
  // A string key; null keeps the default only where HF tolerates None (`null_ok`).
  void string(const char* key, std::string* out, bool null_ok = false) const {
    const json* v = find(key);
    if (v == nullptr || (null_ok && v->is_null())) return;
    if (!v->is_string()) bad(key, "expected a string, got " + got(*v));
    *out = v->get<std::string>();
  }
  // eos_token_id may be a list in newer configs; the first entry is the primary one.
  void token_id(const char* key, std::optional<int>* out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    if (v->is_array()) {
      *out = v->empty() ? std::nullopt : std::optional<int>(as_int(key, v->front()));
      for (const auto& e : *v) as_int(key, e);  // every entry must still be an integer
      return;
    }
    nullable_integer(key, out);
  }

 private:
  const json& j_;
  const std::string& where_;
};

// HF ACT2FN names this engine implements.
bool parse_activation(const std::string& s, Activation* out) {
  static const std::pair<const char*, Activation> kNames[] = {
      {"gelu_new", Activation::GeluNew},   {"gelu", Activation::Gelu},
      {"relu", Activation::Relu},          {"gelu_fast", Activation::GeluFast},
      {"gelu_pytorch_tanh", Activation::GeluPytorchTanh}, {"quick_gelu", Activation::QuickGelu},
      {"silu", Activation::Silu},          {"swish", Activation::Silu},
  };
  for (const auto& [n, a] : kNames)
    if (s == n) {
      *out = a;
      return true;
    }
  return false;
}

// model_type decides; configs without it fall back to `architectures`.
Arch detect_arch(const Reader& r, const std::string& where) {
  if (const json* mt = r.find("model_type")) {
    if (!mt->is_string()) r.bad("model_type", "expected a string, got " + r.got(*mt));
    const auto s = mt->get<std::string>();
    if (s == "gpt2") return Arch::GPT2;
    if (s == "gptj") return Arch::GPTJ;
    r.bad("model_type", "unsupported model type '" + printable(s) + "' (expected gpt2 or gptj)");
  }
  if (const json* archs = r.find("architectures")) {
    if (!archs->is_array()) r.bad("architectures", "expected a list of strings, got " + r.got(*archs));
    for (const auto& a : *archs) {
      if (!a.is_string()) r.bad("architectures", "expected a list of strings");
      const auto s = a.get<std::string>();
      if (s == "GPT2LMHeadModel" || s == "GPT2Model") return Arch::GPT2;
      if (s == "GPTJForCausalLM" || s == "GPTJModel") return Arch::GPTJ;
    }
    r.bad("architectures", "no supported architecture (expected GPT2LMHeadModel or GPTJForCausalLM)");
  }
  fail(where, "key 'model_type': missing (and no 'architectures' to infer it from)");
}

// Defaults of GPTJConfig where they differ from the struct's GPT-2 defaults.
void apply_gptj_defaults(ModelConfig& c) {
  c.model_type = "gptj";
  c.n_layer = 28;
  c.n_head = 16;
  c.n_embd = 4096;
  c.n_positions = 2048;
  c.vocab_size = 50400;
  c.rotary_dim = 64;
  c.tie_word_embeddings = false;
  c.scale_attn_weights = true;  // GPT-J always scales by 1/sqrt(head_dim)
}

// Shapes the model code relies on; HF would fail later, or silently compute something else.
void check_shapes(const ModelConfig& c, const Reader& r) {
  auto positive = [&](const char* key, int v) {
    if (v <= 0) r.bad(key, "must be positive, got " + std::to_string(v));
  };
  positive("n_layer", c.n_layer);
  positive("n_head", c.n_head);
  positive("n_embd", c.n_embd);
  positive("n_positions", c.n_positions);
  positive("vocab_size", c.vocab_size);
  if (r.find("n_inner") && !r.find("n_inner")->is_null()) positive("n_inner", c.n_inner);
  if (c.n_embd % c.n_head != 0)
    r.bad("n_head", "n_embd (" + std::to_string(c.n_embd) + ") is not divisible by n_head (" + std::to_string(c.n_head) + ")");
  if (!(c.layer_norm_epsilon >= 0.0f) || !std::isfinite(c.layer_norm_epsilon))
    r.bad("layer_norm_epsilon", "must be a finite non-negative number");
  if (c.arch == Arch::GPTJ && r.find("rotary_dim") && !r.find("rotary_dim")->is_null()) {
    if (c.rotary_dim <= 0) r.bad("rotary_dim", "must be positive, got " + std::to_string(c.rotary_dim));
    if (c.rotary_dim % 2 != 0) r.bad("rotary_dim", "must be even, got " + std::to_string(c.rotary_dim));
    if (c.rotary_dim > c.head_dim())
      r.bad("rotary_dim", std::to_string(c.rotary_dim) + " exceeds the head dimension " + std::to_string(c.head_dim()));
  }
  if (c.arch == Arch::GPTJ && c.rotary_dim > c.head_dim())  // the 64 default with a small head
    r.bad("rotary_dim", "default 64 exceeds the head dimension " + std::to_string(c.head_dim()));
}

}  // namespace

// "quantization_config": only lmforge's own int8 scheme (what `lmforge quantize` writes); other
// methods (GPTQ, AWQ, bitsandbytes) store their weights in layouts this engine does not read.
QuantizationConfig parse_quantization(const json& q, const std::string& where) {
  auto bad = [&](const std::string& what) { fail(where, "key 'quantization_config': " + what); };
  if (!q.is_object()) bad("expected an object");
  const auto method = q.value("quant_method", json());
  if (method != "lmforge") bad("quant_method " + printable(method.dump(), 40) + " is not supported (only lmforge's own int8)");
  QuantizationConfig out;
  const auto scheme = q.value("scheme", json("dynamic"));
  if (scheme != "dynamic" && scheme != "weight_only") bad("scheme must be \"dynamic\" or \"weight_only\", got " + printable(scheme.dump(), 40));
  out.scheme = scheme.get<std::string>();
  const auto modules = q.value("modules_in_higher_precision", json::object());
  if (!modules.is_object()) bad("modules_in_higher_precision must map module names to dtypes");
  for (auto it = modules.begin(); it != modules.end(); ++it) {
    const json& d = it.value();
    if (d != "bfloat16" && d != "float16" && d != "float32")
      bad("modules_in_higher_precision['" + printable(it.key(), 80) + "'] must be bfloat16, float16 or float32, got " +
          printable(d.dump(), 40));
    out.modules_in_higher_precision[it.key()] = d.get<std::string>();
  }
  return out;
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& where) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& ex) {
    fail(where, std::string("malformed JSON: ") + printable(ex.what()));
  }
  if (!j.is_object()) fail(where, "config must be a JSON object");
  const Reader r(j, where);

  ModelConfig c;
  c.arch = detect_arch(r, where);
  if (c.arch == Arch::GPTJ) apply_gptj_defaults(c);
  c.bos_token_id = 50256;  // both configs default bos/eos to GPT-2's <|endoftext|>
  c.eos_token_id = 50256;

  // HF's attribute_map aliases (hidden_size, ...) are applied after the n_* arguments, so they win.
  r.integer("n_layer", &c.n_layer);
  r.integer("num_hidden_layers", &c.n_layer);
  r.integer("n_head", &c.n_head);
  r.integer("num_attention_heads", &c.n_head);
  r.integer("n_embd", &c.n_embd);
  r.integer("hidden_size", &c.n_embd);
  r.integer("n_positions", &c.n_positions);
  r.integer("max_position_embeddings", &c.n_positions);
  r.integer("vocab_size", &c.vocab_size);
  std::optional<int> n_inner;
  r.nullable_integer("n_inner", &n_inner);
  c.n_inner = n_inner.value_or(0);
  r.number("layer_norm_epsilon", &c.layer_norm_epsilon);
  r.boolean("tie_word_embeddings", &c.tie_word_embeddings);
  r.token_id("bos_token_id", &c.bos_token_id);
  r.token_id("eos_token_id", &c.eos_token_id);
  r.token_id("pad_token_id", &c.pad_token_id);
  r.string("torch_dtype", &c.torch_dtype, /*null_ok=*/true);

  if (c.arch == Arch::GPT2) {
    r.boolean("scale_attn_weights", &c.scale_attn_weights);
    r.boolean("scale_attn_by_inverse_layer_idx", &c.scale_attn_by_inverse_layer_idx);
    r.boolean("reorder_and_upcast_attn", &c.reorder_and_upcast_attn);
  } else {
    std::optional<int> rotary = c.rotary_dim;
    r.nullable_integer("rotary_dim", &rotary);
    c.rotary_dim = rotary.value_or(0);  // null: rotate the whole head
  }

  r.string("activation_function", &c.activation_name);
  if (!parse_activation(c.activation_name, &c.activation))
    r.bad("activation_function", "unsupported activation '" + printable(c.activation_name) + "'");

  if (const json* q = r.find("quantization_config"); q && !q->is_null()) c.quantization = parse_quantization(*q, where);
  check_shapes(c, r);
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& path) {
  std::error_code ec;
  const auto file = std::filesystem::is_directory(path, ec) ? path / "config.json" : path;
  return parse_model_config(io::read_text_file(file, "config file"), file.string());
}

}  // namespace lmforge
