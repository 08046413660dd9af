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

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "lmforge/error.h"
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
  layers.assign(c.n_layer, {});
  for (auto& a : layers) {
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
    if (!gpt2) continue;
    a.x_mid.resize(M * E);
    if (bf16)
      a.ln2_16.resize(M * E);
    else
      a.ln2.resize(M * E);
    a.ln2_mean.resize(M);
    a.ln2_rstd.resize(M);
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
  size_t n = 0;
  for (const auto& a : layers)
    n += bytes_of(a.x) + bytes_of(a.ln1) + bytes_of(a.ln1_mean) + bytes_of(a.ln1_rstd) + bytes_of(a.qkv) +
         bytes_of(a.att) + bytes_of(a.lse) + bytes_of(a.x_mid) + bytes_of(a.ln2) + bytes_of(a.ln2_mean) +
         bytes_of(a.ln2_rstd) + bytes_of(a.fc) + bytes_of(a.ln1_16) + bytes_of(a.ln2_16);
  for (const auto* v : {&x_final, &lnf, &lnf_mean, &lnf_rstd, &act, &dx, &dh, &datt, &dqkv, &dfc, &head_in, &dhead_in,
                        &logits, &rope.sin, &rope.cos})
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

// linear_forward / linear_backward, with x an fp32 array in fp32 mode.
void linear_fwd(const Impl& ws, float* y, const MatRef& x, const float* W, const float* b, int M, int K, int N,
                bool accumulate) {
  if (!ws.options.bf16) return linear_forward(y, x.f32, W, b, M, K, N, accumulate);
  linear_forward_mixed(y, x, weight16(ws, W), b, M, K, N, accumulate);
}

void linear_bwd(const Impl& ws, float* dx, bool dx_accumulate, float* dw, float* db, const float* dy, const MatRef& x,
                const float* W, int M, int K, int N) {
  if (!ws.options.bf16) return linear_backward(dx, dx_accumulate, dw, db, dy, x.f32, W, M, K, N);
  linear_backward_mixed(dx, dx_accumulate, dw, db, dy, x, weight16(ws, W), M, K, N);
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
  linear_fwd(ws, a.qkv.data(), input(ws, a.ln1, a.ln1_16, d.E), w.qkv.w, w.qkv.b, d.M, d.E, 3 * d.E, false);
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
    linear_fwd(ws, a.x_mid.data(), mat(a.att.data(), d.E), w.attn_out.w, w.attn_out.b, d.M, d.E, d.E, true);
    layernorm_fwd(ws, a.ln2, a.ln2_16, a.ln2_mean.data(), a.ln2_rstd.data(), a.x_mid.data(), w.ln_2.w, w.ln_2.b, d.M,
                  d.E, c.layer_norm_epsilon);
    mlp_in = input(ws, a.ln2, a.ln2_16, d.E);
    resid = a.x_mid.data();
  }
  linear_fwd(ws, a.fc.data(), mlp_in, w.fc_in.w, w.fc_in.b, d.M, d.E, d.I, false);
  activation_forward(c.activation, ws.act.data(), a.fc.data(), static_cast<size_t>(d.M) * d.I);
  std::copy(resid, resid + ME, out);
  if (c.arch == Arch::GPTJ)
    linear_fwd(ws, out, mat(a.att.data(), d.E), w.attn_out.w, w.attn_out.b, d.M, d.E, d.E, true);
  linear_fwd(ws, out, mat(ws.act.data(), d.I), w.fc_out.w, w.fc_out.b, d.M, d.I, d.E, true);
}

// Embedding, every block and ln_f; leaves ln_f's output in ws.lnf.
void model_forward(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, Impl& ws) {
  const Dims d = dims(c, b);
  embedding_forward(ws.layers[0].x.data(), b.input_ids.data(), ws.positions.data(), w.wte,
                    c.arch == Arch::GPT2 ? w.wpe : nullptr, d.M, d.E);
  for (int l = 0; l < c.n_layer; ++l) {
    float* out = l + 1 < c.n_layer ? ws.layers[l + 1].x.data() : ws.x_final.data();
    block_forward(c, l, w.blocks[l], ws.layers[l], out, ws, d);
  }
  layernorm_fwd(ws, ws.lnf, ws.lnf16, ws.lnf_mean.data(), ws.lnf_rstd.data(), ws.x_final.data(), w.ln_f.w, w.ln_f.b,
                d.M, d.E, c.layer_norm_epsilon);
}

