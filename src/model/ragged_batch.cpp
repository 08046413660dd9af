#include "model/ragged_batch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/weights.h"
#include "model/attention.h"

namespace lmforge {
namespace {

// Query q of one head (hd values) against the row's keys at positions first..last of `layer`,
// block by block (keys are contiguous only inside a block). out: hd values. scores: room for
// last - first + 1.
void attend_paged(BlockPool& pool, const PagedRow& row, int layer, int head_offset, int hd, const float* q,
                  int first, int last, float scale, float* scores, float* out, float* partial) {
  const int B = pool.block_size(), E = pool.embd();
  for (int j = first; j <= last;) {
    const int end = std::min(last + 1, (j / B + 1) * B);
    kernels::dot_rows(q, pool.key(row, layer, j) + head_offset, E, end - j, hd, scale, scores + (j - first));
    j = end;
  }
  const int L = last - first + 1;
  for (int j = 0; j < L; ++j)
    if (!row.mask[first + j]) scores[j] = -INFINITY;  // softmax gives exactly 0
  kernels::softmax(scores, L);
  std::fill(out, out + hd, 0.0f);
  for (int j = first; j <= last;) {
    const int end = std::min(last + 1, (j / B + 1) * B);
    kernels::weighted_rows_sum(scores + (j - first), pool.value(row, layer, j) + head_offset, E, end - j, hd, partial);
    for (int d = 0; d < hd; ++d) out[d] += partial[d];
    j = end;
  }
}

// Embeddings of the real tokens, and for each its segment, cache position and position id.
void gather_tokens(const Model& m, const std::vector<RaggedSegment>& segs, RaggedScratch& s) {
  const ModelWeights& w = m.weights();
  const int E = m.config().n_embd;
  size_t M = 0;
  for (const RaggedSegment& seg : segs) M += std::count(seg.mask, seg.mask + seg.n, 1);
  s.x.resize(M * E);
  s.seg_of.clear();
  s.slot_of.clear();
  s.pos_of.clear();
  s.first_real.assign(segs.size(), 0);
  for (size_t g = 0; g < segs.size(); ++g) {
    const RaggedSegment& seg = segs[g];
    PagedRow& row = *seg.row;
    row.mask.resize(row.length + seg.n);
    std::memcpy(row.mask.data() + row.length, seg.mask, seg.n);
    int f = 0;
    while (f < row.length + seg.n && !row.mask[f]) ++f;
    s.first_real[g] = f;
    for (int i = 0; i < seg.n; ++i) {
      if (!seg.mask[i]) continue;
      float* xt = s.x.data() + s.seg_of.size() * E;
      embedding_row(w, seg.tokens[i], E, xt);
      if (w.wpe) {
        const float* p = w.wpe + static_cast<size_t>(seg.positions[i]) * E;
        for (int e = 0; e < E; ++e) xt[e] += p[e];
      }
      s.seg_of.push_back(static_cast<int>(g));
      s.slot_of.push_back(row.length + i);
      s.pos_of.push_back(seg.positions[i]);
    }
  }
}

// Padding positions: zero keys and values (their mask is 0, so nothing reads them; zeros keep the
// products finite).
void zero_padding(const ModelConfig& c, BlockPool& pool, const std::vector<RaggedSegment>& segs) {
  for (const RaggedSegment& seg : segs)
    for (int i = 0; i < seg.n; ++i)
      if (!seg.mask[i])
        for (int l = 0; l < c.n_layer; ++l) {
          std::fill_n(pool.key(*seg.row, l, seg.row->length + i), c.n_embd, 0.0f);
          std::fill_n(pool.value(*seg.row, l, seg.row->length + i), c.n_embd, 0.0f);
        }
}

// The attention of layer `layer` for the M real tokens: rotary (GPT-J), keys and values into the
// pool, then one task per (token, head).
void attend_layer(const Model& m, int layer, BlockPool& pool, const std::vector<RaggedSegment>& segs,
                  const RaggedScratch& s, float* qkv, float* attn) {
  const ModelConfig& c = m.config();
  const int E = c.n_embd, H = c.n_head, hd = c.head_dim(), M = static_cast<int>(s.seg_of.size());
  const Rope* rope = m.rope();
  for (int t = 0; t < M; ++t) {
    float* q = qkv + static_cast<size_t>(t) * 3 * E;
    if (rope)
      for (int h = 0; h < H; ++h) {
        rope->apply(q + h * hd, s.pos_of[t]);
        rope->apply(q + E + h * hd, s.pos_of[t]);
      }
    const PagedRow& row = *segs[s.seg_of[t]].row;
    std::memcpy(pool.key(row, layer, s.slot_of[t]), q + E, E * sizeof(float));
    std::memcpy(pool.value(row, layer, s.slot_of[t]), q + 2 * E, E * sizeof(float));
  }
  const float scale = attention_scale(c, layer);
  kernels::parallel_for(M * H, [&](int task) {
    const int t = task / H, h = task % H;
    const int g = s.seg_of[t], last = s.slot_of[t], first = std::min(s.first_real[g], last);
    thread_local std::vector<float> scores, partial;
    scores.resize(last - first + 1);
    partial.resize(hd);
    attend_paged(pool, *segs[g].row, layer, h * hd, hd, qkv + static_cast<size_t>(t) * 3 * E + h * hd, first, last,
                 scale, scores.data(), attn + static_cast<size_t>(t) * E + h * hd, partial.data());
  });
}

// ln_f and lm_head for the positions that want logits, each written into its segment's output.
void head(const Model& m, const std::vector<RaggedSegment>& segs, RaggedScratch& s) {
  const ModelConfig& c = m.config();
  const ModelWeights& w = m.weights();
  const int E = c.n_embd, V = c.vocab_size;
  std::vector<std::pair<int, float*>> wanted;  // (real token, destination)
  int t = 0;
  for (const RaggedSegment& seg : segs) {
    for (int i = 0; i < seg.n; ++i) {
      float* dst = nullptr;
      if (seg.logits && seg.all_positions) dst = seg.logits + static_cast<size_t>(i) * V;
      if (seg.logits && !seg.all_positions && i == seg.n - 1) dst = seg.logits;
      if (seg.mask[i]) {
        if (dst) wanted.emplace_back(t, dst);
        ++t;
      } else if (dst) {
        std::fill(dst, dst + V, 0.0f);
      }
    }
  }
  const int K = static_cast<int>(wanted.size());
  if (K == 0) return;
  s.h.resize(static_cast<size_t>(K) * E);
  s.logits.resize(static_cast<size_t>(K) * V);
  for (int k = 0; k < K; ++k)
    kernels::layer_norm(s.x.data() + static_cast<size_t>(wanted[k].first) * E, 1, E, w.ln_f.w, w.ln_f.b,
                        c.layer_norm_epsilon, s.h.data() + static_cast<size_t>(k) * E);
  kernels::matmul_wt_rows(s.h.data(), K, w.lm_head.matrix(), w.lm_head.b, s.logits.data());
  for (int k = 0; k < K; ++k)
    std::memcpy(wanted[k].second, s.logits.data() + static_cast<size_t>(k) * V, V * sizeof(float));
}

}  // namespace

void check_forward_inputs(const ModelConfig& c, int count, const int32_t* tokens, const int32_t* positions) {
  for (int i = 0; i < count; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      throw Error("token id " + std::to_string(tokens[i]) + " is outside the vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");
    if (positions[i] < 0 || positions[i] >= c.n_positions)
      throw Error("position " + std::to_string(positions[i]) + " is beyond the context (n_positions " +
                  std::to_string(c.n_positions) + ")");
  }
}

void ragged_forward(const Model& m, BlockPool& pool, const std::vector<RaggedSegment>& segs, RaggedScratch& s) {
  const ModelConfig& c = m.config();
  gather_tokens(m, segs, s);
  zero_padding(c, pool, segs);
  const int M = static_cast<int>(s.seg_of.size());
  if (M > 0)
    for (int l = 0; l < c.n_layer; ++l)
      block_body(c, m.block(l), s.x.data(), M, s.block, true,
                 [&](float* qkv, float* attn) { attend_layer(m, l, pool, segs, s, qkv, attn); });
  head(m, segs, s);
  for (const RaggedSegment& seg : segs) seg.row->length += seg.n;
}

}  // namespace lmforge
