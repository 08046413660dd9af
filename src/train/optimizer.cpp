// Gradient clipping and AdamW over flat buffers, reproducing torch 1.13's arithmetic: Python-float
// hyper-parameters are combined in double and meet the fp32 tensors as fp32 scalars, and each
// tensor expression is evaluated in torch's order.
#include "lmforge/train/optimizer.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"

#define LMF_AVX2 __attribute__((target("avx2,fma")))

namespace lmforge {

// ---- clipping ---------------------------------------------------------------------------------

namespace {

// Σ g² of one block: float partials over at most kNormBlock entries, then double across blocks.
LMF_AVX2 double sum_squares_avx2(const float* g, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 x0 = _mm256_loadu_ps(g + i), x1 = _mm256_loadu_ps(g + i + 8);
    a0 = _mm256_fmadd_ps(x0, x0, a0);
    a1 = _mm256_fmadd_ps(x1, x1, a1);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(a0, a1));
  double s = 0.0;
  for (float l : lanes) s += l;
  for (; i < n; ++i) s += static_cast<double>(g[i]) * g[i];
  return s;
}

double sum_squares(const float* g, size_t n) {
  if (kernels::using_avx2()) return sum_squares_avx2(g, n);
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(g[i]) * g[i];
  return s;
}

constexpr size_t kNormBlock = 1 << 12;

}  // namespace

double grad_norm(const float* g, size_t n) { return std::sqrt(grad_sum_squares(g, n)); }

double grad_sum_squares(const float* g, size_t n) {
  const long blocks = static_cast<long>((n + kNormBlock - 1) / kNormBlock);
  double sum = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
  for (long b = 0; b < blocks; ++b) {
    const size_t i0 = static_cast<size_t>(b) * kNormBlock;
    sum += sum_squares(g + i0, std::min(kNormBlock, n - i0));
  }
  return sum;
}

float clip_coefficient(double norm, double max_norm) {
  // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1, then grads *= it.
  return static_cast<float>(std::min(1.0, max_norm / (norm + 1e-6)));
}

double clip_grad_norm(std::vector<float>& grads, double max_norm) {
  const double norm = grad_norm(grads.data(), grads.size());
  const float coef = clip_coefficient(norm, max_norm);
  float* g = grads.data();
  const size_t n = grads.size();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) g[i] *= coef;
  return norm;
}

// ---- decay mask -------------------------------------------------------------------------------

bool hf_decays(const std::string& name) {
  if (name.find("bias") != std::string::npos) return false;
  // LayerNorm modules: GPT-2 / GPT-J name theirs ln_1, ln_2, ln_f.
  for (const char* ln : {".ln_", "layer_norm", "layernorm", "LayerNorm"})
    if (name.find(ln) != std::string::npos) return false;
  return true;
}

std::vector<ParamRange> hf_decay_ranges(const ModelWeights& w) {
  std::vector<ParamRange> out;
  for (const auto& s : w.slices) {
    if (!hf_decays(s.hf_name)) continue;
    size_t n = 1;
    for (auto d : s.hf_shape) n *= static_cast<size_t>(d);
    out.push_back({s.offset, s.offset + n});
  }
  std::sort(out.begin(), out.end(), [](const ParamRange& a, const ParamRange& b) { return a.begin < b.begin; });
  return out;
}

// ---- AdamW ------------------------------------------------------------------------------------

AdamW::AdamW(size_t n, AdamWConfig cfg) : AdamW(n, cfg, ParamRange{0, n}) {}

AdamW::AdamW(size_t n, AdamWConfig cfg, ParamRange slice)
    : m(slice.end >= slice.begin ? slice.end - slice.begin : 0, 0.0f), v(m.size(), 0.0f), cfg_(cfg), n_params_(n), slice_(slice) {
  if (slice.begin > slice.end || slice.end > n)
    throw Error("AdamW: slice [" + std::to_string(slice.begin) + ", " + std::to_string(slice.end) +
                ") is not inside the " + std::to_string(n) + " parameters");
  set_decay_ranges({{0, n}});
}

