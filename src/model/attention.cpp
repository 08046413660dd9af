#include "model/attention.h"

#include <cblas.h>

#include <cmath>
#include <vector>

#include "lmforge/kernels/kernels.h"

namespace lmforge {
namespace {

// Masked softmax of one query's scores over keys 0..last; masked keys get probability 0.
// Returns false when no key is visible (a padding query).
bool masked_softmax(float* scores, int last, const uint8_t* key_mask) {
  float mx = -INFINITY;
  for (int j = 0; j <= last; ++j)
    if (key_mask[j]) mx = std::max(mx, scores[j]);
  if (mx == -INFINITY) return false;
  double sum = 0.0;
  for (int j = 0; j <= last; ++j) {
    scores[j] = key_mask[j] ? std::exp(scores[j] - mx) : 0.0f;
    sum += scores[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int j = 0; j <= last; ++j) scores[j] *= inv;
  return true;
}

// One (row, head) for one new token: dot products against the cache (decode path).
void attend_one(const float* q, const float* keys, const float* values, const uint8_t* key_mask, int last,
                int E, int hd, float scale, float* scores, float* out) {
  for (int j = 0; j <= last; ++j)
    scores[j] = key_mask[j] ? kernels::dot(q, keys + static_cast<size_t>(j) * E, hd) * scale : 0.0f;
  for (int d = 0; d < hd; ++d) out[d] = 0.0f;
  if (!masked_softmax(scores, last, key_mask)) return;
  for (int j = 0; j <= last; ++j)
    if (scores[j] != 0.0f) kernels::axpy(scores[j], values + static_cast<size_t>(j) * E, out, hd);
}

// One (row, head) for n new tokens at once with two sgemm calls (prefill path).
void attend_block(const float* q, int ldq, const float* keys, const float* values, const uint8_t* key_mask,
                  int past, int n, int E, int hd, float scale, std::vector<float>& scores, float* out) {
  const int L = past + n;
  scores.resize(static_cast<size_t>(n) * L);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, L, hd, scale, q, ldq, keys, E, 0.0f, scores.data(), L);
  for (int i = 0; i < n; ++i) {
    float* row = scores.data() + static_cast<size_t>(i) * L;
    const int last = past + i;
    if (!masked_softmax(row, last, key_mask)) {
      for (int j = 0; j < L; ++j) row[j] = 0.0f;  // padding query: zero output
      continue;
    }
    for (int j = last + 1; j < L; ++j) row[j] = 0.0f;  // causal
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, L, 1.0f, scores.data(), L, values, E, 0.0f, out, E);
}

}  // namespace

float attention_scale(const ModelConfig& c, int layer) {
  float scale = 1.0f;
  if (c.arch == Arch::GPTJ || c.scale_attn_weights) scale /= std::sqrt(static_cast<float>(c.head_dim()));
  if (c.arch == Arch::GPT2 && c.scale_attn_by_inverse_layer_idx) scale /= static_cast<float>(layer + 1);
  return scale;
}

void attention_forward(const ModelConfig& c, int layer, const float* qkv, int rows, int n, int past,
                       KVCache& cache, float* out) {
  const int E = c.n_embd, H = c.n_head, hd = c.head_dim();
  const float scale = attention_scale(c, layer);
  if (n == 1) {
    const int L = past + 1;
#pragma omp parallel
    {
      std::vector<float> scores(L);
#pragma omp for schedule(static)
      for (int rh = 0; rh < rows * H; ++rh) {
        const int r = rh / H, h = rh % H;
        attend_one(qkv + static_cast<size_t>(r) * 3 * E + h * hd, cache.keys(layer, r) + h * hd,
                   cache.values(layer, r) + h * hd, cache.mask(r), past, E, hd, scale, scores.data(),
                   out + static_cast<size_t>(r) * E + h * hd);
      }
    }
    return;
  }
  std::vector<float> scores;
  for (int r = 0; r < rows; ++r)
    for (int h = 0; h < H; ++h)
      attend_block(qkv + static_cast<size_t>(r) * n * 3 * E + h * hd, 3 * E, cache.keys(layer, r) + h * hd,
                   cache.values(layer, r) + h * hd, cache.mask(r), past, n, E, hd, scale, scores,
                   out + static_cast<size_t>(r) * n * E + h * hd);
}

}  // namespace lmforge