// ---- gradients --------------------------------------------------------------------------------

// A parameter's gradient sits at the parameter's offset in the flat gradient buffer.
struct GradOf {
  const float* params;
  float* grads;
  float* operator()(const float* p) const { return p ? grads + (p - params) : nullptr; }
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
    linear_fwd(ws, ws.logits.data(), head_in, w.lm_head.w, w.lm_head.b, rows, E, V, false);
    total += cross_entropy(ws.logits.data(), t.ids.data() + r0, rows, V, grad != nullptr, dlogit_scale);
    if (!grad) continue;
    linear_bwd(ws, ws.dhead_in.data(), false, (*grad)(w.lm_head.w), (*grad)(w.lm_head.b), ws.logits.data(), head_in,
               w.lm_head.w, rows, E, V);
    for (int i = 0; i < rows; ++i)
      std::copy_n(ws.dhead_in.data() + static_cast<size_t>(i) * E, E,
                  ws.dh.data() + static_cast<size_t>(t.rows[r0 + i]) * E);
  }
  return total;
}

// ---- backward ---------------------------------------------------------------------------------

// MLP branch: ws.dx holds ∂L/∂(block output); leaves ∂L/∂(MLP input) in ws.dh (overwritten).
void mlp_backward(const ModelConfig& c, const BlockWeights& w, const LayerActivations& a, const MatRef& mlp_in,
                  Impl& ws, const GradOf& g, const Dims& d) {
  const size_t MI = static_cast<size_t>(d.M) * d.I;
  activation_forward(c.activation, ws.act.data(), a.fc.data(), MI);  // recomputed, not stored
  linear_bwd(ws, ws.dfc.data(), false, g(w.fc_out.w), g(w.fc_out.b), ws.dx.data(), mat(ws.act.data(), d.I), w.fc_out.w,
             d.M, d.I, d.E);
  activation_backward(c.activation, ws.dfc.data(), a.fc.data(), MI);
  linear_bwd(ws, ws.dh.data(), false, g(w.fc_in.w), g(w.fc_in.b), ws.dfc.data(), mlp_in, w.fc_in.w, d.M, d.E, d.I);
}

// Attention branch from ∂L/∂(projection output) = dy: adds ∂L/∂ln1 into ws.dh (or overwrites it
// when dh_accumulate is false).
void attention_backward_part(const ModelConfig& c, int l, const BlockWeights& w, const LayerActivations& a,
                             const float* dy, bool dh_accumulate, Impl& ws, const GradOf& g, const Dims& d) {
  linear_bwd(ws, ws.datt.data(), false, g(w.attn_out.w), g(w.attn_out.b), dy, mat(a.att.data(), d.E), w.attn_out.w, d.M,
             d.E, d.E);
  attention_backward(ws.dqkv.data(), ws.datt.data(), a.att.data(), a.lse.data(), a.qkv.data(), ws.mask.data(),
                     {d.B, d.T, d.E, d.H, attention_scale(c, l)});
  if (c.arch == Arch::GPTJ) rotary_backward(ws.dqkv.data(), ws.positions.data(), ws.rope, d.M, d.E, d.H);
  linear_bwd(ws, ws.dh.data(), dh_accumulate, g(w.qkv.w), g(w.qkv.b), ws.dqkv.data(), input(ws, a.ln1, a.ln1_16, d.E),
             w.qkv.w, d.M, d.E, 3 * d.E);
}

