// Parameter layout and loading from HF checkpoints.
#include "lmforge/model/weights.h"

#include <string>

#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"

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

// Points the views of `w` into w.params following the slice table.
void bind_views(const ModelConfig& c, ModelWeights& w) {
  const int E = c.n_embd, I = c.inner_dim(), V = c.vocab_size;
  auto at = [&](const std::string& name) -> const float* {
    for (const auto& s : w.slices)
      if (s.hf_name == name) return w.params.data() + s.offset;
    return nullptr;
  };
  w.wte = at("transformer.wte.weight");
  w.wpe = at("transformer.wpe.weight");
  w.blocks.assign(c.n_layer, {});
  const bool j = c.arch == Arch::GPTJ;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    BlockWeights& b = w.blocks[l];
    b.ln_1 = {at(h + "ln_1.weight"), at(h + "ln_1.bias")};
    if (j) {
      b.qkv = {at(h + "attn.q_proj.weight"), nullptr, E, 3 * E};
      b.attn_out = {at(h + "attn.out_proj.weight"), nullptr, E, E};
      b.fc_in = {at(h + "mlp.fc_in.weight"), at(h + "mlp.fc_in.bias"), E, I};
      b.fc_out = {at(h + "mlp.fc_out.weight"), at(h + "mlp.fc_out.bias"), I, E};
    } else {
      b.ln_2 = {at(h + "ln_2.weight"), at(h + "ln_2.bias")};
      b.qkv = {at(h + "attn.c_attn.weight"), at(h + "attn.c_attn.bias"), E, 3 * E};
      b.attn_out = {at(h + "attn.c_proj.weight"), at(h + "attn.c_proj.bias"), E, E};
      b.fc_in = {at(h + "mlp.c_fc.weight"), at(h + "mlp.c_fc.bias"), E, I};
      b.fc_out = {at(h + "mlp.c_proj.weight"), at(h + "mlp.c_proj.bias"), I, E};
    }
  }
  w.ln_f = {at("transformer.ln_f.weight"), at("transformer.ln_f.bias")};
  const float* head = at("lm_head.weight");
  w.lm_head = {head ? head : w.wte, at("lm_head.bias"), E, V};
}

// Finds `name` in the checkpoint with or without the "transformer." prefix.
const TensorView* find_tensor(const Checkpoint& ckpt, const std::string& name) {
  if (ckpt.has(name)) return &ckpt.get(name);
  const std::string bare = name.starts_with("transformer.") ? name.substr(12) : name;
  if (ckpt.has(bare)) return &ckpt.get(bare);
  return nullptr;
}

}  // namespace

ModelWeights allocate_weights(const ModelConfig& c) {
  ModelWeights w;
  const auto plan = c.arch == Arch::GPTJ ? plan_gptj(c) : plan_gpt2(c);
  // GPT-J's q, k, v must be adjacent as [q; k; v]: give them offsets inside one fused block.
  size_t offset = 0;
  size_t fused_base = 0;
  for (const auto& p : plan) {
    ParamSlice s{p.name, 0, p.hf_shape, p.transposed};
    const bool is_qkv = c.arch == Arch::GPTJ && (p.name.ends_with("q_proj.weight") || p.name.ends_with("k_proj.weight") ||
                                                 p.name.ends_with("v_proj.weight"));
    if (is_qkv) {
      if (p.name.ends_with("k_proj.weight")) {  // first of the three in HF order: reserve the block
        fused_base = offset;
        offset += 3 * static_cast<size_t>(numel(p.hf_shape));
      }
      s.offset = fused_base + qkv_row_block(p.name) * numel(p.hf_shape);
    } else {
      s.offset = offset;
      offset += numel(p.hf_shape);
    }
    w.slices.push_back(std::move(s));
  }
  w.params.assign(offset, 0.0f);
  bind_views(c, w);
  return w;
}

void load_weights(const Checkpoint& ckpt, const ModelConfig& c, ModelWeights& w) {
  std::vector<float> tmp;
  for (const auto& s : w.slices) {
    const TensorView* t = find_tensor(ckpt, s.hf_name);
    if (!t) throw Error(ckpt.description() + ": missing tensor '" + s.hf_name + "'");
    if (t->shape != s.hf_shape)
      throw Error(ckpt.description() + ": tensor '" + s.hf_name + "' has shape " + shape_str(t->shape) +
                  ", config.json implies " + shape_str(s.hf_shape));
    float* dst = w.params.data() + s.offset;
    if (!s.transposed) {
      to_float32(*t, dst);
      continue;
    }
    // Conv1D [in, out] -> our [out, in].
    const int64_t in = s.hf_shape[0], out = s.hf_shape[1];
    tmp.resize(in * out);
    to_float32(*t, tmp.data());
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < out; ++o) dst[o * in + i] = tmp[i * out + o];
  }
}

}  // namespace lmforge
