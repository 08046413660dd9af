// The training pass over a whole model: embedding → blocks → ln_f → lm_head → cross-entropy, then
// the same chain backwards, accumulating into one flat gradient buffer laid out like
// ModelWeights::params (the gradient of a parameter sits at the parameter's own offset).
//
// Per block (M = B*T rows):
//   GPT-2: h1 = ln_1(x); qkv = h1 Wqkvᵀ + b; att = attn(qkv); x_mid = x + att Woᵀ + bo;
//          h2 = ln_2(x_mid); u = h2 Wfcᵀ + b; out = x_mid + act(u) Wprojᵀ + b
//   GPT-J: h1 = ln_1(x); qkv = rotary(h1 Wqkvᵀ); att = attn(qkv); u = h1 Wfcᵀ + b;
//          out = x + att Woᵀ + act(u) Wprojᵀ + b          (parallel attention and MLP)
#include "lmforge/train/backprop.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"
#include "train/backprop_layers.h"
#include "train/backprop_math.h"
#include "train/backprop_workspace.h"

namespace lmforge {

using namespace backprop;

// ---- workspace --------------------------------------------------------------------------------

namespace {

int rotary_dim(const ModelConfig& c) { return c.rotary_dim > 0 ? c.rotary_dim : c.head_dim(); }

// The lm_head and loss run over chunks of rows whose logits fit in this many floats (64 MiB), so
// the [M, V] logits are never materialised at once.
constexpr size_t kHeadChunkFloats = size_t{1} << 24;

int head_chunk_rows(int V, int M) {
  return std::max(1, std::min(M, static_cast<int>(std::max<size_t>(64, kHeadChunkFloats / V))));
}

template <class T>
size_t bytes_of(const std::vector<T>& v) {
  return v.capacity() * sizeof(T);
}

}  // namespace

void TrainWorkspace::Impl::reshape(const ModelConfig& c, int B, int T) {
  const Key k{c.arch, c.n_layer, c.n_embd, c.n_head, c.inner_dim(), c.vocab_size, c.n_positions, rotary_dim(c), B, T};
  if (sized && k == key) return;
  key = k;
  sized = true;
  const size_t M = static_cast<size_t>(B) * T, E = c.n_embd, I = c.inner_dim();
  const bool gpt2 = c.arch == Arch::GPT2, bf16 = options.bf16;
  auto size_layer = [&](LayerActivations& a) {
    a.x.resize(M * E);
    if (bf16)
      a.ln1_16.resize(M * E);
    else
      a.ln1.resize(M * E);
    a.ln1_mean.resize(M);
    a.ln1_rstd.resize(M);
    a.qkv.resize(M * 3 * E);
    a.att.resize(M * E);
    a.lse.resize(M * c.n_head);
    a.fc.resize(M * I);
    if (!gpt2) return;
    a.x_mid.resize(M * E);
    if (bf16)
      a.ln2_16.resize(M * E);
    else
      a.ln2.resize(M * E);
    a.ln2_mean.resize(M);
    a.ln2_rstd.resize(M);
  };
  layers.assign(c.n_layer, {});
  recompute = {};
  recompute_layer = -1;
  if (options.gradient_checkpointing) {
    for (auto& a : layers) a.x.resize(M * E);
    size_layer(recompute);
    recompute.x.clear();  // each layer's own x is swapped in
    block_out.resize(M * E);
  } else {
    for (auto& a : layers) size_layer(a);
  }
  x_final.resize(M * E);
  if (bf16)
    lnf16.resize(M * E);
  else
    lnf.resize(M * E);
  lnf_mean.resize(M);
  lnf_rstd.resize(M);
  rope = gpt2 ? RotaryTable() : RotaryTable(rotary_dim(c), c.n_positions);
  act.resize(M * I);
  dx.resize(M * E);
  dh.resize(M * E);
  datt.resize(M * E);
  dqkv.resize(M * 3 * E);
  dfc.resize(M * I);
  const size_t chunk = head_chunk_rows(c.vocab_size, static_cast<int>(M));
  if (bf16)
    head_in16.resize(chunk * E);
  else
    head_in.resize(chunk * E);
  dhead_in.resize(chunk * E);
  logits.resize(chunk * c.vocab_size);
}

size_t TrainWorkspace::Impl::bytes() const {
  auto layer_bytes = [](const LayerActivations& a) {
    return bytes_of(a.x) + bytes_of(a.ln1) + bytes_of(a.ln1_mean) + bytes_of(a.ln1_rstd) + bytes_of(a.qkv) +
           bytes_of(a.att) + bytes_of(a.lse) + bytes_of(a.x_mid) + bytes_of(a.ln2) + bytes_of(a.ln2_mean) +
           bytes_of(a.ln2_rstd) + bytes_of(a.fc) + bytes_of(a.ln1_16) + bytes_of(a.ln2_16);
  };
  size_t n = layer_bytes(recompute);
  for (const auto& a : layers) n += layer_bytes(a);
  for (const auto* v : {&x_final, &lnf, &lnf_mean, &lnf_rstd, &act, &dx, &dh, &datt, &dqkv, &dfc, &head_in, &dhead_in,
                        &logits, &rope.sin, &rope.cos, &block_out, &lora_t, &lora_dt, &lora_xd, &lora_dxd,
                        &frozen_tmp, &frozen_slab})
    n += bytes_of(*v);
  return n + bytes_of(mask) + bytes_of(positions) + bytes_of(w16) + bytes_of(lnf16) + bytes_of(head_in16);
}

TrainWorkspace::TrainWorkspace() : impl_(std::make_unique<Impl>()) {}
TrainWorkspace::TrainWorkspace(const TrainOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
}
const TrainOptions& TrainWorkspace::options() const { return impl_->options; }
TrainWorkspace::~TrainWorkspace() = default;
TrainWorkspace::TrainWorkspace(TrainWorkspace&&) noexcept = default;
TrainWorkspace& TrainWorkspace::operator=(TrainWorkspace&&) noexcept = default;
size_t TrainWorkspace::bytes() const { return impl_->bytes(); }

namespace {

using Impl = TrainWorkspace::Impl;

// ---- inputs -----------------------------------------------------------------------------------

void check_batch(const ModelConfig& c, const TrainBatch& b) {
  if (b.B <= 0 || b.T <= 0)
    throw Error("training batch: empty shape " + std::to_string(b.B) + "x" + std::to_string(b.T));
  const size_t n = static_cast<size_t>(b.B) * b.T;
  auto check_size = [&](size_t got, const char* what, bool optional) {
    if (got != n && !(optional && got == 0))
      throw Error(std::string("training batch: ") + what + " has " + std::to_string(got) + " entries, B*T is " +
                  std::to_string(n));
  };
  check_size(b.input_ids.size(), "input_ids", false);
  check_size(b.labels.size(), "labels", false);
  check_size(b.attention_mask.size(), "attention_mask", true);
  check_size(b.position_ids.size(), "position_ids", true);
  if (b.position_ids.empty() && b.T > c.n_positions)
    throw Error("training batch: sequence length " + std::to_string(b.T) + " exceeds n_positions " +
                std::to_string(c.n_positions));
  for (size_t i = 0; i < n; ++i) {
    if (b.input_ids[i] < 0 || b.input_ids[i] >= c.vocab_size)
      throw Error("training batch: token id " + std::to_string(b.input_ids[i]) + " is outside the vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");
    if (b.labels[i] != kIgnoreIndex && (b.labels[i] < 0 || b.labels[i] >= c.vocab_size))
      throw Error("training batch: label " + std::to_string(b.labels[i]) + " is neither -100 nor a token id");
    if (!b.position_ids.empty() && (b.position_ids[i] < 0 || b.position_ids[i] >= c.n_positions))
      throw Error("training batch: position " + std::to_string(b.position_ids[i]) + " is outside [0, n_positions " +
                  std::to_string(c.n_positions) + ")");
  }
}

// Fills the workspace's mask and positions, with HF's defaults where the batch leaves them out;
// in bf16 mode refreshes the bf16 copy of the weights (they may have changed since the last pass).
void prepare(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, Impl& ws) {
  check_batch(c, b);
  ws.reshape(c, b.B, b.T);
  if (ws.options.bf16) {
    ws.w16.resize(w.params.size());
    to_bf16(ws.w16.data(), w.params.data(), w.params.size());
    ws.w16_of = w.params.data();
  }
  const size_t n = static_cast<size_t>(b.B) * b.T;
  if (b.attention_mask.empty())
    ws.mask.assign(n, 1);
  else
    ws.mask = b.attention_mask;
  if (!b.position_ids.empty()) {
    ws.positions = b.position_ids;
    return;
  }
  ws.positions.resize(n);
  for (size_t i = 0; i < n; ++i) ws.positions[i] = static_cast<int32_t>(i % b.T);
}

// HF's shift: the logits of row r = b*T + t predict labels[b, t+1].
struct Targets {
  std::vector<int> rows;     // rows with a target
  std::vector<int32_t> ids;  // their targets
};

Targets shifted_targets(const TrainBatch& b) {
  Targets t;
  for (int r = 0; r < b.B; ++r)
    for (int i = 0; i + 1 < b.T; ++i) {
      const int32_t y = b.labels[static_cast<size_t>(r) * b.T + i + 1];
      if (y == kIgnoreIndex) continue;
      t.rows.push_back(r * b.T + i);
      t.ids.push_back(y);
    }
  return t;
}

// The factor HF multiplies q·k by in layer `layer` (0-based).
float attention_scale(const ModelConfig& c, int layer) {
  float scale = 1.0f;
  if (c.arch == Arch::GPTJ || c.scale_attn_weights) scale /= std::sqrt(static_cast<float>(c.head_dim()));
  if (c.arch == Arch::GPT2 && c.scale_attn_by_inverse_layer_idx) scale /= static_cast<float>(layer + 1);
  return scale;
}

// ---- matrix products: fp32 (sgemm) or bf16 (gemm_mixed) ---------------------------------------

// An activation that feeds a matmul: fp32, or bf16 in bf16 mode (ld = row length).
MatRef input(const Impl& ws, const std::vector<float>& f32, const std::vector<uint16_t>& b16, int ld) {
  return ws.options.bf16 ? mat(b16.data(), ld) : mat(f32.data(), ld);
}

// The bf16 copy of weight matrix W, which must point into ModelWeights::params (a copied
// ModelWeights whose tensor pointers still alias the original's would not).
const uint16_t* weight16(const Impl& ws, const float* W) {
  const auto at = reinterpret_cast<uintptr_t>(W), base = reinterpret_cast<uintptr_t>(ws.w16_of);
  if (at < base || at >= base + ws.w16.size() * sizeof(float))
    throw Error("bf16 training: a weight tensor lies outside ModelWeights::params");
  return ws.w16.data() + (W - ws.w16_of);
}

// ---- LoRA on a linear (LoRA passes only) --------------------------------------------------------

// The adapter modules on unit `unit` of layer `layer` (none for the lm_head: layer -1).
const std::vector<int>* lora_modules(const Impl& ws, int layer, LinearUnit unit) {
  if (!ws.lora || layer < 0) return nullptr;
  const auto& v = ws.lora_units[layer][static_cast<int>(unit)];
  return v.empty() ? nullptr : &v;
}

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Module `m`'s dropout mask: keep(i) = (u(i) >= p) with u a hash of (seed, module, i) in [0, 1),
// so a pass recomputed (checkpointing, backward) gives the same mask; kept values scale by 1/(1-p).
struct DropoutMask {
  uint64_t base;
  double p;
  float scale;
  bool keep(size_t i) const { return static_cast<double>(splitmix64(base + i) >> 11) * 0x1.0p-53 >= p; }
};
DropoutMask dropout_mask(const Impl& ws, int m) {
  const double p = ws.lora->config.lora_dropout;
  return {splitmix64(ws.dropout_seed ^ (static_cast<uint64_t>(m) * 0xD6E8FEB86659FD93ULL)), p,
          static_cast<float>(1.0 / (1.0 - p))};
}

// dropout(x) of module `m`'s input into ws.lora_xd; x itself when dropout is off.
const float* lora_input(Impl& ws, int m, const float* x, size_t n) {
  if (!ws.lora_dropout || ws.lora->config.lora_dropout <= 0) return x;
  ws.lora_xd.resize(n);
  const DropoutMask mask = dropout_mask(ws, m);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; ++i) ws.lora_xd[i] = mask.keep(i) ? x[i] * mask.scale : 0.0f;
  return ws.lora_xd.data();
}

// y[M, ldy] (the unit's output) += scaling · (dropout(x) Aᵀ) Bᵀ for each adapter module on it.
void lora_forward(Impl& ws, const std::vector<int>& mods, const float* x, int M, float* y, int ldy) {
  const LoraAdapter& ad = *ws.lora;
  const int r = ad.config.r;
  const float s = ad.config.scaling();
  ws.lora_t.resize(static_cast<size_t>(M) * r);
  for (int i : mods) {
    const LoraModule& m = ad.modules[i];
    const float* xd = lora_input(ws, i, x, static_cast<size_t>(M) * m.in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, r, m.in, 1.0f, xd, m.in, ad.A(m), m.in, 0.0f,
                ws.lora_t.data(), r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, m.rows, r, s, ws.lora_t.data(), r, ad.B(m), r, 1.0f,
                y + m.row0, ldy);
  }
}

// From dy [M, ldy]: dB += s · dy_subᵀ t, dA += (s · dy_sub B)ᵀ xd, and (dx non-null) dx += the
// input gradient through dropout, where dy_sub are the module's columns and t = xd Aᵀ.
void lora_backward(Impl& ws, const std::vector<int>& mods, const float* x, const float* dy, int M, int ldy,
                   float* dx) {
  const LoraAdapter& ad = *ws.lora;
  const int r = ad.config.r;
  const float s = ad.config.scaling();
  const bool dropout = ws.lora_dropout && ad.config.lora_dropout > 0;
  ws.lora_t.resize(static_cast<size_t>(M) * r);
  ws.lora_dt.resize(static_cast<size_t>(M) * r);
  for (int i : mods) {
    const LoraModule& m = ad.modules[i];
    const size_t n = static_cast<size_t>(M) * m.in;
    const float* xd = lora_input(ws, i, x, n);
    float* dA = ws.lora_grads + m.a;
    float* dB = ws.lora_grads + m.b;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, r, m.in, 1.0f, xd, m.in, ad.A(m), m.in, 0.0f,
                ws.lora_t.data(), r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m.rows, r, M, s, dy + m.row0, ldy, ws.lora_t.data(), r, 1.0f,
                dB, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, r, m.rows, s, dy + m.row0, ldy, ad.B(m), r, 0.0f,
                ws.lora_dt.data(), r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, m.in, M, 1.0f, ws.lora_dt.data(), r, xd, m.in, 1.0f, dA,
                m.in);
    if (!dx) continue;
    if (!dropout) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, m.in, r, 1.0f, ws.lora_dt.data(), r, ad.A(m), m.in,
                  1.0f, dx, m.in);
      continue;
    }
    // Through dropout: d(xd)/dx is keep / (1 - p), i.e. zero where xd was dropped, else xd / x.
    ws.lora_dxd.resize(n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, m.in, r, 1.0f, ws.lora_dt.data(), r, ad.A(m), m.in,
                0.0f, ws.lora_dxd.data(), m.in);
    const DropoutMask mask = dropout_mask(ws, i);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t k = 0; k < n; ++k)
      if (mask.keep(k)) dx[k] += ws.lora_dxd[k] * mask.scale;
  }
}

