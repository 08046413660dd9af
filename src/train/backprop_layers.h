#pragma once
// The layers of the training pass as forward/backward pairs of plain functions over row-major
// fp32 arrays (llm.c style). M = B*T token rows, E = n_embd, H heads of hd = E/H features,
// I = inner dim, V = vocab. Weight matrices are [out, in] (ModelWeights' layout). Every backward
// ADDS into its parameter gradients (dW, db, ...), so several batches can accumulate; activation
// gradients are overwritten or added as each function says.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lmforge/kernels/gemm_bf16.h"
#include "lmforge/model/config.h"

namespace lmforge::backprop {

// The bf16 GEMM is a kernel (inference's bfloat16_compute uses it too).
using kernels::gemm_mixed;
using kernels::mat;
using kernels::MatRef;
using kernels::to_bf16;

// ---- embedding: x[M,E] = wte[ids] (+ wpe[pos] when wpe is non-null) -------------------------
void embedding_forward(float* x, const int32_t* ids, const int32_t* pos, const float* wte, const float* wpe, int M,
                       int E);
// dwte[ids[r]] += dx[r]; dwpe[pos[r]] += dx[r] (dwpe may be null).
void embedding_backward(float* dwte, float* dwpe, const float* dx, const int32_t* ids, const int32_t* pos, int M,
                        int E);

// ---- layer norm: y[M,E] = (x - mean) * rstd * g + b, per row; mean/rstd [M] saved ---------------
void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* g, const float* b, int M, int E,
                       float eps);
// dx[M,E] += ∂L/∂x; dg[E], db[E] += their gradients (both null: a frozen norm). dy [M,E].
void layernorm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* mean,
                        const float* rstd, const float* g, int M, int E);

// ---- linear: y[M,N] = x[M,K] · w[N,K]ᵀ + b[N] (b may be null) --------------------------------
// accumulate: y += (residual connections fold into the matmul instead of a separate add).
void linear_forward(float* y, const float* x, const float* w, const float* b, int M, int K, int N, bool accumulate);
// dx[M,K] = (or += when dx_accumulate) dy · w; dw[N,K] += dyᵀ · x; db[N] += Σ_rows dy (db may be
// null). dx may be null when the input needs no gradient, dw when the weight is frozen.
void linear_backward(float* dx, bool dx_accumulate, float* dw, float* db, const float* dy, const float* x,
                     const float* w, int M, int K, int N);

// ---- bf16 variants (TrainOptions::bf16): same contracts, w in bf16, x fp32 or bf16 -------------
// (row stride K), fp32 accumulation (gemm_mixed, lmforge/kernels/gemm_bf16.h).
void linear_forward_mixed(float* y, const MatRef& x, const uint16_t* w, const float* b, int M, int K, int N,
                          bool accumulate);
void linear_backward_mixed(float* dx, bool dx_accumulate, float* dw, float* db, const float* dy, const MatRef& x,
                           const uint16_t* w, int M, int K, int N);
// layernorm_forward with the output y rounded to bf16 row by row (mean/rstd stay fp32).
void layernorm_forward_bf16(uint16_t* y, float* mean, float* rstd, const float* x, const float* g, const float* b,
                            int M, int E, float eps);

// ---- activation: a[n] = act(u[n]); backward d[n] *= act'(u[n]) (backprop_math.h) ---------------
void activation_forward(Activation act, float* a, const float* u, size_t n);

// ---- rotary (GPT-J, HF rotate-every-two): q and k of qkv[M,3E] rotated in place -----------------
struct RotaryTable {
  int dim = 0;             // rotary_dim: the first `dim` features of each head rotate
  std::vector<float> sin;  // [n_positions, dim/2], HF's create_sinusoidal_positions in fp32
  std::vector<float> cos;
  RotaryTable() = default;
  RotaryTable(int rotary_dim, int n_positions);
};
// Rotates q and k of every head of every row by angle pos[r] * inv_freq.
void rotary_forward(float* qkv, const int32_t* pos, const RotaryTable& rope, int M, int E, int H);
// The transpose: rotates dq and dk of dqkv[M,3E] back (by -angle).
void rotary_backward(float* dqkv, const int32_t* pos, const RotaryTable& rope, int M, int E, int H);

// ---- causal self-attention with a key mask ------------------------------------------------------
// qkv [B,T,3E] (q | k | v per token, heads of hd contiguous inside each), mask [B,T] (0: padding,
// never attended), out [B,T,E] (heads concatenated), lse [B,H,T]: log Σ exp of each query's
// visible scores (-inf: no visible key, zero output). scale multiplies q·k.
struct AttentionShape {
  int B, T, E, H;
  float scale;
};
void attention_forward(float* out, float* lse, const float* qkv, const uint8_t* mask, const AttentionShape& s);
// dqkv [B,T,3E] = ∂L/∂qkv (overwritten); dout [B,T,E]. Recomputes the probabilities from q, k
// and lse instead of keeping them (B*H*T*T floats per layer).
void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                        const uint8_t* mask, const AttentionShape& s);

// ---- cross-entropy over rows of logits[n,V] -----------------------------------------------------
// Returns Σ_r (logsumexp(logits[r]) - logits[r][target[r]]) in double; targets must be in [0, V).
// Overwrites logits: with grad_scale * (softmax - onehot(target)) = ∂(grad_scale * sum)/∂logits
// when want_grad, with scratch otherwise.
double cross_entropy(float* logits, const int32_t* targets, int n, int V, bool want_grad, float grad_scale);

}  // namespace lmforge::backprop
