#pragma once
// Log-likelihood scoring exactly as EleutherAI lm-evaluation-harness 0.4.x's HF backend (HFLM) does
// it: `_encode_pair` for text requests, `_loglikelihood_tokens` (left truncation to max_length, the
// last continuation token never fed, float32 log_softmax, is_greedy), `loglikelihood_rolling`
// (get_rolling_token_windows + make_disjoint_window, context_len 1), and the multiple-choice
// metrics acc / acc_norm. Requests are batched (right padding) and requests that share a context
// run it once (the KV cache is forked into one row per continuation). See docs/TASKS.md.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/generate/language_model.h"

namespace lmforge {
class Tokenizer;
struct ModelConfig;
}

namespace lmforge::tasks {

using TokenIds = std::vector<int32_t>;

// One lm-eval `loglikelihood` request in tokens: both lists non-empty, continuation <= max_length.
struct LLRequest {
  TokenIds context, continuation;
};

struct LLResult {
  double logprob = 0;            // sum of token_logprobs (in double; lm-eval sums the float32 tensor)
  bool is_greedy = true;         // argmax of the log-probs == the continuation at every position
  std::vector<float> token_logprobs;
  TokenIds greedy_tokens;        // argmax (first index on ties) at each continuation position
  TokenIds input_ids;            // the fed row: (context + continuation)[-(max_length+1):][:-1]
  int truncated_tokens = 0;      // tokens dropped on the left
};

struct ScoreOptions {
  int batch_size = 8;         // continuation rows per forward pass
  bool share_prefix = true;   // requests with the same context run it once (KV cache fork)
  int max_length = 0;         // 0: the model's n_positions (lm-eval's max_length)
};

// Work done, for reports and benchmarks.
struct ScoreStats {
  int64_t forward_calls = 0, fed_tokens = 0;  // tokens through the model, padding included
};

// Scores every request (results in request order). Throws lmforge::Error naming the request's
// index ("request 3: ...") for an empty context or continuation, a continuation longer than
// max_length, or a token outside the vocabulary.
std::vector<LLResult> score_requests(const LanguageModel& model, const std::vector<LLRequest>& requests,
                                     const ScoreOptions& options = {}, ScoreStats* stats = nullptr);

// ---- text -----------------------------------------------------------------------------------------

// lm-eval's prefix token (HFLM.prefix_token_id): the tokenizer's BOS, else its EOS; without a
// tokenizer the config's bos_token_id, else eos_token_id. Throws when there is none.
int32_t prefix_token_id(const Tokenizer* tokenizer, const ModelConfig& config);

struct EncodedPair {
  std::string context_after_move, continuation_after_move;
  TokenIds context_enc, continuation_enc;
};

// lm-eval `_encode_pair` (and `loglikelihood`'s empty-context rule): context "" -> ([prefix],
// encode(continuation)); otherwise the context's trailing whitespace (Python str.rstrip) moves to
// the continuation, context_enc = encode(context), continuation_enc = encode(context +
// continuation)[len(context_enc):]. Either list may come back empty: score_requests rejects that.
EncodedPair encode_pair(const Tokenizer& tokenizer, const std::string& context, const std::string& continuation,
                        int32_t prefix_token);

// lm-eval get_rolling_token_windows(tokens, prefix, max_seq_len, context_len) with
// make_disjoint_window applied: (context, continuation) requests whose continuations tile `tokens`
// exactly once. Empty tokens -> no windows (the rolling log-likelihood is then 0).
std::vector<LLRequest> rolling_windows(const TokenIds& tokens, int32_t prefix_token, int max_seq_len,
                                       int context_len = 1);

// loglikelihood_rolling of one token list: the sum of its windows' logprobs.
double score_rolling(const LanguageModel& model, const TokenIds& tokens, int32_t prefix_token,
                     const ScoreOptions& options = {});

// ---- multiple choice ------------------------------------------------------------------------------

struct MultipleChoiceDoc {
  std::string context;
  std::vector<std::string> choices;  // the choice words, without the target delimiter
};

struct MultipleChoiceResult {
  std::vector<EncodedPair> encoded;  // per choice: (context, delimiter + choice) through encode_pair
  std::vector<LLResult> scores;      // per choice
  std::vector<double> ll;            // per choice: scores[i].logprob
  std::vector<int> choice_lengths;   // code points of each choice word (Python len)
  int pred_acc = 0;                  // argmax ll, first index on ties
  int pred_acc_norm = 0;             // argmax ll / choice_lengths, first index on ties
};

// One document's requests: encode_pair(context, delimiter + choice) for each choice, and the choice
// lengths. A choice that tokenizes to nothing, a context that is only whitespace and a document
// without choices are errors starting with `where` ("row 12").
MultipleChoiceResult encode_multiple_choice(const Tokenizer& tokenizer, const MultipleChoiceDoc& doc,
                                            const std::string& delimiter, int32_t prefix_token,
                                            const std::string& where);
// Sets scores, ll and both predictions from the choices' scores (in choice order).
void set_choice_scores(MultipleChoiceResult& result, std::vector<LLResult> scores);

// lm-eval output_type multiple_choice: each choice is the request (context, delimiter + choice).
// All documents are scored together (batched, shared contexts run once).
std::vector<MultipleChoiceResult> score_multiple_choice(const LanguageModel& model, const Tokenizer& tokenizer,
                                                        const std::vector<MultipleChoiceDoc>& docs,
                                                        const ScoreOptions& options = {},
                                                        const std::string& delimiter = " ",
                                                        std::optional<int32_t> prefix_token = std::nullopt);

// numpy.argmax: the first index of the largest value. Throws on an empty list.
int argmax_first(const std::vector<double>& values);
// Python len() of a UTF-8 string: code points.
int code_point_length(const std::string& text);
// Python str.rstrip() (no argument): `text` without its trailing Unicode whitespace.
std::string python_rstrip(const std::string& text);
// Python str.strip() (no argument).
std::string python_strip(const std::string& text);

}  // namespace lmforge::tasks
