// Parameter layout and loading from HF checkpoints.
#include "lmforge/model/weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
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
  const float* scales = kernels::is_int8(s.type) ? w.matrix_scales.data() + s.scale_offset : nullptr;
  return {s.type, w.matrix_data.data() + s.offset, scales, rows, in};
}

// Points the views of `w` into w.params (and w.matrix_data) following the slice table.
void bind_views(const ModelConfig& c, ModelWeights& w) {
  const int E = c.n_embd, I = c.inner_dim(), V = c.vocab_size;
  auto at = [&](const std::string& name) -> const float* {
    const ParamSlice* s = find_slice(w, name);
    return s && !s->lowp() ? w.params.data() + s->offset : nullptr;
  };
  // A linear layer [out, in]: fp32 view, or the low-precision matrix.
  auto linear = [&](const std::string& weight, const float* bias, int in, int out) {
    LinearWeights l{at(weight), bias, in, out, {}, {}};
    const ParamSlice* s = find_slice(w, weight);
    if (s && s->lowp()) l.lowp = lowp_matrix(w, *s, out, in);
    return l;
  };
  w.wte = at("transformer.wte.weight");
  if (const ParamSlice* s = find_slice(w, "transformer.wte.weight"); s && s->lowp()) w.wte_lowp = lowp_matrix(w, *s, V, E);
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
    w.lm_head = {w.wte, at("lm_head.bias"), E, V, w.wte_lowp, {}};
  }
}

// Rows of a matrix slice in our [out, in] layout.
int64_t matrix_rows(const ParamSlice& s) { return s.transposed ? s.hf_shape[1] : s.hf_shape[0]; }

// fp32 values of rows [row0, row0 + rows) of slice s (already in [out, in] layout) into the
// low-precision store.
void store_lowp_rows(const ParamSlice& s, const float* values, int64_t row0, int64_t rows, ModelWeights& w) {
  const int64_t in = numel(s.hf_shape) / matrix_rows(s);
  uint8_t* dst = w.matrix_data.data() + s.offset + row0 * in * kernels::weight_type_size(s.type);
  switch (s.type) {
    case kernels::WeightType::BF16:
    case kernels::WeightType::BF16_COMPUTE:
    case kernels::WeightType::F16: {
      auto* d = reinterpret_cast<uint16_t*>(dst);
      const bool bf = kernels::is_bf16(s.type);
      for (int64_t i = 0; i < rows * in; ++i) d[i] = bf ? float_to_bf16(values[i]) : float_to_fp16(values[i]);
      return;
    }
    case kernels::WeightType::I8:
    case kernels::WeightType::I8_DYNAMIC:
      kernels::quantize_rows_int8(values, static_cast<int>(rows), static_cast<int>(in), reinterpret_cast<int8_t*>(dst),
                                  w.matrix_scales.data() + s.scale_offset + row0);
      return;
    case kernels::WeightType::F32:
      break;
  }
}

// A whole slice.
void store_lowp(const ParamSlice& s, const float* values, ModelWeights& w) {
  store_lowp_rows(s, values, 0, matrix_rows(s), w);
}

// Finds `name` in the checkpoint with or without the "transformer." prefix.
const TensorView* find_tensor(const Checkpoint& ckpt, const std::string& name) {
  if (ckpt.has(name)) return &ckpt.get(name);
  const std::string bare = name.starts_with("transformer.") ? name.substr(12) : name;
  if (ckpt.has(bare)) return &ckpt.get(bare);
  return nullptr;
}

// The module a weight belongs to: its name without ".weight".
std::string module_of(const std::string& weight_name) {
  return weight_name.ends_with(".weight") ? weight_name.substr(0, weight_name.size() - 7) : weight_name;
}

// How tensor `name` is held: its module's type for weight matrices, fp32 for everything else.
kernels::WeightType stored_type(const std::string& name, const MatrixTypes& types) {
  return is_matrix(name) ? types.of(module_of(name)) : kernels::WeightType::F32;
}

