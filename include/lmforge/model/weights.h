#pragma once
// Parameters of a GPT-2 / GPT-J model in one flat fp32 buffer (llm.c style), with typed views into
// it for the forward pass and a table mapping each HF tensor name to its slice (for saving back).
// Every matrix is stored row-major [out, in]; GPT-2's Conv1D weights ([in, out] on disk) are
// transposed while loading.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/kernels/kernels.h"
#include "lmforge/model/config.h"

namespace lmforge {

class Checkpoint;

struct LinearWeights {
  const float* w = nullptr;  // [out, in] fp32 (null when the matrix is stored in low precision)
  const float* b = nullptr;  // [out] or null
  int in = 0, out = 0;
  kernels::WeightMatrix lowp;  // the matrix in bf16 / fp16 / int8 when loaded that way

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
// `lowp`: a matrix kept in ModelWeights::matrix_type instead; `offset` then counts elements of
// that type in matrix_data (and rows in matrix_scales for int8: scale_offset).
struct ParamSlice {
  std::string hf_name;
  size_t offset = 0;
  std::vector<int64_t> hf_shape;
  bool transposed = false;
  bool lowp = false;
  size_t scale_offset = 0;
};

struct ModelWeights {
  std::vector<float> params;       // every fp32 parameter, contiguous
  std::vector<ParamSlice> slices;  // in HF named_parameters() order
  // Inference in low precision: the weight matrices (and wte) in this type, the rest in params.
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

// Lays out the parameters of `cfg` (zero-filled) and points the views into the buffer. With a
// `matrices` type other than F32 the weight matrices and the token embedding are kept in that
// type (for inference only: training, saving and backprop need F32).
ModelWeights allocate_weights(const ModelConfig& cfg, kernels::WeightType matrices = kernels::WeightType::F32);
// Fills `w` from a checkpoint (any stored float dtype), checking every shape. Accepts names with
// or without the "transformer." prefix. Throws lmforge::Error naming the tensor and checkpoint.
// Low-precision matrices are converted one tensor at a time (never a whole fp32 model in memory).
void load_weights(const Checkpoint& ckpt, const ModelConfig& cfg, ModelWeights& w);

// Row `token` of the token embedding as fp32 (whatever type it is stored in).
void embedding_row(const ModelWeights& w, int token, int E, float* out);

}  // namespace lmforge
