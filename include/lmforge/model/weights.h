#pragma once
// Parameters of a GPT-2 / GPT-J model in one flat fp32 buffer (llm.c style), with typed views into
// it for the forward pass and a table mapping each HF tensor name to its slice (for saving back).
// Every matrix is stored row-major [out, in]; GPT-2's Conv1D weights ([in, out] on disk) are
// transposed while loading.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/model/config.h"

namespace lmforge {

class Checkpoint;

struct LinearWeights {
  const float* w = nullptr;  // [out, in]
  const float* b = nullptr;  // [out] or null
  int in = 0, out = 0;
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
struct ParamSlice {
  std::string hf_name;
  size_t offset = 0;
  std::vector<int64_t> hf_shape;
  bool transposed = false;
};

struct ModelWeights {
  std::vector<float> params;       // every parameter, contiguous
  std::vector<ParamSlice> slices;  // in HF named_parameters() order
  const float* wte = nullptr;      // [V, E]
  const float* wpe = nullptr;      // [P, E] (GPT-2 only)
  std::vector<BlockWeights> blocks;
  NormWeights ln_f;
  LinearWeights lm_head;           // [V, E]; tied GPT-2: w == wte

  size_t num_parameters() const { return params.size(); }
};

// Lays out the parameters of `cfg` (zero-filled) and points the views into the buffer.
ModelWeights allocate_weights(const ModelConfig& cfg);
// Fills `w` from a checkpoint (any stored float dtype), checking every shape. Accepts names with
// or without the "transformer." prefix. Throws lmforge::Error naming the tensor and checkpoint.
void load_weights(const Checkpoint& ckpt, const ModelConfig& cfg, ModelWeights& w);

}  // namespace lmforge
