#include "lmforge/model/save.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {
void write_text_atomic(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) {
      out.close();
      std::filesystem::remove(tmp, ec);
      throw Error("cannot write '" + path.string() + "'");
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error("cannot write '" + path.string() + "': " + ec.message());
}

namespace {

nlohmann::json optional_id(std::optional<int> id) { return id ? nlohmann::json(*id) : nlohmann::json(nullptr); }

nlohmann::json quantization_config_json(const QuantizationConfig& q) {
  const bool dynamic = q.scheme == "dynamic";
  nlohmann::json activations = nullptr;  // weight-only: activations stay fp32
  if (dynamic) activations = {{"dtype", "int8"}, {"symmetric", true}, {"granularity", "per_token"}, {"dynamic", true}};
  return {
      {"quant_method", "lmforge"},
      {"scheme", q.scheme},
      {"weights", {{"dtype", "int8"}, {"symmetric", true}, {"granularity", "per_output_channel"},
                   {"scale_tensor_suffix", "_scale"}}},
      {"activations", activations},
      {"modules_in_higher_precision", q.modules_in_higher_precision},
      {"not_quantized", "biases, layer norms and position embeddings (fp32)"},
  };
}

}  // namespace

std::string model_config_json(const ModelConfig& c) {
  const bool j = c.arch == Arch::GPTJ;
  nlohmann::json cfg{
      {"model_type", j ? "gptj" : "gpt2"},
      {"architectures", {j ? "GPTJForCausalLM" : "GPT2LMHeadModel"}},
      {"vocab_size", c.vocab_size},
      {"n_positions", c.n_positions},
      {"n_embd", c.n_embd},
      {"n_layer", c.n_layer},
      {"n_head", c.n_head},
      {"n_inner", c.n_inner > 0 ? nlohmann::json(c.n_inner) : nlohmann::json(nullptr)},
      {"activation_function", c.activation_name},
      {"layer_norm_epsilon", c.layer_norm_epsilon},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"bos_token_id", optional_id(c.bos_token_id)},
      {"eos_token_id", optional_id(c.eos_token_id)},
      {"initializer_range", 0.02},
      {"torch_dtype", "float32"},
      {"use_cache", true},
  };
  if (c.pad_token_id) cfg["pad_token_id"] = *c.pad_token_id;
  if (c.quantization) cfg["quantization_config"] = quantization_config_json(*c.quantization);
  if (j) {
    cfg["rotary_dim"] = c.rotary_dim;
  } else {
    cfg["scale_attn_weights"] = c.scale_attn_weights;
    cfg["scale_attn_by_inverse_layer_idx"] = c.scale_attn_by_inverse_layer_idx;
    cfg["reorder_and_upcast_attn"] = c.reorder_and_upcast_attn;
  }
  return cfg.dump(2) + "\n";
}

void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to) {
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "added_tokens.json"}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(from / f, ec)) continue;
    std::ifstream in(from / f, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    if (!in.good() && !in.eof()) throw Error("cannot read '" + (from / f).string() + "'");
    write_text_atomic(to / f, bytes.str());
  }
}

void init_random_weights(const ModelConfig& c, ModelWeights& w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const float residual_scale = 1.0f / std::sqrt(2.0f * c.n_layer);
  for (const auto& s : w.slices) {
    int64_t n = 1;
    for (auto d : s.hf_shape) n *= d;
    float* p = w.params.data() + s.offset;
    const bool is_norm = s.hf_name.find("ln_") != std::string::npos;
    const bool is_bias = s.hf_name.ends_with(".bias");
    if (is_norm) {
      std::fill(p, p + n, is_bias ? 0.0f : 1.0f);
    } else if (is_bias) {
      std::fill(p, p + n, 0.0f);
    } else {
      const bool residual = c.arch == Arch::GPT2 && s.hf_name.ends_with("c_proj.weight");
      for (int64_t i = 0; i < n; ++i) p[i] = normal(rng) * (residual ? residual_scale : 1.0f);
    }
  }
}

namespace {

// [out, in] -> HF Conv1D's [in, out] for elements of `size` bytes.
std::vector<uint8_t> transposed_back(const uint8_t* src, int64_t in, int64_t out, size_t size) {
  std::vector<uint8_t> t(static_cast<size_t>(in * out) * size);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) std::memcpy(&t[(i * out + o) * size], &src[(o * in + i) * size], size);
  return t;
}

DType file_dtype(kernels::WeightType t) {
  switch (t) {
    case kernels::WeightType::BF16:
    case kernels::WeightType::BF16_COMPUTE: return DType::BF16;
    case kernels::WeightType::F16: return DType::F16;
    case kernels::WeightType::I8:
    case kernels::WeightType::I8_DYNAMIC: return DType::I8;
    case kernels::WeightType::F32: break;
  }
  return DType::F32;
}

}  // namespace

void save_pretrained(const std::filesystem::path& dir, const ModelConfig& c, const ModelWeights& w) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create folder '" + dir.string() + "': " + ec.message());
  // Each tensor in the type it is held in (fp32, or a matrix's bf16/fp16/int8 plus its per-row
  // scales); Conv1D tensors go back to HF's [in, out], the others are written straight.
  std::vector<std::vector<uint8_t>> transposed;
  std::vector<TensorToWrite> tensors;
  for (const auto& s : w.slices) {
    const size_t size = s.lowp() ? kernels::weight_type_size(s.type) : sizeof(float);
    const auto* src = s.lowp() ? w.matrix_data.data() + s.offset : reinterpret_cast<const uint8_t*>(w.params.data() + s.offset);
    if (s.transposed) src = transposed.emplace_back(transposed_back(src, s.hf_shape[0], s.hf_shape[1], size)).data();
    tensors.push_back({s.hf_name, file_dtype(s.type), s.hf_shape, src});
    if (kernels::is_int8(s.type)) {
      const int64_t rows = s.transposed ? s.hf_shape[1] : s.hf_shape[0];
      tensors.push_back({s.hf_name + "_scale", DType::F32, {rows}, w.matrix_scales.data() + s.scale_offset});
    }
  }
  write_safetensors(dir / "model.safetensors", tensors);
  write_text_atomic(dir / "config.json", model_config_json(c));
  nlohmann::json gen{{"_from_model_config", true},
                     {"bos_token_id", optional_id(c.bos_token_id)},
                     {"eos_token_id", optional_id(c.eos_token_id)}};
  write_text_atomic(dir / "generation_config.json", gen.dump(2) + "\n");
}

}  // namespace lmforge
