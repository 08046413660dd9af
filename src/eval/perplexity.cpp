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

// The leading tokens of `ids` that lie wholly inside `prefix`: the longest run whose decoded bytes
// are a prefix of it. The token that straddles the boundary (GPT-2: the prefix's trailing space
// joined to the text's first word) contains text, so it is not context.
int64_t prefix_token_count(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, const std::string& prefix) {
  std::vector<int32_t> head;
  int64_t count = 0;
  for (const int32_t id : ids) {
    head.push_back(id);
    const std::string bytes = tokenizer.decode(head, false, false);
    if (bytes.size() > prefix.size() || prefix.compare(0, bytes.size(), bytes) != 0) break;
    ++count;
    if (bytes.size() == prefix.size()) break;
  }
  return count;
}

}  // namespace

PerplexityResult perplexity(const LanguageModel& model, const std::vector<int32_t>& ids, const PerplexityOptions& options) {
  const PerplexityOptions o = checked_options(model, options);
  const int64_t total = static_cast<int64_t>(ids.size());
  if (total < 2) throw Error("perplexity needs at least 2 tokens, the text has " + std::to_string(total));
  if (o.context_tokens >= total)
    throw Error("perplexity: nothing to score after the " + std::to_string(o.context_tokens) + " context (prefix) tokens");
  PerplexityResult r;
  double window_loss_sum = 0;
  int64_t scoring_windows = 0;
  int64_t prev_end = 0;
  for (int64_t begin = 0;; begin += o.stride) {
    PerplexityWindow w;
    w.begin = begin;
    w.end = std::min<int64_t>(begin + o.max_length, total);
    w.trg_len = w.end - prev_end;
    const int64_t first_target = std::max({begin + 1, w.end - w.trg_len, o.context_tokens});
    w.scored = std::max<int64_t>(0, w.end - first_target);
    const double nll = w.scored > 0 ? window_nll_sum(model, ids, w.begin, w.end, first_target) : 0.0;
    w.loss = w.scored > 0 ? nll / static_cast<double>(w.scored) : std::numeric_limits<double>::quiet_NaN();
    r.nll_sum += nll;
    r.tokens += w.scored;
    if (w.scored > 0) {  // a window inside the context (or a lone last token) has no loss to average
      window_loss_sum += w.loss;
      ++scoring_windows;
    }
    r.windows.push_back(w);
    prev_end = w.end;
    if (w.end == total) break;
  }
  r.perplexity = std::exp(r.nll_sum / static_cast<double>(r.tokens));
  r.window_mean_perplexity = std::exp(window_loss_sum / static_cast<double>(scoring_windows));
  return r;
}

RenderedText render_text(const Tokenizer& tokenizer, const std::string& text, const TextFormat& format) {
  RenderedText out;
  out.ids = tokenizer.encode(format.prefix + text + format.suffix);
  if (format.append_eos) {
    const auto eos = tokenizer.eos_id();
    if (!eos) throw Error("the tokenizer has no eos token to end each text with (finetune's rows end with it)");
    out.ids.push_back(*eos);
  }
  if (format.prefix_is_context && !format.prefix.empty()) out.context_tokens = prefix_token_count(tokenizer, out.ids, format.prefix);
  return out;
}

PerplexityResult text_perplexity(const LanguageModel& model, const Tokenizer& tokenizer, const std::string& text,
                                 const PerplexityOptions& options, const std::string& prefix, const std::string& suffix) {
  return text_perplexity(model, tokenizer, text, options, TextFormat{prefix, suffix});
}

PerplexityResult text_perplexity(const LanguageModel& model, const Tokenizer& tokenizer, const std::string& text,
                                 const PerplexityOptions& options, const TextFormat& format) {
  const RenderedText rendered = render_text(tokenizer, text, format);
  PerplexityOptions o = options;
  o.context_tokens = rendered.context_tokens;
  return perplexity(model, rendered.ids, o);
}

CorpusPerplexity corpus_perplexity(const LanguageModel& model, const Tokenizer& tokenizer,
                                   const std::vector<std::string>& texts, const PerplexityOptions& options,
                                   const std::string& prefix, const std::string& suffix) {
  return corpus_perplexity(model, tokenizer, texts, options, TextFormat{prefix, suffix});
}

PerplexityOptions checked_options(const LanguageModel& model, PerplexityOptions o) {
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

PerplexityResult row_perplexity(const LanguageModel& model, const Tokenizer& tokenizer, const std::string& text,
                                const PerplexityOptions& options, const TextFormat& format) {
  const RenderedText rendered = render_text(tokenizer, text, format);
  PerplexityOptions o = options;
  o.context_tokens = rendered.context_tokens;
  if (static_cast<int64_t>(rendered.ids.size()) < std::max<int64_t>(2, rendered.context_tokens + 1)) {
    PerplexityResult skipped;
    skipped.perplexity = skipped.window_mean_perplexity = std::numeric_limits<double>::quiet_NaN();
    return skipped;
  }
  return perplexity(model, rendered.ids, o);
}

CorpusPerplexity corpus_from_rows(std::vector<PerplexityResult> rows) {
  CorpusPerplexity c;
  double row_ppl_sum = 0;
  for (const PerplexityResult& r : rows) {
    if (r.tokens == 0) {  // too short to score: perplexity() gives every scored row a token at least
      ++c.skipped;
      continue;
    }
    c.nll_sum += r.nll_sum;
    c.tokens += r.tokens;
    row_ppl_sum += r.perplexity;
  }
  if (c.tokens == 0) throw Error("perplexity: no text with at least 2 tokens");
  c.perplexity = std::exp(c.nll_sum / static_cast<double>(c.tokens));
  c.mean_row_perplexity = row_ppl_sum / static_cast<double>(static_cast<int64_t>(rows.size()) - c.skipped);
  c.rows = std::move(rows);
  return c;
}

CorpusPerplexity corpus_perplexity(const LanguageModel& model, const Tokenizer& tokenizer,
                                   const std::vector<std::string>& texts, const PerplexityOptions& options,
                                   const TextFormat& format) {
  const PerplexityOptions checked = checked_options(model, options);  // reject bad options even when every row is skipped
  std::vector<PerplexityResult> rows;
  for (const std::string& text : texts) rows.push_back(row_perplexity(model, tokenizer, text, checked, format));
  return corpus_from_rows(std::move(rows));
}

}  // namespace lmforge::eval
