#pragma once
// What the training forward pass keeps for the backward pass (TrainWorkspace::Impl), and scratch.
// M = B*T token rows, E = n_embd, I = inner dim, H heads.
#include <array>
#include <cstdint>
#include <vector>

#include "lmforge/model/config.h"
#include "lmforge/model/lora.h"
#include "lmforge/train/backprop.h"
#include "train/backprop_layers.h"

namespace lmforge {

// One block's saved activations.
struct LayerActivations {
  std::vector<float> x;                        // [M,E] block input (residual stream)
  std::vector<float> ln1, ln1_mean, ln1_rstd;  // [M,E], [M], [M]
  std::vector<float> qkv;                      // [M,3E] after rotary (GPT-J)
  std::vector<float> att, lse;                 // [M,E] attention output (pre-projection), [B,H,T]
  std::vector<float> x_mid;                    // [M,E] GPT-2: residual after attention
  std::vector<float> ln2, ln2_mean, ln2_rstd;  // GPT-2
  std::vector<float> fc;                       // [M,I] pre-activation (the activation is recomputed)
  // bf16 mode: the layer-norm outputs (matmul inputs only) are kept in bf16 instead of ln1 / ln2.
  std::vector<uint16_t> ln1_16, ln2_16;
};

struct TrainWorkspace::Impl {
  // The shape the buffers are sized for; reshape() reallocates when a batch differs.
  struct Key {
    Arch arch;
    int n_layer, E, H, I, V, P, rotary_dim, B, T;
    bool operator==(const Key&) const = default;
  };
  Key key{};
  bool sized = false;
  TrainOptions options;

  // bf16 mode: bf16 copy of ModelWeights::params (same offsets), refreshed at every pass, and the
  // address of the fp32 params it mirrors.
  std::vector<uint16_t> w16;
  const float* w16_of = nullptr;

  // Gradient checkpointing: layers[l] holds only x (the block's input); the rest of one block's
  // activations live in `recompute`, which holds block `recompute_layer`'s (-1: none).
  std::vector<LayerActivations> layers;
  LayerActivations recompute;
  int recompute_layer = -1;
  std::vector<float> block_out;  // [M,E] the output of a recomputed block (not needed again)

  // LoRA pass (null otherwise): the adapter, its gradient buffer, the modules of each
  // (layer, unit), whether dropout is on (train mode) and its seed, the lowest adapted layer.
  const LoraAdapter* lora = nullptr;
  float* lora_grads = nullptr;
  std::vector<std::array<std::vector<int>, 4>> lora_units;
  bool lora_dropout = false;
  uint64_t dropout_seed = 0;
  int lora_min_layer = 0;
  std::vector<float> lora_t, lora_dt, lora_xd, lora_dxd;  // [M,r], [M,r], [M,in], [M,in]
  std::vector<float> frozen_tmp, frozen_slab;             // low-precision base: y scratch, widened rows
  std::vector<float> x_final, lnf, lnf_mean, lnf_rstd;  // input and output of ln_f
  backprop::RotaryTable rope;                           // GPT-J

  // Batch inputs with HF's defaults filled in.
  std::vector<uint8_t> mask;
  std::vector<int32_t> positions;

  // Scratch shared by all layers.
  std::vector<float> act;                        // [M,I] activation output (forward, and recomputed in backward)
  std::vector<float> dx;                         // [M,E] gradient of the residual stream
  std::vector<float> dh;                         // [M,E] gradient of a layer-norm output
  std::vector<float> datt;                       // [M,E]
  std::vector<float> dqkv;                       // [M,3E]
  std::vector<float> dfc;                        // [M,I]
  std::vector<float> head_in, dhead_in, logits;  // one chunk of the lm_head: [n,E], [n,E], [n,V]
  std::vector<uint16_t> lnf16, head_in16;        // bf16 mode: in place of lnf and head_in

  void reshape(const ModelConfig& c, int B, int T);
  size_t bytes() const;
};

}  // namespace lmforge
