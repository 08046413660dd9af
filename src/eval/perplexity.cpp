// Perplexity with HF's sliding-window recipe (see include/lmforge/eval/perplexity.h).
#include "lmforge/eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lmforge/error.h"
#include "lmforge/generate/language_model.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::eval {
namespace {

// Positions whose logits are computed per forward call: bounds the logits buffer (chunk x vocab
// floats) for long windows; the KV cache carries the context between chunks.
constexpr int kChunk = 64;

PerplexityOptions resolved(const LanguageModel& model, PerplexityOptions o) {
  const int n_positions = model.max_positions();
  if (o.max_length <= 0) o.max_length = n_positions;
  if (o.max_length < 2 || o.max_length > n_positions)
    throw Error("max_length (--max_length) must be between 2 and the model's n_positions (" + std::to_string(n_positions) + "), got " +
                std::to_string(o.max_length));
  if (o.stride == 0) o.stride = std::max(1, o.max_length / 2);
  if (o.stride <= 0 || o.stride > o.max_length)
    throw Error("stride (--stride) must be between 1 and --max_length (" + std::to_string(o.max_length) + "), got " +
                std::to_string(o.stride));
  return o;
}

// -log softmax(logits)[target], accumulated in double.
double token_nll(const float* logits, int vocab, int32_t target) {
  const float max_logit = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - max_logit);
  return std::log(sum) + max_logit - static_cast<double>(logits[target]);
}

// Sum of the NLLs of the tokens ids[first_target, end) given ids[begin, end) as the whole context
// (a fresh cache, positions 0.. from begin).
double window_nll_sum(const LanguageModel& model, const std::vector<int32_t>& ids, int64_t begin, int64_t end,
                      int64_t first_target) {
  const int len = static_cast<int>(end - begin);
  const int vocab = model.vocab_size();
  auto session = model.start(1, len);
  std::vector<float> logits(static_cast<size_t>(kChunk) * vocab);
  std::vector<int32_t> positions(kChunk);
  const std::vector<uint8_t> mask(kChunk, 1);
  double nll = 0;
  for (int start = 0; start < len; start += kChunk) {
    const int n = std::min(kChunk, len - start);
    for (int k = 0; k < n; ++k) positions[k] = start + k;
    session->forward(n, ids.data() + begin + start, positions.data(), mask.data(), logits.data(), true);
    // Position p predicts token p + 1.
    for (int k = 0; k < n; ++k) {
      const int64_t target = begin + start + k + 1;
      if (target >= first_target && target < end) nll += token_nll(logits.data() + static_cast<size_t>(k) * vocab, vocab, ids[target]);
    }
  }
  return nll;
}

}  // namespace

PerplexityResult perplexity(const LanguageModel& model, const std::vector<int32_t>& ids, const PerplexityOptions& options) {
  const PerplexityOptions o = resolved(model, options);
  const int64_t total = static_cast<int64_t>(ids.size());
  if (total < 2) throw Error("perplexity needs at least 2 tokens, the text has " + std::to_string(total));
  PerplexityResult r;
  double window_loss_sum = 0;
  int64_t prev_end = 0;
  for (int64_t begin = 0;; begin += o.stride) {
    PerplexityWindow w;
    w.begin = begin;
    w.end = std::min<int64_t>(begin + o.max_length, total);
    w.trg_len = w.end - prev_end;
    const int64_t first_target = std::max(begin + 1, w.end - w.trg_len);
    w.scored = w.end - first_target;
    const double nll = w.scored > 0 ? window_nll_sum(model, ids, w.begin, w.end, first_target) : 0.0;
    w.loss = w.scored > 0 ? nll / static_cast<double>(w.scored) : std::numeric_limits<double>::quiet_NaN();
    r.nll_sum += nll;
    r.tokens += w.scored;
    window_loss_sum += w.loss;
    r.windows.push_back(w);
    prev_end = w.end;
    if (w.end == total) break;
  }
  r.perplexity = std::exp(r.nll_sum / static_cast<double>(r.tokens));
  r.window_mean_perplexity = std::exp(window_loss_sum / static_cast<double>(r.windows.size()));
  return r;
}

PerplexityResult text_perplexity(const LanguageModel& model, const Tokenizer& tokenizer, const std::string& text,
                                 const PerplexityOptions& options, const std::string& prefix, const std::string& suffix) {
  return perplexity(model, tokenizer.encode(prefix + text + suffix), options);
}

CorpusPerplexity corpus_perplexity(const LanguageModel& model, const Tokenizer& tokenizer,
                                   const std::vector<std::string>& texts, const PerplexityOptions& options,
                                   const std::string& prefix, const std::string& suffix) {
  const PerplexityOptions o = resolved(model, options);  // reject bad options even when every row is skipped
  CorpusPerplexity c;
  double row_ppl_sum = 0;
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = tokenizer.encode(prefix + text + suffix);
    if (ids.size() < 2) {
      PerplexityResult skipped;
      skipped.perplexity = skipped.window_mean_perplexity = std::numeric_limits<double>::quiet_NaN();
      c.rows.push_back(skipped);
      ++c.skipped;
      continue;
    }
    c.rows.push_back(perplexity(model, ids, o));
    c.nll_sum += c.rows.back().nll_sum;
    c.tokens += c.rows.back().tokens;
    row_ppl_sum += c.rows.back().perplexity;
  }
  if (c.tokens == 0) throw Error("perplexity: no text with at least 2 tokens");
  c.perplexity = std::exp(c.nll_sum / static_cast<double>(c.tokens));
  c.mean_row_perplexity = row_ppl_sum / static_cast<double>(texts.size() - c.skipped);
  return c;
}

}  // namespace lmforge::eval