// ---- a linear layer: fp32, bf16 mixed, or a frozen low-precision base, plus its adapters -------

// Rows of a frozen low-precision matrix widened per slab in the backward pass.
constexpr int kSlabRows = 256;

// y[M,N] (= or += with accumulate) x W(lw)ᵀ + b (+ the LoRA modules of (layer, unit)).
void linear_fwd(Impl& ws, float* y, const MatRef& x, const LinearWeights& lw, int M, int K, int N, bool accumulate,
                int layer = -1, LinearUnit unit = LinearUnit::Qkv) {
  if (!lw.w) {  // frozen base in bf16 / fp16 / int8: the inference kernel, which never widens it whole
    if (!accumulate) {
      kernels::matmul_wt(x.f32, M, lw.matrix(), lw.b, y);
    } else {
      ws.frozen_tmp.resize(static_cast<size_t>(M) * N);
      kernels::matmul_wt(x.f32, M, lw.matrix(), lw.b, ws.frozen_tmp.data());
      for (size_t i = 0, n = static_cast<size_t>(M) * N; i < n; ++i) y[i] += ws.frozen_tmp[i];
    }
  } else if (!ws.options.bf16) {
    linear_forward(y, x.f32, lw.w, lw.b, M, K, N, accumulate);
  } else {
    linear_forward_mixed(y, x, weight16(ws, lw.w), lw.b, M, K, N, accumulate);
  }
  if (const auto* mods = lora_modules(ws, layer, unit)) lora_forward(ws, *mods, x.f32, M, y, N);
}

