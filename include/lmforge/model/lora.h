#pragma once
// LoRA adapters with HF peft's LoraLayer semantics on the linear layers of GPT-2 / GPT-J blocks.
//
// A targeted linear computes  y = W x + b + scaling · B (A dropout(x)),  scaling = lora_alpha / r
// (lora_alpha / sqrt(r) with use_rslora). A is peft's lora_A.weight [r, in], B its lora_B.weight
// [out, r], for nn.Linear (GPT-J) and transformers' Conv1D (GPT-2) alike: fan_in_fan_out only
// decides how a merged delta is laid into the stored weight, and our matrices are all [out, in].
//
// Our layout fuses GPT-J's q_proj / k_proj / v_proj into one [3E, E] matrix (BlockWeights::qkv):
// an adapter on q_proj adds to its rows [0, E), k_proj to [E, 2E), v_proj to [2E, 3E). GPT-2's
// c_attn is that whole matrix.
//
// On disk: PEFT's format, so PeftModel.from_pretrained(base, dir) loads what we write and we load
// what peft writes: adapter_config.json (a LoraConfig) + adapter_model.safetensors with tensors
// "base_model.model.transformer.h.{i}.attn.q_proj.lora_A.weight" etc. (no adapter name).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "lmforge/model/config.h"
#include "lmforge/model/weights.h"

namespace lmforge {

struct LoraConfig {
  int r = 8;
  double lora_alpha = 8;
  double lora_dropout = 0.0;
  // peft's target_modules: names matched against each linear's module name
  // ("transformer.h.3.attn.q_proj"): equal, or a suffix after a dot ("q_proj", "attn.q_proj").
  // Empty: the architecture's peft default (default_lora_targets).
  std::vector<std::string> target_modules;
  // peft's target_modules given as one string: a regular expression the whole module name must
  // match (re.fullmatch). Used instead of target_modules when not empty.
  std::string target_regex;
  std::vector<int> layers_to_transform;  // empty: every layer
  bool fan_in_fan_out = false;           // GPT-2's Conv1D: true (peft sets it)
  bool use_rslora = false;
  std::string base_model_name_or_path;

  float scaling() const;
};

// The block linears of an architecture as peft names them, relative to "transformer.h.{i}."
// (GPT-2: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj; GPT-J: attn.q_proj, attn.k_proj,
// attn.v_proj, attn.out_proj, mlp.fc_in, mlp.fc_out).
std::vector<std::string> lora_linear_modules(const ModelConfig& c);
// peft's defaults (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING): GPT-2 {"c_attn"}, GPT-J
// {"q_proj", "v_proj"}.
std::vector<std::string> default_lora_targets(const ModelConfig& c);

enum class LinearUnit : uint8_t { Qkv, AttnOut, FcIn, FcOut };

// One adapted linear.
struct LoraModule {
  std::string name;  // "transformer.h.3.attn.q_proj"
  int layer = 0;
  LinearUnit unit = LinearUnit::Qkv;
  int row0 = 0, rows = 0;  // the rows of the unit's [out, in] matrix it adds to
  int in = 0;              // input width
  size_t a = 0, b = 0;     // offsets of A [r, in] and B [rows, r] in LoraAdapter::params
};

struct LoraAdapter {
  LoraConfig config;
  std::vector<LoraModule> modules;  // by layer, then in forward order (q before v)
  std::vector<float> params;        // every A and B, fp32

  float* A(const LoraModule& m) { return params.data() + m.a; }
  float* B(const LoraModule& m) { return params.data() + m.b; }
  const float* A(const LoraModule& m) const { return params.data() + m.a; }
  const float* B(const LoraModule& m) const { return params.data() + m.b; }
};

// "base_model.model.<module>.lora_A.weight" (b = false) or ".lora_B.weight".
std::string peft_tensor_name(const LoraModule& m, bool b);

// The adapter `lc` describes on a model of config `c`, every parameter zero. Throws lmforge::Error
// for r, lora_alpha or lora_dropout out of range, or a target that matches no linear (listing the
// ones that exist).
LoraAdapter make_lora_adapter(const ModelConfig& c, LoraConfig lc);
// peft's init_lora_weights=True: A ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)),
// B = 0 (so the adapted model starts equal to the base). Deterministic for a seed.
void init_lora_weights(LoraAdapter& a, uint64_t seed);

// Reads a PEFT LoRA folder for a base of config `c`. Throws lmforge::Error naming the file and key
// or tensor for: a missing file, a non-LoRA peft_type, options lmforge does not implement (DoRA,
// rank/alpha patterns, LoRA biases, modules_to_save), a tensor whose shape does not fit the base,
// a missing or unexpected tensor.
LoraAdapter load_lora_adapter(const std::filesystem::path& dir, const ModelConfig& c);
// The adapter_config.json of PEFT folder `dir` alone (same checks and errors as load_lora_adapter's),
// e.g. to find its base_model_name_or_path before the base is loaded.
LoraConfig read_lora_config(const std::filesystem::path& dir);
// adapter_config.json + adapter_model.safetensors (fp32, PEFT names, __metadata__ format pt),
// each file written atomically.
void save_lora_adapter(const std::filesystem::path& dir, const LoraAdapter& a);
// The adapter_config.json text peft writes for `lc` (its full key set).
std::string lora_config_json(const LoraConfig& lc);

// W += scaling · B A on every adapted matrix of fp32 weights `w` (allocate_weights layout). Throws
// lmforge::Error when a targeted matrix is not held in fp32.
void merge_lora(const LoraAdapter& a, ModelWeights& w);
// Points each adapted LinearWeights of `blocks` at the adapter's A and B (LinearWeights::lora), so
// inference applies it unmerged. `a` must outlive the blocks' use.
void attach_lora(const LoraAdapter& a, std::vector<BlockWeights>& blocks);
// The LinearWeights of `unit` in `b`.
LinearWeights& unit_of(BlockWeights& b, LinearUnit unit);
const LinearWeights& unit_of(const BlockWeights& b, LinearUnit unit);

// y[M, ldy] (rows of the unit's output) += scaling · (x Aᵀ) Bᵀ for every adapter view of `w`; x [M, w.in].
void add_lora(const LinearWeights& w, const float* x, int M, float* y, int ldy);
// The same product with row-invariant kernels (kernels::matmul_wt_rows): row m's result depends on
// x row m alone, whatever M (the continuous batcher's need; add_lora's sgemm gives no such promise).
void add_lora_rows(const LinearWeights& w, const float* x, int M, float* y, int ldy);

}  // namespace lmforge
