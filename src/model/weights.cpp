// Parameter layout and loading from HF checkpoints.
#include "lmforge/model/weights.h"

#include <cstring>
#include <string>

#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/tensor.h"

namespace lmforge {
namespace {

// The HF tensors of a model in named_parameters() order, with where each lands in our layout.
struct Planned {
  std::string name;
  std::vector<int64_t> hf_shape;
  bool transposed;  // Conv1D [in, out] on disk
};

std::vector<Planned> plan_gpt2(const ModelConfig& c) {
  const int64_t E = c.n_embd, I = c.inner_dim(), V = c.vocab_size, P = c.n_positions;
  std::vector<Planned> p = {{"transformer.wte.weight", {V, E}, false}, {"transformer.wpe.weight", {P, E}, false}};
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    p.push_back({h + "ln_1.weight", {E}, false});
    p.push_back({h + "ln_1.bias", {E}, false});
    p.push_back({h + "attn.c_attn.weight", {E, 3 * E}, true});
    p.push_back({h + "attn.c_attn.bias", {3 * E}, false});
    p.push_back({h + "attn.c_proj.weight", {E, E}, true});
    p.push_back({h + "attn.c_proj.bias", {E}, false});
    p.push_back({h + "ln_2.weight", {E}, false});
    p.push_back({h + "ln_2.bias", {E}, false});
    p.push_back({h + "mlp.c_fc.weight", {E, I}, true});
    p.push_back({h + "mlp.c_fc.bias", {I}, false});
    p.push_back({h + "mlp.c_proj.weight", {I, E}, true});
    p.push_back({h + "mlp.c_proj.bias", {E}, false});
  }
  p.push_back({"transformer.ln_f.weight", {E}, false});
  p.push_back({"transformer.ln_f.bias", {E}, false});
  if (!c.tie_word_embeddings) p.push_back({"lm_head.weight", {V, E}, false});
  return p;
}

std::vector<Planned> plan_gptj(const ModelConfig& c) {
  const int64_t E = c.n_embd, I = c.inner_dim(), V = c.vocab_size;
  std::vector<Planned> p = {{"transformer.wte.weight", {V, E}, false}};
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    p.push_back({h + "ln_1.weight", {E}, false});
    p.push_back({h + "ln_1.bias", {E}, false});
    p.push_back({h + "attn.k_proj.weight", {E, E}, false});
    p.push_back({h + "attn.v_proj.weight", {E, E}, false});
    p.push_back({h + "attn.q_proj.weight", {E, E}, false});
    p.push_back({h + "attn.out_proj.weight", {E, E}, false});
    p.push_back({h + "mlp.fc_in.weight", {I, E}, false});
    p.push_back({h + "mlp.fc_in.bias", {I}, false});
    p.push_back({h + "mlp.fc_out.weight", {E, I}, false});
    p.push_back({h + "mlp.fc_out.bias", {E}, false});
  }
  p.push_back({"transformer.ln_f.weight", {E}, false});
  p.push_back({"transformer.ln_f.bias", {E}, false});
  p.push_back({"lm_head.weight", {V, E}, false});
  p.push_back({"lm_head.bias", {V}, false});
  return p;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// GPT-J's q/k/v live in one fused [3E, E] matrix: q rows first, then k, then v.
size_t qkv_row_block(const std::string& name) {
  if (name.ends_with("q_proj.weight")) return 0;
  if (name.ends_with("k_proj.weight")) return 1;
  return 2;
}

// Weight matrices (and the token embedding, which GPT-2 also uses as its head) can be kept in
// low precision; biases, norms and the small position table stay fp32.
bool is_matrix(const std::string& name) {
  return name.ends_with(".weight") && name.find("ln_") == std::string::npos && name.find("wpe") == std::string::npos;
}

const ParamSlice* find_slice(const ModelWeights& w, const std::string& name) {
  for (const auto& s : w.slices)
    if (s.hf_name == name) return &s;
  return nullptr;
}

// The low-precision matrix of `rows` rows starting at slice s (rows x in).
kernels::WeightMatrix lowp_matrix(const ModelWeights& w, const ParamSlice& s, int rows, int in) {
  const size_t bytes = s.offset * kernels::weight_type_size(w.matrix_type);
  const float* scales = w.matrix_type == kernels::WeightType::I8 ? w.matrix_scales.data() + s.scale_offset : nullptr;
  return {w.matrix_type, w.matrix_data.data() + bytes, scales, rows, in};
}

// Points the views of `w` into w.params (and w.matrix_data) following the slice table.
void bind_views(const ModelConfig& c, ModelWeights& w) {
  const int E = c.n_embd, I = c.inner_dim(), V = c.vocab_size;
  auto at = [&](const std::string& name) -> const float* {
    const ParamSlice* s = find_slice(w, name);
    return s && !s->lowp ? w.params.data() + s->offset : nullptr;
  };
  // A linear layer [out, in]: fp32 view, or the low-precision matrix.
  auto linear = [&](const std::string& weight, const float* bias, int in, int out) {
    LinearWeights l{at(weight), bias, in, out, {}};
    const ParamSlice* s = find_slice(w, weight);
    if (s && s->lowp) l.lowp = lowp_matrix(w, *s, out, in);
    return l;
  };
  w.wte = at("transformer.wte.weight");
  if (const ParamSlice* s = find_slice(w, "transformer.wte.weight"); s && s->lowp) w.wte_lowp = lowp_matrix(w, *s, V, E);
  w.wpe = at("transformer.wpe.weight");
  w.blocks.assign(c.n_layer, {});
  const bool j = c.arch == Arch::GPTJ;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    BlockWeights& b = w.blocks[l];
    b.ln_1 = {at(h + "ln_1.weight"), at(h + "ln_1.bias")};
    if (j) {  // q rows lead the fused [q; k; v] block
      b.qkv = linear(h + "attn.q_proj.weight", nullptr, E, 3 * E);
      b.attn_out = linear(h + "attn.out_proj.weight", nullptr, E, E);
      b.fc_in = linear(h + "mlp.fc_in.weight", at(h + "mlp.fc_in.bias"), E, I);
      b.fc_out = linear(h + "mlp.fc_out.weight", at(h + "mlp.fc_out.bias"), I, E);
    } else {
      b.ln_2 = {at(h + "ln_2.weight"), at(h + "ln_2.bias")};
      b.qkv = linear(h + "attn.c_attn.weight", at(h + "attn.c_attn.bias"), E, 3 * E);
      b.attn_out = linear(h + "attn.c_proj.weight", at(h + "attn.c_proj.bias"), E, E);
      b.fc_in = linear(h + "mlp.c_fc.weight", at(h + "mlp.c_fc.bias"), E, I);
      b.fc_out = linear(h + "mlp.c_proj.weight", at(h + "mlp.c_proj.bias"), I, E);
    }
  }
  w.ln_f = {at("transformer.ln_f.weight"), at("transformer.ln_f.bias")};
  if (find_slice(w, "lm_head.weight")) {
    w.lm_head = linear("lm_head.weight", at("lm_head.bias"), E, V);
  } else {  // tied to the embedding
    w.lm_head = {w.wte, at("lm_head.bias"), E, V, w.wte_lowp};
  }
}

