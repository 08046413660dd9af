#include "model/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "lmforge/kernels/kernels.h"

namespace lmforge {
namespace {

// Queries per attention task in the prefill path: small enough to give both threads work and to
// skip most of the causally masked scores, large enough for sgemm to be efficient.
constexpr int kQueryBlock = 64;
// Below this many multiply-adds the decode attention runs on the calling thread.
constexpr long kParallelMinWork = 1L << 15;

// Masked softmax of one query's scores over keys 0..last; masked keys get probability 0.
// Returns false when no key is visible (a padding query).
bool masked_softmax(float* scores, int last, const uint8_t* key_mask) {
  bool any = false;
  for (int j = 0; j <= last; ++j) {
    if (key_mask[j])
      any = true;
    else
      scores[j] = -INFINITY;  // softmax gives exactly 0
  }
  if (!any) return false;
  kernels::softmax(scores, last + 1);
  return true;
}

// One (row, head) for one new token against cache positions 0..last (decode path).
void attend_one(const float* q, const float* keys, const float* values, const uint8_t* key_mask, int last,
                int E, int hd, float scale, float* scores, float* out) {
  kernels::dot_rows(q, keys, E, last + 1, hd, scale, scores);
  if (!masked_softmax(scores, last, key_mask)) {
    for (int d = 0; d < hd; ++d) out[d] = 0.0f;
    return;
  }
  kernels::weighted_rows_sum(scores, values, E, last + 1, hd, out);
}

// Queries q0..q1-1 (of n new ones) of one (row, head) with two sgemm calls over the keys they can
// see (cache positions 0 .. past+q1-1), the prefill path. scores: room for (q1-q0) * (past+q1).
void attend_block(const float* q, int ldq, const float* keys, const float* values, const uint8_t* key_mask,
                  int past, int q0, int q1, int E, int hd, float scale, float* scores, float* out) {
  const int nq = q1 - q0, L = past + q1;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, L, hd, scale, q + static_cast<size_t>(q0) * ldq, ldq,
              keys, E, 0.0f, scores, L);
  for (int i = 0; i < nq; ++i) {
    float* row = scores + static_cast<size_t>(i) * L;
    const int last = past + q0 + i;
    if (!masked_softmax(row, last, key_mask)) {
      for (int j = 0; j < L; ++j) row[j] = 0.0f;  // padding query: zero output
      continue;
    }
    for (int j = last + 1; j < L; ++j) row[j] = 0.0f;  // causal
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, L, 1.0f, scores, L, values, E, 0.0f,
              out + static_cast<size_t>(q0) * E, E);
}

// kernels::parallel_for(tasks, fn) where fn(task, scores) also gets a scratch buffer of `size`
// floats owned by the thread running it (grown, never shrunk, reused across calls).
template <class F>
void parallel_scores(int tasks, int size, const F& fn) {
  kernels::parallel_for(tasks, [&](int t) {
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(size)) scores.resize(size);
    fn(t, scores.data());
  });
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
  // Each row's keys start at its first real (mask 1) position: left padding is neither multiplied
  // nor summed over, and a left-padded row runs the same products as it does unpadded (same key
  // count, same query blocks, same softmax lanes), so batching does not change its attention.
  std::vector<int> first(rows);
  for (int r = 0; r < rows; ++r) {
    const uint8_t* m = cache.mask(r);
    int f = 0;
    while (f < past + n && !m[f]) ++f;
    first[r] = f;
  }
  auto keys = [&](int r, int h) { return cache.keys(layer, r) + static_cast<size_t>(first[r]) * E + h * hd; };
  auto values = [&](int r, int h) { return cache.values(layer, r) + static_cast<size_t>(first[r]) * E + h * hd; };
  if (n == 1) {
    // One task per (row, head), or a single task when there is too little work to share.
    const int L = past + 1, pairs = rows * H;
    const int tasks = static_cast<long>(pairs) * L * hd >= kParallelMinWork ? pairs : 1;
    const int per_task = pairs / tasks;
    parallel_scores(tasks, L, [&](int t, float* scores) {
      for (int rh = t * per_task; rh < (t + 1) * per_task; ++rh) {
        const int r = rh / H, h = rh % H;
        attend_one(qkv + static_cast<size_t>(r) * 3 * E + h * hd, keys(r, h), values(r, h), cache.mask(r) + first[r],
                   past - first[r], E, hd, scale, scores, out + static_cast<size_t>(r) * E + h * hd);
      }
    });
    return;
  }
  // Queries before a row's first real key see nothing: zero output. The others go in blocks of
  // kQueryBlock counted from the row's first real query, one task per (row, head, block), sgemm
  // single-threaded inside. Later blocks see more keys: they go first.
  std::vector<int> q_start(rows);
  for (int r = 0; r < rows; ++r) {
    q_start[r] = std::clamp(first[r] - past, 0, n);
    std::fill(out + static_cast<size_t>(r) * n * E, out + (static_cast<size_t>(r) * n + q_start[r]) * E, 0.0f);
  }
  const int blocks = (n + kQueryBlock - 1) / kQueryBlock;
  parallel_scores(rows * H * blocks, std::min(n, kQueryBlock) * (past + n), [&](int t, float* scores) {
    const int b = blocks - 1 - t / (rows * H), rh = t % (rows * H), r = rh / H, h = rh % H;
    const int q0 = q_start[r] + b * kQueryBlock, q1 = std::min(n, q0 + kQueryBlock);
    if (q0 >= q1) return;
    attend_block(qkv + static_cast<size_t>(r) * n * 3 * E + h * hd, 3 * E, keys(r, h), values(r, h),
                 cache.mask(r) + first[r], past - first[r], q0, q1, E, hd, scale, scores,
                 out + static_cast<size_t>(r) * n * E + h * hd);
  });
}

}  // namespace lmforge