bool is_fused_qkv(const ModelConfig& c, const std::string& name) {
  return c.arch == Arch::GPTJ &&
         (name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight"));
}

// GPT-J's q/k/v are one matrix here: one storage type for the three.
void check_fused_types(const ModelConfig& c, const MatrixTypes& types) {
  if (c.arch != Arch::GPTJ) return;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string a = "transformer.h." + std::to_string(l) + ".attn.";
    const auto q = types.of(a + "q_proj"), k = types.of(a + "k_proj"), v = types.of(a + "v_proj");
    if (q != k || q != v)
      throw Error(a + "q_proj, k_proj and v_proj must share one dtype (they form one fused matrix), got " +
                  kernels::to_string(q) + ", " + kernels::to_string(k) + ", " + kernels::to_string(v));
  }
}

}  // namespace

ModelWeights allocate_weights(const ModelConfig& c, const MatrixTypes& types) {
  ModelWeights w;
  w.types = types;
  w.matrix_type = types.base;
  const auto plan = c.arch == Arch::GPTJ ? plan_gptj(c) : plan_gpt2(c);
  check_fused_types(c, types);
  // Two stores: fp32 params (counted in floats) and the low-precision matrices (in bytes, each
  // matrix 64-byte aligned), plus one scale per int8 row.
  size_t floats = 0, bytes = 0, scale_rows = 0;
  // GPT-J's q, k, v must be adjacent as [q; k; v]: give them offsets inside one fused block.
  size_t fused_base = 0, fused_rows = 0;
  for (const auto& p : plan) {
    ParamSlice s{p.name, 0, p.hf_shape, p.transposed, stored_type(p.name, types), 0};
    const size_t n = numel(p.hf_shape);
    const size_t rows = p.hf_shape.size() == 2 ? matrix_rows(s) : 0;
    if (s.type == kernels::WeightType::I8_DYNAMIC && rows > 0 && n / rows > kernels::kMaxInt8DynamicK)
      throw Error("dtype int8_dynamic is not supported for this model: '" + p.name + "' has " + std::to_string(n / rows) +
                  " inputs per row, more than the int8 kernels' " + std::to_string(kernels::kMaxInt8DynamicK) +
                  " (their int32 sums could overflow); use int8 (weight-only) or bfloat16");
    const size_t unit = s.lowp() ? kernels::weight_type_size(s.type) : 1;  // bytes, or one float
    const bool scaled = kernels::is_int8(s.type);
    size_t& next = s.lowp() ? bytes : floats;
    if (s.lowp()) next = (next + 63) / 64 * 64;
    if (is_fused_qkv(c, p.name)) {
      if (p.name.ends_with("k_proj.weight")) {  // first of the three in HF order: reserve the block
        fused_base = next;
        next += 3 * n * unit;
        fused_rows = scale_rows;
        if (scaled) scale_rows += 3 * rows;
      }
      s.offset = fused_base + qkv_row_block(p.name) * n * unit;
      s.scale_offset = fused_rows + qkv_row_block(p.name) * rows;
    } else {
      s.offset = next;
      next += n * unit;
      if (scaled) {
        s.scale_offset = scale_rows;
        scale_rows += rows;
      }
    }
    w.slices.push_back(std::move(s));
  }
  w.params.assign(floats, 0.0f);
  w.matrix_data.assign(bytes, 0);
  w.matrix_scales.assign(scale_rows, 1.0f);
  bind_views(c, w);
  return w;
}

MatrixTypes stored_matrix_types(const ModelConfig& c) {
  if (!c.quantization) return MatrixTypes(kernels::WeightType::F32);
  const auto& q = *c.quantization;
  MatrixTypes t(q.scheme == "weight_only" ? kernels::WeightType::I8 : kernels::WeightType::I8_DYNAMIC);
  std::set<std::string> known;
  for (const auto& unit : matrix_modules(c)) known.insert(unit.begin(), unit.end());
  for (const auto& [module, dtype] : q.modules_in_higher_precision) {
    if (!known.count(module))
      throw Error("config.json quantization_config: '" + module + "' is not a weight matrix of this " + c.model_type +
                  " model");
    t.overrides[module] = kernels::weight_type_from_string(dtype).value_or(kernels::WeightType::F32);
  }
  return t;
}