// dx[M,K] = (or +=) dy W; dw, db += their gradients (null: frozen); plus the adapters' gradients.
void linear_bwd(Impl& ws, float* dx, bool dx_accumulate, float* dw, float* db, const float* dy, const MatRef& x,
                const LinearWeights& lw, int M, int K, int N, int layer = -1, LinearUnit unit = LinearUnit::Qkv) {
  if (!lw.w) {
    if (dw || db) throw Error("training: a weight held in low precision cannot be trained (LoRA only)");
    if (dx) {  // dx = dy W, W widened kSlabRows rows at a time
      ws.frozen_slab.resize(static_cast<size_t>(kSlabRows) * K);
      for (int n0 = 0; n0 < N; n0 += kSlabRows) {
        const int n1 = std::min(N, n0 + kSlabRows);
        kernels::widen_rows(lw.matrix(), n0, n1, ws.frozen_slab.data());
        const float beta = (n0 > 0 || dx_accumulate) ? 1.0f : 0.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, n1 - n0, 1.0f, dy + n0, N, ws.frozen_slab.data(),
                    K, beta, dx, K);
      }
    }
  } else if (!ws.options.bf16) {
    linear_backward(dx, dx_accumulate, dw, db, dy, x.f32, lw.w, M, K, N);
  } else {
    linear_backward_mixed(dx, dx_accumulate, dw, db, dy, x, weight16(ws, lw.w), M, K, N);
  }
  if (const auto* mods = lora_modules(ws, layer, unit)) lora_backward(ws, *mods, x.f32, dy, M, N, dx);
}