// Rows of a matrix slice in our [out, in] layout.
int64_t matrix_rows(const ParamSlice& s) { return s.transposed ? s.hf_shape[1] : s.hf_shape[0]; }

// fp32 values (already in [out, in] layout) into slice s of the low-precision store.
void store_lowp(const ParamSlice& s, const float* values, ModelWeights& w) {
  const int64_t rows = matrix_rows(s), in = numel(s.hf_shape) / rows;
  uint8_t* base = w.matrix_data.data();
  switch (w.matrix_type) {
    case kernels::WeightType::BF16:
    case kernels::WeightType::F16: {
      auto* dst = reinterpret_cast<uint16_t*>(base) + s.offset;
      const bool bf = w.matrix_type == kernels::WeightType::BF16;
      for (int64_t i = 0; i < rows * in; ++i) dst[i] = bf ? float_to_bf16(values[i]) : float_to_fp16(values[i]);
      return;
    }
    case kernels::WeightType::I8:
      kernels::quantize_rows_int8(values, static_cast<int>(rows), static_cast<int>(in),
                                  reinterpret_cast<int8_t*>(base) + s.offset, w.matrix_scales.data() + s.scale_offset);
      return;
    case kernels::WeightType::F32:
      break;
  }
}

// Finds `name` in the checkpoint with or without the "transformer." prefix.
const TensorView* find_tensor(const Checkpoint& ckpt, const std::string& name) {
  if (ckpt.has(name)) return &ckpt.get(name);
  const std::string bare = name.starts_with("transformer.") ? name.substr(12) : name;
  if (ckpt.has(bare)) return &ckpt.get(bare);
  return nullptr;
}

}  // namespace

