#pragma once
// Training forward and backward pass of GPT-2 / GPT-J (llm.c style: every layer is a pair of plain
// forward/backward functions, see src/train/backprop_layers.h).
//
// Gradients live in ONE flat buffer with exactly the layout of ModelWeights::params, so every
// ParamSlice (offset, HF shape, Conv1D transposition) indexes the gradient of its tensor too. A tied
// GPT-2 head has no slice of its own: its gradient lands in transformer.wte.weight's.
//
// The loss is HF's causal-LM loss: logits at position t predict labels[t+1] (HF shifts inside the
// model), mean cross-entropy over the targets that are not kIgnoreIndex.
#include <cstddef>
#include <memory>
#include <vector>

#include "lmforge/model/config.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/batch.h"

namespace lmforge {

// Precision of a workspace's passes.
struct TrainOptions {
  // bf16 mixed precision (the seed's --bfloat16, HF's --bf16): every matrix product of the model
  // (qkv, attention output, MLP, lm_head; forward, dX and dW) reads its weight from a bf16 copy of
  // the parameters and its activation input in bf16 where that activation is saved for backward
  // anyway (the layer-norm outputs), accumulating in fp32. Master weights, gradients, optimizer
  // state, attention, layer norm, activations, softmax and the loss stay fp32. The bf16 copy is
  // refreshed from the fp32 weights at the start of every forward_backward / evaluate_loss /
  // forward_logits call (one conversion per call, not per matmul), so a caller that updates the
  // weights in between needs to do nothing. Costs params.size() * 2 bytes more than fp32.
  bool bf16 = false;
  // HF's gradient_checkpointing: the forward pass keeps only each block's input; the backward pass
  // runs each block's forward again just before its backward. Saves the activations of all but
  // one block (a few × B·T·(n_embd + inner dim) floats per layer) for one more forward pass.
  bool gradient_checkpointing = false;
};

// Activations saved by the forward pass for the backward pass, plus scratch. Sized for the shape
// of the last batch it saw and reused while that shape stays; one workspace per model and thread
// of training. Not copyable.
class TrainWorkspace {
 public:
  TrainWorkspace();
  explicit TrainWorkspace(const TrainOptions& options);
  ~TrainWorkspace();
  TrainWorkspace(TrainWorkspace&&) noexcept;
  TrainWorkspace& operator=(TrainWorkspace&&) noexcept;

  const TrainOptions& options() const;

  // Bytes currently held (saved activations, scratch and, with bf16, the bf16 weight copy).
  size_t bytes() const;

  struct Impl;  // src/train/backprop_workspace.h
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Runs the training forward pass of `batch` and adds grad_scale * d(loss)/d(params) to `grads`
// (which must be empty, then it is created zero-filled, or hold params.size() floats). Returns the
// mean loss over the batch's targets; NaN, with nothing added to `grads`, when the batch has none
// (as torch's mean over no elements).
//
// Batch: input_ids, labels [B*T]; attention_mask and position_ids may be left empty (all ones,
// 0..T-1 per row). A key whose mask is 0 is never attended to. A query with no visible key (a
// left-padding position) gets a zero attention output, as in inference. HF instead spreads such a
// query uniformly over the keys its additive masks leave at finfo.min (future tokens included), so
// with LEFT padding the loss of the first real token (predicted from the last padding position)
// differs from HF's; right padding (HF's default for training) and unpadded rows match HF.
// Throws lmforge::Error on malformed batches (sizes, token ids, labels, positions).
//
// grad_scale: 1/N when accumulating N micro-batches into one update.
float forward_backward(const ModelConfig& cfg, const ModelWeights& w, const TrainBatch& batch,
                       std::vector<float>& grads, TrainWorkspace& ws, float grad_scale = 1.0f);

// Forward pass and mean loss only (validation); same conventions as forward_backward.
float evaluate_loss(const ModelConfig& cfg, const ModelWeights& w, const TrainBatch& batch, TrainWorkspace& ws);

// The training forward pass's logits at every position, [B*T, vocab] (diagnostics and tests: it
// materialises what the loss computes in chunks).
std::vector<float> forward_logits(const ModelConfig& cfg, const ModelWeights& w, const TrainBatch& batch,
                                  TrainWorkspace& ws);

// ---- LoRA (model/lora.h) --------------------------------------------------------------------
// The same passes with the base `w` frozen and only the adapter's A and B trained: `grads` has
// the layout of adapter.params (adapter.params.size() floats, created zero-filled when empty).
// The base may hold its matrices in any type allocate_weights gives (fp32, bf16, fp16, int8):
// gradients flow through them without an fp32 copy of the whole model (low-precision matrices are
// widened a slab of rows at a time). Nothing of the base gets a gradient, and the backward pass
// stops at the lowest block that has an adapter. The workspace must not be in bf16 mode (hold the
// base in bf16 instead). `w`'s own LoraView lists are ignored: the adapter is passed explicitly.
//
// Dropout (lora_dropout > 0) applies to each adapter's input in forward_backward_lora only (train
// mode); its keep mask is a pure function of (dropout_seed, module, element), so a recomputed
// block (gradient checkpointing) sees the same mask. evaluate_loss_lora and forward_logits_lora
// run in eval mode (no dropout), as peft does under model.eval().
float forward_backward_lora(const ModelConfig& cfg, const ModelWeights& w, const LoraAdapter& adapter,
                            const TrainBatch& batch, std::vector<float>& grads, TrainWorkspace& ws,
                            float grad_scale = 1.0f, uint64_t dropout_seed = 0);
float evaluate_loss_lora(const ModelConfig& cfg, const ModelWeights& w, const LoraAdapter& adapter,
                         const TrainBatch& batch, TrainWorkspace& ws);
std::vector<float> forward_logits_lora(const ModelConfig& cfg, const ModelWeights& w, const LoraAdapter& adapter,
                                       const TrainBatch& batch, TrainWorkspace& ws);

// Number of targets of a batch after HF's shift (labels[b, t+1] != kIgnoreIndex for t < T-1).
size_t count_targets(const TrainBatch& batch);

}  // namespace lmforge