std::vector<std::vector<std::string>> matrix_modules(const ModelConfig& c) {
  // The embedding (a tied GPT-2 head is this same matrix).
  std::vector<std::vector<std::string>> units = {{"transformer.wte"}};
  const bool j = c.arch == Arch::GPTJ;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    if (j) {
      units.push_back({h + "attn.q_proj", h + "attn.k_proj", h + "attn.v_proj"});
      units.push_back({h + "attn.out_proj"});
      units.push_back({h + "mlp.fc_in"});
      units.push_back({h + "mlp.fc_out"});
    } else {
      units.push_back({h + "attn.c_attn"});
      units.push_back({h + "attn.c_proj"});
      units.push_back({h + "mlp.c_fc"});
      units.push_back({h + "mlp.c_proj"});
    }
  }
  if (j || !c.tie_word_embeddings) units.push_back({"lm_head"});
  return units;
}

void embedding_row(const ModelWeights& w, int token, int E, float* out) {
  if (w.wte)
    std::memcpy(out, w.wte + static_cast<size_t>(token) * E, E * sizeof(float));
  else
    kernels::widen_rows(w.wte_lowp, token, token + 1, out);
}

namespace {

// The checkpoint tensor of slice s, its shape checked against config.json's.
const TensorView& checked_tensor(const Checkpoint& ckpt, const ParamSlice& s) {
  const TensorView* t = find_tensor(ckpt, s.hf_name);
  if (!t) throw Error(ckpt.description() + ": missing tensor '" + s.hf_name + "'");
  if (t->shape != s.hf_shape)
    throw Error(ckpt.description() + ": tensor '" + s.hf_name + "' has shape " + shape_str(t->shape) +
                ", config.json implies " + shape_str(s.hf_shape));
  return *t;
}

// [in, out] (HF Conv1D) -> our [out, in], any element type.
template <class T>
void transpose_into(const T* src, int64_t in, int64_t out, T* dst) {
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < out; ++o) dst[o * in + i] = src[i * out + o];
}

// A float tensor of slice s as fp32 values in our [out, in] layout, into dst.
void read_float(const TensorView& t, const ParamSlice& s, float* dst, std::vector<float>& tmp) {
  if (!s.transposed) return to_float32(t, dst);
  tmp.resize(numel(s.hf_shape));
  to_float32(t, tmp.data());
  transpose_into(tmp.data(), s.hf_shape[0], s.hf_shape[1], dst);
}

// The per-row scales of int8 tensor `t` (slice s), as `lmforge quantize` writes them: a float
// tensor "<name>_scale" of shape [rows], every entry finite and positive.
std::vector<float> int8_scales(const Checkpoint& ckpt, const ParamSlice& s) {
  const std::string name = s.hf_name + "_scale";
  const TensorView* t = find_tensor(ckpt, name);
  const std::string where = ckpt.description() + ": int8 tensor '" + s.hf_name + "'";
  if (!t) throw Error(where + " has no scales '" + name + "' (one fp32 scale per output row)");
  const int64_t rows = matrix_rows(s);
  if (t->shape != std::vector<int64_t>{rows})
    throw Error(where + ": scales '" + name + "' have shape " + shape_str(t->shape) + ", expected [" +
                std::to_string(rows) + "] (one per output row)");
  std::vector<float> scales = to_float32(*t);
  for (float v : scales)
    if (!(v > 0.0f) || !std::isfinite(v)) throw Error(where + ": scales '" + name + "' hold a non-positive or non-finite value");
  ckpt.release(*t);
  return scales;
}

