#include "lmforge/model/save.h"

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {
namespace {

void write_text_atomic(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error("cannot write '" + path.string() + "'");
  }
  std::filesystem::rename(tmp, path);
}

nlohmann::json optional_id(std::optional<int> id) { return id ? nlohmann::json(*id) : nlohmann::json(nullptr); }

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
  if (j) {
    cfg["rotary_dim"] = c.rotary_dim;
  } else {
    cfg["scale_attn_weights"] = c.scale_attn_weights;
    cfg["scale_attn_by_inverse_layer_idx"] = c.scale_attn_by_inverse_layer_idx;
    cfg["reorder_and_upcast_attn"] = c.reorder_and_upcast_attn;
  }
  return cfg.dump(2) + "\n";
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

void save_pretrained(const std::filesystem::path& dir, const ModelConfig& c, const ModelWeights& w) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create folder '" + dir.string() + "': " + ec.message());
  // Conv1D tensors go back to HF's [in, out]; the others are written straight from the buffer.
  std::vector<std::vector<float>> transposed;
  std::vector<TensorToWrite> tensors;
  for (const auto& s : w.slices) {
    const float* src = w.params.data() + s.offset;
    if (s.transposed) {
      const int64_t in = s.hf_shape[0], out = s.hf_shape[1];
      auto& t = transposed.emplace_back(in * out);
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) t[i * out + o] = src[o * in + i];
      src = t.data();
    }
    tensors.push_back({s.hf_name, DType::F32, s.hf_shape, src});
  }
  write_safetensors(dir / "model.safetensors", tensors);
  write_text_atomic(dir / "config.json", model_config_json(c));
  nlohmann::json gen{{"_from_model_config", true},
                     {"bos_token_id", optional_id(c.bos_token_id)},
                     {"eos_token_id", optional_id(c.eos_token_id)}};
  write_text_atomic(dir / "generation_config.json", gen.dump(2) + "\n");
}

}  // namespace lmforge