// ws.dx: ∂L/∂(block output) on entry, ∂L/∂(block input) on exit (the residual path carries it
// through; each layer norm's backward adds its branch).
void block_backward(const ModelConfig& c, int l, const BlockWeights& w, const LayerActivations& a, Impl& ws,
                    const GradOf& g, const Dims& d) {
  if (c.arch == Arch::GPT2) {
    mlp_backward(c, w, a, input(ws, a.ln2, a.ln2_16, d.E), ws, g, d);
    layernorm_backward(ws.dx.data(), g(w.ln_2.w), g(w.ln_2.b), ws.dh.data(), a.x_mid.data(), a.ln2_mean.data(),
                       a.ln2_rstd.data(), w.ln_2.w, d.M, d.E);
    attention_backward_part(c, l, w, a, ws.dx.data(), false, ws, g, d);
  } else {  // both branches read ln_1(x) and receive the same output gradient
    mlp_backward(c, w, a, input(ws, a.ln1, a.ln1_16, d.E), ws, g, d);
    attention_backward_part(c, l, w, a, ws.dx.data(), true, ws, g, d);
  }
  layernorm_backward(ws.dx.data(), g(w.ln_1.w), g(w.ln_1.b), ws.dh.data(), a.x.data(), a.ln1_mean.data(),
                     a.ln1_rstd.data(), w.ln_1.w, d.M, d.E);
}

// From ∂L/∂(ln_f output) in ws.dh down to the embeddings.
void model_backward(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, Impl& ws, const GradOf& g) {
  const Dims d = dims(c, b);
  std::fill(ws.dx.begin(), ws.dx.end(), 0.0f);
  layernorm_backward(ws.dx.data(), g(w.ln_f.w), g(w.ln_f.b), ws.dh.data(), ws.x_final.data(), ws.lnf_mean.data(),
                     ws.lnf_rstd.data(), w.ln_f.w, d.M, d.E);
  for (int l = c.n_layer - 1; l >= 0; --l) block_backward(c, l, w.blocks[l], ws.layers[l], ws, g, d);
  embedding_backward(g(w.wte), c.arch == Arch::GPT2 ? g(w.wpe) : nullptr, ws.dx.data(), b.input_ids.data(),
                     ws.positions.data(), d.M, d.E);
}

}  // namespace

// ---- public API -------------------------------------------------------------------------------

size_t count_targets(const TrainBatch& b) {
  size_t n = 0;
  for (int r = 0; r < b.B; ++r)
    for (int i = 1; i < b.T; ++i) n += b.labels[static_cast<size_t>(r) * b.T + i] != kIgnoreIndex;
  return n;
}

float forward_backward(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, std::vector<float>& grads,
                       TrainWorkspace& workspace, float grad_scale) {
  if (grads.empty()) grads.assign(w.params.size(), 0.0f);
  if (grads.size() != w.params.size())
    throw Error("forward_backward: gradient buffer has " + std::to_string(grads.size()) + " floats, the model " +
                std::to_string(w.params.size()));
  Impl& ws = workspace.impl();
  prepare(c, w, b, ws);
  const Targets t = shifted_targets(b);
  if (t.rows.empty()) return std::numeric_limits<float>::quiet_NaN();
  model_forward(c, w, b, ws);
  const GradOf g{w.params.data(), grads.data()};
  const double n = static_cast<double>(t.rows.size());
  const double total = head_forward_backward(c, w, t, ws, &g, static_cast<float>(grad_scale / n));
  model_backward(c, w, b, ws, g);
  return static_cast<float>(total / n);
}

float evaluate_loss(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b, TrainWorkspace& workspace) {
  Impl& ws = workspace.impl();
  prepare(c, w, b, ws);
  const Targets t = shifted_targets(b);
  if (t.rows.empty()) return std::numeric_limits<float>::quiet_NaN();
  model_forward(c, w, b, ws);
  return static_cast<float>(head_forward_backward(c, w, t, ws, nullptr, 0.0f) / static_cast<double>(t.rows.size()));
}

std::vector<float> forward_logits(const ModelConfig& c, const ModelWeights& w, const TrainBatch& b,
                                  TrainWorkspace& workspace) {
  Impl& ws = workspace.impl();
  prepare(c, w, b, ws);
  model_forward(c, w, b, ws);
  const int M = b.B * b.T;
  std::vector<float> logits(static_cast<size_t>(M) * c.vocab_size);
  linear_fwd(ws, logits.data(), input(ws, ws.lnf, ws.lnf16, c.n_embd), w.lm_head.w, w.lm_head.b, M, c.n_embd,
             c.vocab_size, false);
  return logits;
}

}  // namespace lmforge