namespace {

// The per-step fp32 scalars of torch 1.13's _single_tensor_adamw.
struct StepScalars {
  float decay;       // 1 - lr * weight_decay
  float b1, one_b1;  // beta1, 1 - beta1
  float b2, one_b2;
  float bc2_sqrt;       // sqrt(1 - beta2^step)
  float neg_step_size;  // -lr / (1 - beta1^step)
  float eps;
};

StepScalars step_scalars(const AdamWConfig& c, double lr, int64_t step) {
  const double s = static_cast<double>(step);
  return {static_cast<float>(1.0 - lr * c.weight_decay),
          static_cast<float>(c.beta1),
          static_cast<float>(1.0 - c.beta1),
          static_cast<float>(c.beta2),
          static_cast<float>(1.0 - c.beta2),
          static_cast<float>(std::sqrt(1.0 - std::pow(c.beta2, s))),
          static_cast<float>(-(lr / (1.0 - std::pow(c.beta1, s)))),
          static_cast<float>(c.eps)};
}

// One element in torch's order of operations (its vectorised kernels do not fuse multiply-adds).
inline void adamw_element(float& p, float g, float& m, float& v, float decay, float gscale, const StepScalars& k) {
  g *= gscale;                                            // clip_grad_norm_'s g.mul_(clip_coef)
  const float pi = p * decay;                             // param.mul_(1 - lr * weight_decay)
  m = m * k.b1 + k.one_b1 * g;                            // exp_avg.mul_(b1).add_(g, alpha=1-b1)
  v = v * k.b2 + k.one_b2 * g * g;                        // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
  const float denom = std::sqrt(v) / k.bc2_sqrt + k.eps;  // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
  p = pi + k.neg_step_size * (m / denom);                 // param.addcdiv_(exp_avg, denom, value=-step_size)
}

// The same 8 elements at a time (memory-bound: 28 bytes moved per parameter).
LMF_AVX2 void adamw_range_avx2(float* p, const float* g, float* m, float* v, size_t n, float decay, float gscale,
                               const StepScalars& k) {
  const __m256 vdecay = _mm256_set1_ps(decay), vgs = _mm256_set1_ps(gscale), b1 = _mm256_set1_ps(k.b1),
               ob1 = _mm256_set1_ps(k.one_b1), b2 = _mm256_set1_ps(k.b2), ob2 = _mm256_set1_ps(k.one_b2),
               bc2 = _mm256_set1_ps(k.bc2_sqrt), eps = _mm256_set1_ps(k.eps), step = _mm256_set1_ps(k.neg_step_size);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), vgs);
    const __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), vdecay);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(ob1, gi));
    const __m256 vi =
        _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
    _mm256_storeu_ps(p + i, _mm256_add_ps(pi, _mm256_mul_ps(step, _mm256_div_ps(mi, denom))));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
  }
  for (; i < n; ++i) adamw_element(p[i], g[i], m[i], v[i], decay, gscale, k);
}

void adamw_range(float* p, const float* g, float* m, float* v, size_t n, float decay, float gscale,
                 const StepScalars& k) {
  if (kernels::using_avx2()) return adamw_range_avx2(p, g, m, v, n, decay, gscale, k);
  for (size_t i = 0; i < n; ++i) adamw_element(p[i], g[i], m[i], v[i], decay, gscale, k);
}

// Decay segments are cut into work blocks of at most kBlock parameters, so one parallel loop with
// static scheduling spreads every segment (hundreds of small LayerNorm/bias ones included).
constexpr size_t kBlock = 1 << 14;

template <class Segment>
std::vector<Segment> work_blocks(const std::vector<Segment>& segments) {
  std::vector<Segment> out;
  for (const auto& s : segments)
    for (size_t i = s.begin; i < s.end; i += kBlock) out.push_back({i, std::min(s.end, i + kBlock), s.decay});
  return out;
}