// layer norm whose output feeds only matmuls: into y (fp32) or y16 (bf16 mode).
void layernorm_fwd(const Impl& ws, std::vector<float>& y, std::vector<uint16_t>& y16, float* mean, float* rstd,
                   const float* x, const float* g, const float* b, int M, int E, float eps) {
  if (!ws.options.bf16) return layernorm_forward(y.data(), mean, rstd, x, g, b, M, E, eps);
  layernorm_forward_bf16(y16.data(), mean, rstd, x, g, b, M, E, eps);
}

// ---- forward ----------------------------------------------------------------------------------

struct Dims {
  int B, T, M, E, H, I, V;
};

Dims dims(const ModelConfig& c, const TrainBatch& b) {
  return {b.B, b.T, b.B * b.T, c.n_embd, c.n_head, c.inner_dim(), c.vocab_size};
}

// ln_1, qkv, rotary and attention: the part both architectures share.
void attention_part_forward(const ModelConfig& c, int l, const BlockWeights& w, LayerActivations& a, Impl& ws,
                            const Dims& d) {
  layernorm_fwd(ws, a.ln1, a.ln1_16, a.ln1_mean.data(), a.ln1_rstd.data(), a.x.data(), w.ln_1.w, w.ln_1.b, d.M, d.E,
                c.layer_norm_epsilon);
  linear_fwd(ws, a.qkv.data(), input(ws, a.ln1, a.ln1_16, d.E), w.qkv, d.M, d.E, 3 * d.E, false, l, LinearUnit::Qkv);
  if (c.arch == Arch::GPTJ) rotary_forward(a.qkv.data(), ws.positions.data(), ws.rope, d.M, d.E, d.H);
  attention_forward(a.att.data(), a.lse.data(), a.qkv.data(), ws.mask.data(),
                    {d.B, d.T, d.E, d.H, attention_scale(c, l)});
}