ModelWeights allocate_weights(const ModelConfig& c, kernels::WeightType matrices) {
  ModelWeights w;
  w.matrix_type = matrices;
  const bool lowp = matrices != kernels::WeightType::F32;
  const auto plan = c.arch == Arch::GPTJ ? plan_gptj(c) : plan_gpt2(c);
  // Two stores: fp32 params, and (in low precision) the matrices, in elements and in rows.
  size_t offset = 0, lowp_offset = 0, lowp_rows = 0;
  // GPT-J's q, k, v must be adjacent as [q; k; v]: give them offsets inside one fused block.
  size_t fused_base = 0, fused_rows = 0;
  for (const auto& p : plan) {
    ParamSlice s{p.name, 0, p.hf_shape, p.transposed, lowp && is_matrix(p.name), 0};
    const size_t n = numel(p.hf_shape);
    const size_t rows = p.hf_shape.size() == 2 ? matrix_rows(s) : 0;
    size_t& next = s.lowp ? lowp_offset : offset;
    const bool is_qkv = c.arch == Arch::GPTJ && (p.name.ends_with("q_proj.weight") || p.name.ends_with("k_proj.weight") ||
                                                 p.name.ends_with("v_proj.weight"));
    if (is_qkv) {
      if (p.name.ends_with("k_proj.weight")) {  // first of the three in HF order: reserve the block
        fused_base = next;
        next += 3 * n;
        fused_rows = lowp_rows;
        if (s.lowp) lowp_rows += 3 * rows;
      }
      s.offset = fused_base + qkv_row_block(p.name) * n;
      s.scale_offset = fused_rows + qkv_row_block(p.name) * rows;
    } else {
      s.offset = next;
      next += n;
      if (s.lowp) {
        s.scale_offset = lowp_rows;
        lowp_rows += rows;
      }
    }
    w.slices.push_back(std::move(s));
  }
  w.params.assign(offset, 0.0f);
  w.matrix_data.assign(lowp_offset * kernels::weight_type_size(matrices), 0);
  if (matrices == kernels::WeightType::I8) w.matrix_scales.assign(lowp_rows, 1.0f);
  bind_views(c, w);
  return w;
}

void embedding_row(const ModelWeights& w, int token, int E, float* out) {
  if (w.wte)
    std::memcpy(out, w.wte + static_cast<size_t>(token) * E, E * sizeof(float));
  else
    kernels::widen_rows(w.wte_lowp, token, token + 1, out);
}

void load_weights(const Checkpoint& ckpt, const ModelConfig& c, ModelWeights& w) {
  std::vector<float> tmp, staged;
  for (const auto& s : w.slices) {
    const TensorView* t = find_tensor(ckpt, s.hf_name);
    if (!t) throw Error(ckpt.description() + ": missing tensor '" + s.hf_name + "'");
    if (t->shape != s.hf_shape)
      throw Error(ckpt.description() + ": tensor '" + s.hf_name + "' has shape " + shape_str(t->shape) +
                  ", config.json implies " + shape_str(s.hf_shape));
    // fp32 tensors go straight to their place; low-precision ones through one tensor's worth of
    // fp32 scratch (`staged`), converted as soon as it is complete.
    float* dst = s.lowp ? nullptr : w.params.data() + s.offset;
    if (s.lowp) {
      staged.resize(numel(s.hf_shape));
      dst = staged.data();
    }
    if (!s.transposed) {
      to_float32(*t, dst);
    } else {  // Conv1D [in, out] -> our [out, in]
      const int64_t in = s.hf_shape[0], out = s.hf_shape[1];
      tmp.resize(in * out);
      to_float32(*t, tmp.data());
      for (int64_t i = 0; i < in; ++i)
        for (int64_t o = 0; o < out; ++o) dst[o * in + i] = tmp[i * out + o];
    }
    if (s.lowp) store_lowp(s, staged.data(), w);
  }
}

}  // namespace lmforge