// The part [begin, end) of a whole-buffer work block whose vector loop ran up to body_end (the
// pointers are at `begin`). The AVX2 loop and its scalar tail round differently (the compiler
// fuses multiply-adds in each its own way), so each element gets the arithmetic it gets in the
// whole block: the vector loop for those before body_end (the last few through a padded copy of
// one vector: lanes do not interact), the scalar tail for the rest (fewer than 8).
void adamw_cut(float* p, const float* g, float* m, float* v, size_t begin, size_t end, size_t body_end, float decay,
               float gscale, const StepScalars& k) {
  if (!kernels::using_avx2()) return adamw_range(p, g, m, v, end - begin, decay, gscale, k);  // scalar throughout
  const size_t nvec = std::min(end, std::max(begin, body_end)) - begin;
  const size_t whole = nvec / 8 * 8;
  if (whole) adamw_range_avx2(p, g, m, v, whole, decay, gscale, k);
  if (const size_t r = nvec - whole) {
    alignas(32) float pp[8] = {}, gg[8] = {}, mm[8] = {}, vv[8] = {};
    std::copy_n(p + whole, r, pp), std::copy_n(g + whole, r, gg), std::copy_n(m + whole, r, mm), std::copy_n(v + whole, r, vv);
    adamw_range_avx2(pp, gg, mm, vv, 8, decay, gscale, k);
    std::copy_n(pp, r, p + whole), std::copy_n(mm, r, m + whole), std::copy_n(vv, r, v + whole);
  }
  if (end - begin > nvec) adamw_range_avx2(p + nvec, g + nvec, m + nvec, v + nvec, end - begin - nvec, decay, gscale, k);
}

}  // namespace

void AdamW::set_decay_ranges(std::vector<ParamRange> ranges) {
  const size_t n = n_params_;
  std::sort(ranges.begin(), ranges.end(), [](const ParamRange& a, const ParamRange& b) { return a.begin < b.begin; });
  std::vector<Segment> segments;
  size_t at = 0;
  for (const auto& r : ranges) {
    if (r.begin < at || r.end < r.begin || r.end > n)
      throw Error("AdamW: decay ranges overlap or exceed the parameters");
    if (r.begin > at) segments.push_back({at, r.begin, false});
    if (r.end > r.begin) segments.push_back({r.begin, r.end, true});
    at = r.end;
  }
  if (at < n) segments.push_back({at, n, false});
  blocks_.clear();
  for (const Segment& blk : work_blocks(segments)) {
    const size_t b = std::max(blk.begin, slice_.begin), e = std::min(blk.end, slice_.end);
    if (b >= e) continue;
    blocks_.push_back({b, e, blk.begin + (blk.end - blk.begin) / 8 * 8, b != blk.begin || e != blk.end, blk.decay});
  }
}

void AdamW::step(float* params, const float* grads, double lr, float grad_scale) {
  if (lr < 0.0) lr = cfg_.lr;
  ++steps;
  const StepScalars k = step_scalars(cfg_, lr, steps);
  const long nb = static_cast<long>(blocks_.size());
  const size_t off = slice_.begin;
#pragma omp parallel for schedule(static)
  for (long b = 0; b < nb; ++b) {
    const Block& blk = blocks_[b];
    const size_t i = blk.begin - off;
    // Without decay the factor is exactly 1, as torch's p.mul_(1 - lr * 0).
    const float decay = blk.decay ? k.decay : 1.0f;
    if (blk.cut)
      adamw_cut(params + i, grads + i, m.data() + i, v.data() + i, blk.begin, blk.end, blk.body_end, decay, grad_scale, k);
    else
      adamw_range(params + i, grads + i, m.data() + i, v.data() + i, blk.end - blk.begin, decay, grad_scale, k);
  }
}

void AdamW::step(std::vector<float>& params, const std::vector<float>& grads, double lr, float grad_scale) {
  if (params.size() != m.size() || grads.size() != m.size())
    throw Error("AdamW: " + std::to_string(params.size()) + " parameters and " + std::to_string(grads.size()) +
                " gradients for an optimizer of " + std::to_string(m.size()));
  step(params.data(), grads.data(), lr, grad_scale);
}

}  // namespace lmforge