// out[M,E] = residual input + the block's two branches.
void block_forward(const ModelConfig& c, int l, const BlockWeights& w, LayerActivations& a, float* out, Impl& ws,
                   const Dims& d) {
  const size_t ME = static_cast<size_t>(d.M) * d.E;
  attention_part_forward(c, l, w, a, ws, d);
  MatRef mlp_in = input(ws, a.ln1, a.ln1_16, d.E);  // GPT-J: the MLP reads ln_1(x) too
  const float* resid = a.x.data();
  if (c.arch == Arch::GPT2) {
    std::copy(a.x.begin(), a.x.end(), a.x_mid.begin());
    linear_fwd(ws, a.x_mid.data(), mat(a.att.data(), d.E), w.attn_out, d.M, d.E, d.E, true, l, LinearUnit::AttnOut);
    layernorm_fwd(ws, a.ln2, a.ln2_16, a.ln2_mean.data(), a.ln2_rstd.data(), a.x_mid.data(), w.ln_2.w, w.ln_2.b, d.M,
                  d.E, c.layer_norm_epsilon);
    mlp_in = input(ws, a.ln2, a.ln2_16, d.E);
    resid = a.x_mid.data();
  }
  linear_fwd(ws, a.fc.data(), mlp_in, w.fc_in, d.M, d.E, d.I, false, l, LinearUnit::FcIn);
  activation_forward(c.activation, ws.act.data(), a.fc.data(), static_cast<size_t>(d.M) * d.I);
  std::copy(resid, resid + ME, out);
  if (c.arch == Arch::GPTJ)
    linear_fwd(ws, out, mat(a.att.data(), d.E), w.attn_out, d.M, d.E, d.E, true, l, LinearUnit::AttnOut);
  linear_fwd(ws, out, mat(ws.act.data(), d.I), w.fc_out, d.M, d.I, d.E, true, l, LinearUnit::FcOut);
}

// x[M,E] = wte[ids] (+ wpe[pos]); a low-precision wte (frozen LoRA base) is widened row by row.
void embed(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, Impl& ws, float* x, const Dims& d) {
  const float* wpe = c.arch == Arch::GPT2 ? w.wpe : nullptr;
  if (w.wte) return embedding_forward(x, b.input_ids.data(), ws.positions.data(), w.wte, wpe, d.M, d.E);
  for (int r = 0; r < d.M; ++r) {
    float* xr = x + static_cast<size_t>(r) * d.E;
    embedding_row(w, b.input_ids[r], d.E, xr);
    if (!wpe) continue;
    const float* p = wpe + static_cast<size_t>(ws.positions[r]) * d.E;
    for (int e = 0; e < d.E; ++e) xr[e] += p[e];
  }
}

// The activations block l works in: its own, or (gradient checkpointing) the shared recompute set
// with layer l's saved input swapped in. Undo with release_layer.
LayerActivations& acquire_layer(Impl& ws, int l) {
  if (!ws.options.gradient_checkpointing) return ws.layers[l];
  std::swap(ws.recompute.x, ws.layers[l].x);
  return ws.recompute;
}

void release_layer(Impl& ws, int l) {
  if (ws.options.gradient_checkpointing) std::swap(ws.recompute.x, ws.layers[l].x);
}