// An int8 tensor (with its scales) into slice s: kept as int8 when s is int8, else dequantized
// (q * scale) and stored in the slice's type.
void load_int8(const Checkpoint& ckpt, const ParamSlice& s, const TensorView& t, ModelWeights& w,
               std::vector<float>& staged) {
  const std::vector<float> scales = int8_scales(ckpt, s);
  const int64_t rows = matrix_rows(s), in = numel(s.hf_shape) / rows;
  const auto* q = reinterpret_cast<const int8_t*>(t.data);
  std::vector<int8_t> ordered;
  if (s.transposed) {
    ordered.resize(rows * in);
    transpose_into(q, s.hf_shape[0], s.hf_shape[1], ordered.data());
    q = ordered.data();
  }
  if (kernels::is_int8(s.type)) {
    std::memcpy(w.matrix_data.data() + s.offset, q, rows * in);
    std::copy(scales.begin(), scales.end(), w.matrix_scales.begin() + s.scale_offset);
  } else {
    float* dst = s.lowp() ? (staged.resize(rows * in), staged.data()) : w.params.data() + s.offset;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < in; ++k) dst[r * in + k] = q[r * in + k] * scales[r];
    if (s.lowp()) store_lowp(s, dst, w);
  }
}

// A bf16 / fp16 tensor already in the slice's type and layout: its bytes are copied as they are.
bool same_half_type(const TensorView& t, const ParamSlice& s) {
  return !s.transposed && ((t.dtype == DType::BF16 && kernels::is_bf16(s.type)) ||
                           (t.dtype == DType::F16 && s.type == kernels::WeightType::F16));
}

// A float matrix already in [out, in] layout into a low-precision slice, a block of rows at a
// time: the fp32 scratch is one block (≤ 16 MB), not the whole tensor (825 MB for GPT-J-6B's
// embedding), and each block's mapped pages are released as soon as it is converted.
void store_in_row_blocks(const Checkpoint& ckpt, const ParamSlice& s, const TensorView& t, ModelWeights& w,
                         std::vector<float>& staged) {
  const int64_t rows = matrix_rows(s), in = numel(s.hf_shape) / rows;
  const int64_t block = std::max<int64_t>(1, (int64_t{4} << 20) / in);
  const size_t row_bytes = static_cast<size_t>(in) * dtype_size(t.dtype);
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t n = std::min(block, rows - r0);
    TensorView part = t;
    part.shape = {n, in};
    part.data = t.data + static_cast<size_t>(r0) * row_bytes;
    part.nbytes = static_cast<size_t>(n) * row_bytes;
    staged.resize(static_cast<size_t>(n * in));
    to_float32(part, staged.data());
    store_lowp_rows(s, staged.data(), r0, n, w);
    ckpt.release(part);
  }
}

}  // namespace

void load_weights(const Checkpoint& ckpt, const ModelConfig& /*cfg: the layout is in w*/, ModelWeights& w) {
  std::vector<float> tmp, staged;
  for (const auto& s : w.slices) {
    const TensorView& t = checked_tensor(ckpt, s);
    if (t.dtype == DType::I8) {
      load_int8(ckpt, s, t, w, staged);
    } else if (same_half_type(t, s)) {
      std::memcpy(w.matrix_data.data() + s.offset, t.data, t.nbytes);
    } else if (s.lowp() && !s.transposed) {
      store_in_row_blocks(ckpt, s, t, w, staged);
    } else {
      // fp32 tensors go straight to their place; transposed low-precision ones through one
      // tensor's worth of fp32 scratch (`staged`), converted as soon as it is complete.
      float* dst = s.lowp() ? (staged.resize(numel(s.hf_shape)), staged.data()) : w.params.data() + s.offset;
      read_float(t, s, dst, tmp);
      if (s.lowp()) store_lowp(s, dst, w);
    }
    ckpt.release(t);
  }
}

ModelWeights convert_weights(const ModelConfig& cfg, const ModelWeights& fp32, const MatrixTypes& types) {
  ModelWeights out = allocate_weights(cfg, types);
  if (fp32.slices.size() != out.slices.size()) throw Error("convert_weights: the source does not match config");
  for (size_t i = 0; i < out.slices.size(); ++i) {
    const ParamSlice &src = fp32.slices[i], &dst = out.slices[i];
    if (src.lowp() || src.hf_name != dst.hf_name) throw Error("convert_weights: the source must be an fp32 model of this config");
    const float* values = fp32.params.data() + src.offset;
    if (dst.lowp())
      store_lowp(dst, values, out);
    else
      std::memcpy(out.params.data() + dst.offset, values, numel(dst.hf_shape) * sizeof(float));
  }
  return out;
}

}  // namespace lmforge
