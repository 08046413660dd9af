#pragma once
// Perplexity of a causal LM on a text: exp of the mean next-token cross-entropy (natural log),
// as seed 001's calculate_perplexity (HF `model(ids, labels=ids).loss`), extended to texts longer
// than the context with the sliding window of HF's "Perplexity of fixed-length models" guide.
//
// Sliding window (ids = the text's tokens, T of them; L = max_length, S = stride):
//   for begin = 0, S, 2S, ...:  end = min(begin + L, T); trg_len = end - prev_end;
//     the window ids[begin:end] is run from an empty cache; only its last trg_len positions are
//     targets, and a target needs a token before it inside the window, so a window scores the
//     tokens [max(begin + 1, end - trg_len), end);  prev_end = end; stop after end == T.
//   With S < L every token but the first is scored exactly once, with at least L - S tokens of
//   context; with S == L the windows are disjoint and each window's first token is not scored (HF).
//   perplexity = exp(sum of the scored tokens' NLL / number of scored tokens)  (token-weighted).
// For T <= L this is one window and exactly seed 001's value. HF's guide (and the fixture's
// ppl_sliding cases) instead average the per-window mean losses; `window_mean_perplexity` reports
// that variant too (over the windows that score a token). Needs T >= 2 (nothing to score otherwise).
// Context (HF's labels = -100 on a prompt): the first C = context_tokens ids condition the others
// but are not scored: a window scores [max(begin + 1, end - trg_len, C), end).
#include <cstdint>
#include <string>
#include <vector>

namespace lmforge {
class LanguageModel;
class Tokenizer;
}  // namespace lmforge

namespace lmforge::eval {

struct PerplexityOptions {
  int max_length = 0;  // window length L; <= 0: the model's n_positions
  int stride = 0;      // S; <= 0: max_length / 2 (the guide's 512 for GPT-2's 1024)
  int64_t context_tokens = 0;  // C: leading ids that are context only (see above)
};

// How a text becomes the scored ids (eval perplexity, quantize):
//   finetune's rows:  encode(prefix + text + suffix) + [eos], every token after the first scored,
//                     so the value is exp(finetune's validation loss) on those rows;
//   free text:        prefix_is_context: encode(prefix + text + suffix) with the tokens that lie
//                     wholly inside the prefix as unscored context. The prefix is encoded together
//                     with the text, as in training: GPT-2's BPE joins the space that ends
//                     '|HEADLINE| ' to the text's first word, and that token is scored.
struct TextFormat {
  std::string prefix, suffix;
  bool prefix_is_context = false;
  bool append_eos = false;  // the tokenizer's eos id after the text (never encoded from text)
};

struct RenderedText {
  std::vector<int32_t> ids;
  int64_t context_tokens = 0;  // leading ids inside the prefix (0 unless prefix_is_context)
};

// Throws lmforge::Error when append_eos is set and the tokenizer has no eos token.
RenderedText render_text(const Tokenizer& tokenizer, const std::string& text, const TextFormat& format);

struct PerplexityWindow {
  int64_t begin = 0, end = 0, trg_len = 0;
  int64_t scored = 0;  // tokens scored in this window
  double loss = 0;     // their mean NLL (HF's window loss)
};

struct PerplexityResult {
  double perplexity = 0;              // exp(nll_sum / tokens)
  double nll_sum = 0;                 // natural-log NLL summed over the scored tokens
  int64_t tokens = 0;                 // scored tokens (T - 1 when stride < max_length)
  double window_mean_perplexity = 0;  // exp(mean of the window losses), HF guide's aggregation
  std::vector<PerplexityWindow> windows;
  double mean_nll() const { return nll_sum / static_cast<double>(tokens); }
};

// Throws lmforge::Error when ids has fewer than 2 tokens (or none after the context), max_length
// is < 2 or above the model's n_positions, or stride is outside [1, max_length].
PerplexityResult perplexity(const LanguageModel& model, const std::vector<int32_t>& ids,
                            const PerplexityOptions& options = {});

// The text is encoded as tokenizer.encode(prefix + text + suffix) (no special tokens added).
PerplexityResult text_perplexity(const LanguageModel& model, const Tokenizer& tokenizer, const std::string& text,
                                 const PerplexityOptions& options = {}, const std::string& prefix = "",
                                 const std::string& suffix = "");
PerplexityResult text_perplexity(const LanguageModel& model, const Tokenizer& tokenizer, const std::string& text,
                                 const PerplexityOptions& options, const TextFormat& format);

// Many texts (e.g. a CSV column). A text with fewer than 2 tokens (or nothing after its context)
// is skipped (rows[i].tokens == 0, perplexity NaN) and counted in `skipped`. The corpus value is token-weighted over all rows:
// exp(sum of every scored token's NLL / total scored tokens), not the mean of per-row perplexities.
struct CorpusPerplexity {
  std::vector<PerplexityResult> rows;
  double perplexity = 0;
  double nll_sum = 0;
  int64_t tokens = 0;
  int64_t skipped = 0;
  double mean_row_perplexity = 0;  // plain mean of the per-row perplexities (rows not skipped)
};
CorpusPerplexity corpus_perplexity(const LanguageModel& model, const Tokenizer& tokenizer,
                                   const std::vector<std::string>& texts, const PerplexityOptions& options = {},
                                   const std::string& prefix = "", const std::string& suffix = "");
CorpusPerplexity corpus_perplexity(const LanguageModel& model, const Tokenizer& tokenizer,
                                   const std::vector<std::string>& texts, const PerplexityOptions& options,
                                   const TextFormat& format);

// corpus_perplexity in two parts, for rows scored on several ranks: one row (NaN perplexity and 0
// tokens when it is too short to score), then the corpus figures of every row's result, summed in
// row order, so the rows scored anywhere give the same bits as one process.
// `options` with max_length and stride defaults filled in (n_positions, max_length / 2); lmforge::Error
// naming --max_length / --stride when out of range.
PerplexityOptions checked_options(const LanguageModel& model, PerplexityOptions options);
PerplexityResult row_perplexity(const LanguageModel& model, const Tokenizer& tokenizer, const std::string& text,
                                const PerplexityOptions& options, const TextFormat& format);
CorpusPerplexity corpus_from_rows(std::vector<PerplexityResult> rows);

}  // namespace lmforge::eval