// Embedding, every block and ln_f; leaves ln_f's output in ws.lnf.
void model_forward(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, Impl& ws) {
  const Dims d = dims(c, b);
  embed(c, w, b, ws, ws.layers[0].x.data(), d);
  for (int l = 0; l < c.n_layer; ++l) {
    float* out = l + 1 < c.n_layer ? ws.layers[l + 1].x.data() : ws.x_final.data();
    block_forward(c, l, w.blocks[l], acquire_layer(ws, l), out, ws, d);
    release_layer(ws, l);
    ws.recompute_layer = l;
  }
  layernorm_fwd(ws, ws.lnf, ws.lnf16, ws.lnf_mean.data(), ws.lnf_rstd.data(), ws.x_final.data(), w.ln_f.w, w.ln_f.b,
                d.M, d.E, c.layer_norm_epsilon);
}

// ---- gradients --------------------------------------------------------------------------------

// A parameter's gradient sits at the parameter's offset in the flat gradient buffer.
struct GradOf {
  const float* params;
  float* grads;
  float* operator()(const float* p) const { return p && grads ? grads + (p - params) : nullptr; }  // null: frozen
};

// ---- lm_head and loss -------------------------------------------------------------------------

// Σ cross-entropy over the target rows, chunk by chunk: gather the chunk's ln_f rows, logits,
// loss; with gradients also dlogits → dW_head (+db), and d(ln_f output) scattered into ws.dh
// (zero for rows without a target). A tied head's dW lands in wte's gradient by itself.
double head_forward_backward(const ModelConfig& c, const ModelWeights& w, const Targets& t, Impl& ws,
                             const GradOf* grad, float dlogit_scale) {
  const int E = c.n_embd, V = c.vocab_size, n = static_cast<int>(t.rows.size());
  const int chunk = static_cast<int>(ws.logits.size() / V);
  if (grad) std::fill(ws.dh.begin(), ws.dh.end(), 0.0f);
  double total = 0.0;
  for (int r0 = 0; r0 < n; r0 += chunk) {
    const int rows = std::min(chunk, n - r0);
    for (int i = 0; i < rows; ++i) {
      const size_t from = static_cast<size_t>(t.rows[r0 + i]) * E, to = static_cast<size_t>(i) * E;
      if (ws.options.bf16)
        std::copy_n(ws.lnf16.data() + from, E, ws.head_in16.data() + to);
      else
        std::copy_n(ws.lnf.data() + from, E, ws.head_in.data() + to);
    }
    const MatRef head_in = input(ws, ws.head_in, ws.head_in16, E);
    linear_fwd(ws, ws.logits.data(), head_in, w.lm_head, rows, E, V, false);
    total += cross_entropy(ws.logits.data(), t.ids.data() + r0, rows, V, grad != nullptr, dlogit_scale);
    if (!grad) continue;
    linear_bwd(ws, ws.dhead_in.data(), false, (*grad)(w.lm_head.w), (*grad)(w.lm_head.b), ws.logits.data(), head_in,
               w.lm_head, rows, E, V);
    for (int i = 0; i < rows; ++i)
      std::copy_n(ws.dhead_in.data() + static_cast<size_t>(i) * E, E,
                  ws.dh.data() + static_cast<size_t>(t.rows[r0 + i]) * E);
  }
  return total;
}

// ---- backward ---------------------------------------------------------------------------------

// MLP branch: ws.dx holds ∂L/∂(block output); leaves ∂L/∂(MLP input) in ws.dh (overwritten).
void mlp_backward(const ModelConfig& c, int l, const BlockWeights& w, const LayerActivations& a, const MatRef& mlp_in,
                  Impl& ws, const GradOf& g, const Dims& d) {
  const size_t MI = static_cast<size_t>(d.M) * d.I;
  activation_forward(c.activation, ws.act.data(), a.fc.data(), MI);  // recomputed, not stored
  linear_bwd(ws, ws.dfc.data(), false, g(w.fc_out.w), g(w.fc_out.b), ws.dx.data(), mat(ws.act.data(), d.I), w.fc_out,
             d.M, d.I, d.E, l, LinearUnit::FcOut);
  activation_backward(c.activation, ws.dfc.data(), a.fc.data(), MI);
  linear_bwd(ws, ws.dh.data(), false, g(w.fc_in.w), g(w.fc_in.b), ws.dfc.data(), mlp_in, w.fc_in, d.M, d.E, d.I, l,
             LinearUnit::FcIn);
}

