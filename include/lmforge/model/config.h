#pragma once
// The fields of an HF config.json that change the math of GPT-2 / GPT-J, with HF's names and
// HF's defaults for fields a file leaves out.
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace lmforge {

enum class Arch { GPT2, GPTJ };
enum class Activation { GeluNew, Gelu, Relu, GeluFast, GeluPytorchTanh, QuickGelu, Silu };

// config.json's "quantization_config" as `lmforge quantize` writes it (quant_method "lmforge"):
// weight matrices in int8 with one symmetric scale per output row (stored as "<name>_scale"), and
// activations either quantized to int8 per token at run time ("dynamic", int8 x int8 products) or
// kept fp32 ("weight_only"). The modules the accuracy check kept in higher precision are listed
// with their dtype.
struct QuantizationConfig {
  std::string scheme = "dynamic";  // or "weight_only"
  std::map<std::string, std::string> modules_in_higher_precision;  // module -> bfloat16|float16|float32
};

struct ModelConfig {
  Arch arch = Arch::GPT2;
  std::string model_type = "gpt2";
  int n_layer = 12;
  int n_head = 12;
  int n_embd = 768;
  int n_positions = 1024;
  int n_inner = 0;  // 0 (HF null) = 4 * n_embd
  int vocab_size = 50257;
  float layer_norm_epsilon = 1e-5f;
  Activation activation = Activation::GeluNew;
  std::string activation_name = "gelu_new";
  bool scale_attn_weights = true;                // GPT-2
  bool scale_attn_by_inverse_layer_idx = false;  // GPT-2
  bool reorder_and_upcast_attn = false;          // GPT-2 (same math in fp32)
  bool tie_word_embeddings = true;               // GPT-2 default true, GPT-J false
  int rotary_dim = 0;                            // GPT-J; 0 = rotate the whole head
  std::optional<int> bos_token_id, eos_token_id, pad_token_id;
  std::string torch_dtype = "float32";
  std::optional<QuantizationConfig> quantization;  // a folder written by `lmforge quantize`

  int inner_dim() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
  int head_dim() const { return n_embd / n_head; }
};

// Parses `dir/config.json` (or a config.json path). Throws lmforge::Error naming the file and key
// for malformed JSON, wrong types, unknown model_type/activation, or impossible shapes
// (n_embd % n_head != 0, rotary_dim odd or > head_dim, non-positive sizes).
ModelConfig load_model_config(const std::filesystem::path& path);
ModelConfig parse_model_config(const std::string& json_text, const std::string& where);

}  // namespace lmforge
