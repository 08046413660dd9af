#pragma once
// Parameters of a GPT-2 / GPT-J model in one flat fp32 buffer (llm.c style), with typed views into
// it for the forward pass and a table mapping each HF tensor name to its slice (for saving back).
// Every matrix is stored row-major [out, in]; GPT-2's Conv1D weights ([in, out] on disk) are
// transposed while loading.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lmforge/kernels/kernels.h"
#include "lmforge/model/config.h"

namespace lmforge {

class Checkpoint;

// An unmerged LoRA adapter on (some output rows of) a linear, model/lora.h:
// y[:, row0 .. row0+rows) += scaling · (x Aᵀ) Bᵀ.
struct LoraView {
  const float* A = nullptr;  // [r, in]
  const float* B = nullptr;  // [rows, r]
  int r = 0, row0 = 0, rows = 0;
  float scaling = 1.0f;
};

struct LinearWeights {
  const float* w = nullptr;  // [out, in] fp32 (null when the matrix is stored in low precision)
  const float* b = nullptr;  // [out] or null
  int in = 0, out = 0;
  kernels::WeightMatrix lowp;  // the matrix in bf16 / fp16 / int8 when loaded that way
  std::vector<LoraView> lora;  // adapters applied on top (inference; empty without one)

  kernels::WeightMatrix matrix() const {
    return w ? kernels::WeightMatrix{kernels::WeightType::F32, w, nullptr, out, in} : lowp;
  }
};

struct NormWeights {
  const float* w = nullptr;  // [E]
  const float* b = nullptr;  // [E]
};

// One transformer block. GPT-2: ln_1 → attn → +x → ln_2 → mlp → +x.
// GPT-J: ln_1 → (attn, mlp) in parallel → sum + x; ln_2 unused.
struct BlockWeights {
  NormWeights ln_1, ln_2;
  LinearWeights qkv;       // [3E, E]: rows q, then k, then v (GPT-2 c_attn; GPT-J q/k/v_proj)
  LinearWeights attn_out;  // [E, E]  (GPT-2 attn.c_proj; GPT-J attn.out_proj, no bias)
  LinearWeights fc_in;     // [I, E]  (GPT-2 mlp.c_fc;   GPT-J mlp.fc_in)
  LinearWeights fc_out;    // [E, I]  (GPT-2 mlp.c_proj; GPT-J mlp.fc_out)
};

// Where an HF tensor lives in the flat buffer. `transposed`: HF stores it [in, out] (Conv1D).
// `type`: F32 tensors live in ModelWeights::params and `offset` counts floats; a matrix kept in
// another type lives in matrix_data and `offset` counts bytes (int8 ones also have one scale per
// row in matrix_scales, from `scale_offset`).
struct ParamSlice {
  std::string hf_name;
  size_t offset = 0;
  std::vector<int64_t> hf_shape;
  bool transposed = false;
  kernels::WeightType type = kernels::WeightType::F32;
  size_t scale_offset = 0;

  bool lowp() const { return type != kernels::WeightType::F32; }
};

// How each weight matrix is held for inference: `base` for all of them except the modules named
// in `overrides` (HF module names, the weight's name without ".weight", e.g.
// "transformer.h.3.mlp.c_proj"; GPT-2's tied head is "transformer.wte"). GPT-J's q_proj, k_proj
// and v_proj are one fused matrix here, so they must share a type.
struct MatrixTypes {
  kernels::WeightType base = kernels::WeightType::F32;
  std::map<std::string, kernels::WeightType> overrides;

  MatrixTypes(kernels::WeightType b = kernels::WeightType::F32) : base(b) {}  // NOLINT: implicit on purpose
  kernels::WeightType of(const std::string& module) const {
    auto it = overrides.find(module);
    return it == overrides.end() ? base : it->second;
  }
};

// The types a folder of config `c` stores its matrices in: the plan of its quantization_config
// (int8 — dynamic or weight-only — except the modules kept in higher precision), else all F32.
MatrixTypes stored_matrix_types(const ModelConfig& c);

// The weight matrices of a model as units of storage, in forward order: each unit lists the HF
// modules that form one matrix (GPT-J's q/k/v together; GPT-2's tied head is "transformer.wte",
// which also serves the embedding lookup).
std::vector<std::vector<std::string>> matrix_modules(const ModelConfig& c);

struct ModelWeights {
  std::vector<float> params;       // every fp32 parameter, contiguous
  std::vector<ParamSlice> slices;  // in HF named_parameters() order
  // Inference in low precision: the weight matrices (and wte) in the types of `types`, the rest
  // in params. `matrix_type` is types.base (what most matrices are held in).
  MatrixTypes types;
  kernels::WeightType matrix_type = kernels::WeightType::F32;
  std::vector<uint8_t> matrix_data;
  std::vector<float> matrix_scales;  // int8: one per matrix row
  kernels::WeightMatrix wte_lowp;    // [V, E] when wte is low precision (wte is then null)
  const float* wte = nullptr;      // [V, E]
  const float* wpe = nullptr;      // [P, E] (GPT-2 only)
  std::vector<BlockWeights> blocks;
  NormWeights ln_f;
  LinearWeights lm_head;           // [V, E]; tied GPT-2: w == wte

  size_t num_parameters() const { return params.size(); }
};

// Lays out the parameters of `cfg` (zero-filled) and points the views into the buffer. Matrices
// whose type in `matrices` is not F32 (the token embedding included) are kept in that type, for
// inference only: training and backprop need F32. Throws lmforge::Error when GPT-J's q/k/v are
// given different types.
ModelWeights allocate_weights(const ModelConfig& cfg, const MatrixTypes& matrices = {});
// Fills `w` from a checkpoint (any stored float dtype, or int8 matrices with their per-row
// "<name>_scale" tensors as `lmforge quantize` writes them), checking every shape. Accepts names
// with or without the "transformer." prefix. Throws lmforge::Error naming the tensor and
// checkpoint. Tensors are converted one at a time and their mapped pages released after each
// (never a whole fp32 model, nor the whole checkpoint, resident beside the result).
void load_weights(const Checkpoint& ckpt, const ModelConfig& cfg, ModelWeights& w);
// The fp32 model `fp32` (allocate_weights(cfg) layout) with its matrices converted to `types`.
ModelWeights convert_weights(const ModelConfig& cfg, const ModelWeights& fp32, const MatrixTypes& types);

// Row `token` of the token embedding as fp32 (whatever type it is stored in).
void embedding_row(const ModelWeights& w, int token, int E, float* out);

}  // namespace lmforge