// Attention branch from ∂L/∂(projection output) = dy: adds ∂L/∂ln1 into ws.dh (or overwrites it
// when dh_accumulate is false).
void attention_backward_part(const ModelConfig& c, int l, const BlockWeights& w, const LayerActivations& a,
                             const float* dy, bool dh_accumulate, Impl& ws, const GradOf& g, const Dims& d) {
  linear_bwd(ws, ws.datt.data(), false, g(w.attn_out.w), g(w.attn_out.b), dy, mat(a.att.data(), d.E), w.attn_out, d.M,
             d.E, d.E, l, LinearUnit::AttnOut);
  attention_backward(ws.dqkv.data(), ws.datt.data(), a.att.data(), a.lse.data(), a.qkv.data(), ws.mask.data(),
                     {d.B, d.T, d.E, d.H, attention_scale(c, l)});
  if (c.arch == Arch::GPTJ) rotary_backward(ws.dqkv.data(), ws.positions.data(), ws.rope, d.M, d.E, d.H);
  linear_bwd(ws, ws.dh.data(), dh_accumulate, g(w.qkv.w), g(w.qkv.b), ws.dqkv.data(), input(ws, a.ln1, a.ln1_16, d.E),
             w.qkv, d.M, d.E, 3 * d.E, l, LinearUnit::Qkv);
}

// ws.dx: ∂L/∂(block output) on entry, ∂L/∂(block input) on exit (the residual path carries it
// through; each layer norm's backward adds its branch).
void block_backward(const ModelConfig& c, int l, const BlockWeights& w, const LayerActivations& a, Impl& ws,
                    const GradOf& g, const Dims& d) {
  if (c.arch == Arch::GPT2) {
    mlp_backward(c, l, w, a, input(ws, a.ln2, a.ln2_16, d.E), ws, g, d);
    layernorm_backward(ws.dx.data(), g(w.ln_2.w), g(w.ln_2.b), ws.dh.data(), a.x_mid.data(), a.ln2_mean.data(),
                       a.ln2_rstd.data(), w.ln_2.w, d.M, d.E);
    attention_backward_part(c, l, w, a, ws.dx.data(), false, ws, g, d);
  } else {  // both branches read ln_1(x) and receive the same output gradient
    mlp_backward(c, l, w, a, input(ws, a.ln1, a.ln1_16, d.E), ws, g, d);
    attention_backward_part(c, l, w, a, ws.dx.data(), true, ws, g, d);
  }
  layernorm_backward(ws.dx.data(), g(w.ln_1.w), g(w.ln_1.b), ws.dh.data(), a.x.data(), a.ln1_mean.data(),
                     a.ln1_rstd.data(), w.ln_1.w, d.M, d.E);
}

// From ∂L/∂(ln_f output) in ws.dh down to the embeddings (LoRA: down to the lowest adapted block).
void model_backward(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, Impl& ws, const GradOf& g) {
  const Dims d = dims(c, b);
  std::fill(ws.dx.begin(), ws.dx.end(), 0.0f);
  layernorm_backward(ws.dx.data(), g(w.ln_f.w), g(w.ln_f.b), ws.dh.data(), ws.x_final.data(), ws.lnf_mean.data(),
                     ws.lnf_rstd.data(), w.ln_f.w, d.M, d.E);
  const int lowest = ws.lora ? ws.lora_min_layer : 0;
  for (int l = c.n_layer - 1; l >= lowest; --l) {
    LayerActivations& a = acquire_layer(ws, l);
    if (ws.options.gradient_checkpointing && ws.recompute_layer != l) {
      block_forward(c, l, w.blocks[l], a, ws.block_out.data(), ws, d);
      ws.recompute_layer = l;
    }
    block_backward(c, l, w.blocks[l], a, ws, g, d);
    release_layer(ws, l);
  }
  if (ws.lora) return;  // the embeddings are frozen
  embedding_backward(g(w.wte), c.arch == Arch::GPT2 ? g(w.wpe) : nullptr, ws.dx.data(), b.input_ids.data(),
                     ws.positions.data(), d.M, d.E);
}

// Sets up (adapter non-null) or clears the workspace's LoRA state for one pass.
void bind_lora(const ModelConfig& c, const LoraAdapter* adapter, float* grads, bool dropout, uint64_t seed, Impl& ws) {
  ws.lora = adapter;
  ws.lora_grads = grads;
  ws.lora_dropout = dropout;
  ws.dropout_seed = seed;
  ws.lora_units.clear();
  if (!adapter) return;
  if (ws.options.bf16)
    throw Error("LoRA training: the workspace is in bf16 mode; hold the frozen base in bf16 instead (--base_dtype)");
  ws.lora_units.assign(c.n_layer, {});
  ws.lora_min_layer = c.n_layer;
  for (size_t i = 0; i < adapter->modules.size(); ++i) {
    const LoraModule& m = adapter->modules[i];
    if (m.layer < 0 || m.layer >= c.n_layer) throw Error("LoRA: module " + m.name + " is outside the model");
    ws.lora_units[m.layer][static_cast<int>(m.unit)].push_back(static_cast<int>(i));
    ws.lora_min_layer = std::min(ws.lora_min_layer, m.layer);
  }
}

// Clears the LoRA binding when a pass ends, however it ends.
struct LoraBinding {
  Impl& ws;
  LoraBinding(const ModelConfig& c, const LoraAdapter* a, float* grads, bool dropout, uint64_t seed, Impl& w) : ws(w) {
    bind_lora(c, a, grads, dropout, seed, ws);
  }
  ~LoraBinding() {
    ws.lora = nullptr;
    ws.lora_grads = nullptr;
  }
};

}  // namespace

// ---- public API -------------------------------------------------------------------------------

size_t count_targets(const TrainBatch& b) {
  size_t n = 0;
  for (int r = 0; r < b.B; ++r)
    for (int i = 1; i < b.T; ++i) n += b.labels[static_cast<size_t>(r) * b.T + i] != kIgnoreIndex;
  return n;
}

namespace {

// The training pass; `grads` receives the base's gradients, or the adapter's when there is one.
float run_forward_backward(const ModelConfig& c, const ModelWeights& w, const LoraAdapter* adapter,
                           const TrainBatch& b, std::vector<float>& grads, Impl& ws, float grad_scale,
                           uint64_t dropout_seed) {
  const size_t want = adapter ? adapter->params.size() : w.params.size();
  if (grads.empty()) grads.assign(want, 0.0f);
  if (grads.size() != want)
    throw Error("forward_backward: gradient buffer has " + std::to_string(grads.size()) + " floats, the " +
                (adapter ? "adapter " : "model ") + std::to_string(want));
  if (!adapter)
    for (const auto& sl : w.slices)
      if (sl.lowp())
        throw Error("training: " + sl.hf_name + " is held in low precision (" + kernels::to_string(sl.type) +
                    "); a full fine-tune trains fp32 weights (LoRA can keep a frozen base in low precision)");
  prepare(c, w, b, ws);
  const LoraBinding bound(c, adapter, grads.data(), true, dropout_seed, ws);
  const Targets t = shifted_targets(b);
  if (t.rows.empty()) return std::numeric_limits<float>::quiet_NaN();
  model_forward(c, w, b, ws);
  const GradOf g{w.params.data(), adapter ? nullptr : grads.data()};
  const double n = static_cast<double>(t.rows.size());
  const double total = head_forward_backward(c, w, t, ws, &g, static_cast<float>(grad_scale / n));
  model_backward(c, w, b, ws, g);
  return static_cast<float>(total / n);
}

float run_evaluate_loss(const ModelConfig& c, const ModelWeights& w, const LoraAdapter* adapter, const TrainBatch& b,
                        Impl& ws) {
  prepare(c, w, b, ws);
  const LoraBinding bound(c, adapter, nullptr, false, 0, ws);
  const Targets t = shifted_targets(b);
  if (t.rows.empty()) return std::numeric_limits<float>::quiet_NaN();
  model_forward(c, w, b, ws);
  return static_cast<float>(head_forward_backward(c, w, t, ws, nullptr, 0.0f) / static_cast<double>(t.rows.size()));
}

std::vector<float> run_forward_logits(const ModelConfig& c, const ModelWeights& w, const LoraAdapter* adapter,
                                      const TrainBatch& b, Impl& ws) {
  prepare(c, w, b, ws);
  const LoraBinding bound(c, adapter, nullptr, false, 0, ws);
  model_forward(c, w, b, ws);
  const int M = b.B * b.T;
  std::vector<float> logits(static_cast<size_t>(M) * c.vocab_size);
  linear_fwd(ws, logits.data(), input(ws, ws.lnf, ws.lnf16, c.n_embd), w.lm_head, M, c.n_embd, c.vocab_size, false);
  return logits;
}

}  // namespace

float forward_backward(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, std::vector<float>& grads,
                       TrainWorkspace& ws, float grad_scale) {
  return run_forward_backward(c, w, nullptr, b, grads, ws.impl(), grad_scale, 0);
}

float evaluate_loss(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, TrainWorkspace& ws) {
  return run_evaluate_loss(c, w, nullptr, b, ws.impl());
}

std::vector<float> forward_logits(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b,
                                  TrainWorkspace& ws) {
  return run_forward_logits(c, w, nullptr, b, ws.impl());
}

float forward_backward_lora(const ModelConfig& c, const ModelWeights& w, const LoraAdapter& adapter,
                            const TrainBatch& b, std::vector<float>& grads, TrainWorkspace& ws, float grad_scale,
                            uint64_t dropout_seed) {
  return run_forward_backward(c, w, &adapter, b, grads, ws.impl(), grad_scale, dropout_seed);
}

float evaluate_loss_lora(const ModelConfig& c, const ModelWeights& w, const LoraAdapter& adapter, const TrainBatch& b,
                         TrainWorkspace& ws) {
  return run_evaluate_loss(c, w, &adapter, b, ws.impl());
}

std::vector<float> forward_logits_lora(const ModelConfig& c, const ModelWeights& w, const LoraAdapter& adapter,
                                       const TrainBatch& b, TrainWorkspace& ws) {
  return run_forward_logits(c, w, &adapter, b, ws.impl());
}

}  // namespace lmforge
