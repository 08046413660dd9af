// lm-eval log-likelihood scoring (see include/lmforge/tasks/loglikelihood.h).
#include "lmforge/tasks/loglikelihood.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "lmforge/error.h"
#include "lmforge/model/config.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "tokenizer/text_ops.h"

namespace lmforge::tasks {
namespace {

// Rows x positions of logits held at once: bounds the logits buffer (x vocab floats) when long
// continuations (rolling windows) are scored in a batch.
constexpr int kLogitRows = 256;

// One request made ready to feed: lm-eval's `inp = (context + continuation)[-(max_length+1):][:-1]`.
// The continuation's log-probs are read at fed positions [n - c, n).
struct Prepared {
  TokenIds fed, cont;
  int c = 0, truncated = 0;
  int n() const { return static_cast<int>(fed.size()); }
  int first_scored() const { return n() - c; }
};

Prepared prepare(const LLRequest& r, int max_length) {
  TokenIds full = r.context;
  full.insert(full.end(), r.continuation.begin(), r.continuation.end());
  const size_t keep = std::min(full.size(), static_cast<size_t>(max_length) + 1);
  Prepared p;
  p.fed.assign(full.end() - static_cast<std::ptrdiff_t>(keep), full.end() - 1);
  p.cont = r.continuation;
  p.c = static_cast<int>(r.continuation.size());
  p.truncated = static_cast<int>(full.size() - 1 - p.fed.size());
  return p;
}

void check_request(const LLRequest& r, size_t index, int max_length, int vocab) {
  const std::string where = "request " + std::to_string(index) + ": ";
  if (r.context.empty()) throw Error(where + "the context is empty (lm-eval feeds the end-of-text token for an empty text context)");
  if (r.continuation.empty()) throw Error(where + "the continuation is empty (it tokenizes to nothing)");
  if (static_cast<int>(r.continuation.size()) > max_length)
    throw Error(where + "the continuation has " + std::to_string(r.continuation.size()) +
                " tokens, more than max_length " + std::to_string(max_length));
  for (const TokenIds* list : {&r.context, &r.continuation})
    for (int32_t id : *list)
      if (id < 0 || id >= vocab)
        throw Error(where + "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
}

// Requests run together up to their shared prefix: fed[0, prefix) is the same for every member.
struct Group {
  std::vector<int> members;
  int prefix = 0;
  int longest = 0;  // max fed length of the members
};

std::vector<Group> make_groups(const std::vector<LLRequest>& requests, const std::vector<Prepared>& prep, bool share) {
  std::vector<Group> groups;
  std::map<TokenIds, int> by_context;
  for (int i = 0; i < static_cast<int>(requests.size()); ++i) {
    int g = static_cast<int>(groups.size());
    if (share) {
      auto [it, added] = by_context.emplace(requests[i].context, g);
      g = it->second;
      if (added) groups.emplace_back();
    } else {
      groups.emplace_back();
    }
    groups[g].members.push_back(i);
  }
  for (Group& g : groups) {
    // The prefix: no scored position (its logits are needed), and only tokens all members feed
    // (truncation can shift rows of the same context differently).
    int p = prep[g.members[0]].first_scored();
    for (int m : g.members) p = std::min(p, prep[m].first_scored());
    for (int m : g.members) {
      const TokenIds& a = prep[g.members[0]].fed;
      const TokenIds& b = prep[m].fed;
      int k = 0;
      while (k < p && a[k] == b[k]) ++k;
      p = k;
      g.longest = std::max(g.longest, prep[m].n());
    }
    g.prefix = p;
  }
  return groups;
}

// log_softmax of one logits row at `target` (float32 result, double accumulation) and its argmax.
float log_prob(const float* logits, int vocab, int32_t target, int32_t* argmax) {
  const float* top = std::max_element(logits, logits + vocab);  // first of equal maxima, as torch.argmax
  *argmax = static_cast<int32_t>(top - logits);
  double sum = 0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - *top);
  return static_cast<float>(static_cast<double>(logits[target]) - *top - std::log(sum));
}

// One batch: the groups (one row each) feed their prefixes in one forward pass, the session is
// forked into one row per member (when a group has several), and every row feeds the rest of its
// input (chunked passes). Rows are right-padded (mask 0) to the longest; a row's later tokens take
// position ids that continue its own prefix, so its padding is invisible to it (HF's
// position_ids = cumsum(attention_mask) - 1).
class BatchRunner {
 public:
  BatchRunner(const LanguageModel& model, const std::vector<Prepared>& prep, std::vector<LLResult>& out, ScoreStats& stats)
      : model_(model), prep_(prep), out_(out), stats_(stats), vocab_(model.vocab_size()) {}

  void run(const std::vector<const Group*>& groups) {
    int P = 0, R = 0;
    bool fork = false;
    std::vector<int> src, row_request, row_prefix;
    for (int g = 0; g < static_cast<int>(groups.size()); ++g) {
      P = std::max(P, groups[g]->prefix);
      fork |= groups[g]->members.size() > 1;
      for (int m : groups[g]->members) {
        src.push_back(g);
        row_request.push_back(m);
        row_prefix.push_back(groups[g]->prefix);
        R = std::max(R, prep_[m].n() - groups[g]->prefix);
      }
    }
    auto session = model_.start(static_cast<int>(groups.size()), fork ? std::max(P, 1) : P + R);
    if (P > 0) feed_prefixes(*session, groups, P);
    if (fork) {
      auto forked = session->fork(src, P + R);
      if (!forked) throw Error("this model cannot fork a session; score with share_prefix off");
      session = std::move(forked);
    }
    feed_rest(*session, row_request, row_prefix, R);
  }

 private:
  // Group g's prefix at cache positions [0, prefix_g), padding up to P. Only the cache matters.
  void feed_prefixes(LanguageModelSession& s, const std::vector<const Group*>& groups, int P) {
    const int rows = static_cast<int>(groups.size());
    std::vector<int32_t> tokens(static_cast<size_t>(rows) * P, 0), positions(tokens.size());
    std::vector<uint8_t> mask(tokens.size(), 0);
    for (int g = 0; g < rows; ++g) {
      const TokenIds& fed = prep_[groups[g]->members[0]].fed;
      for (int t = 0; t < P; ++t) {
        const size_t i = static_cast<size_t>(g) * P + t;
        positions[i] = t;
        if (t < groups[g]->prefix) {
          tokens[i] = fed[t];
          mask[i] = 1;
        }
      }
    }
    std::vector<float> last(static_cast<size_t>(rows) * vocab_);
    s.forward(P, tokens.data(), positions.data(), mask.data(), last.data(), false);
    stats_.forward_calls += 1;
    stats_.fed_tokens += static_cast<int64_t>(rows) * P;
  }

  // Row j feeds fed[prefix_j, n_j) (R slots, padded), in chunks that bound the logits buffer, and
  // reads the log-probs of its continuation.
  void feed_rest(LanguageModelSession& s, const std::vector<int>& row_request, const std::vector<int>& row_prefix, int R) {
    const int rows = static_cast<int>(row_request.size());
    const int chunk = std::max(1, std::min(R, kLogitRows / rows));
    const int max_pos = model_.max_positions() - 1;
    std::vector<float> logits(static_cast<size_t>(rows) * chunk * vocab_);
    for (int s0 = 0; s0 < R; s0 += chunk) {
      const int k = std::min(chunk, R - s0);
      std::vector<int32_t> tokens(static_cast<size_t>(rows) * k, 0), positions(tokens.size());
      std::vector<uint8_t> mask(tokens.size(), 0);
      for (int j = 0; j < rows; ++j) {
        const Prepared& p = prep_[row_request[j]];
        for (int t = 0; t < k; ++t) {
          const int f = row_prefix[j] + s0 + t;  // fed index of this slot
          const size_t i = static_cast<size_t>(j) * k + t;
          positions[i] = std::min(f, max_pos);
          if (f < p.n()) {
            tokens[i] = p.fed[f];
            mask[i] = 1;
          }
        }
      }
      s.forward(k, tokens.data(), positions.data(), mask.data(), logits.data(), true);
      stats_.forward_calls += 1;
      stats_.fed_tokens += static_cast<int64_t>(rows) * k;
      for (int j = 0; j < rows; ++j) read_scores(row_request[j], row_prefix[j] + s0, k, logits.data() + static_cast<size_t>(j) * k * vocab_);
    }
  }

  // Logits rows of fed indices [f0, f0 + k) of one request.
  void read_scores(int request, int f0, int k, const float* logits) {
    const Prepared& p = prep_[request];
    LLResult& r = out_[request];
    for (int t = 0; t < k; ++t) {
      const int i = f0 + t - p.first_scored();  // continuation index this position predicts
      if (i < 0 || i >= p.c) continue;
      int32_t greedy = 0;
      r.token_logprobs[i] = log_prob(logits + static_cast<size_t>(t) * vocab_, vocab_, p.cont[i], &greedy);
      r.greedy_tokens[i] = greedy;
    }
  }

  const LanguageModel& model_;
  const std::vector<Prepared>& prep_;
  std::vector<LLResult>& out_;
  ScoreStats& stats_;
  int vocab_;
};

// Groups in batches: at most batch_size rows (a larger group alone), and prefix + rest within the
// context (the forked rows share the prefix's padded length). Longest first, as lm-eval sorts.
std::vector<std::vector<const Group*>> make_batches(const std::vector<Group>& groups, const std::vector<Prepared>& prep,
                                                    int batch_size, int max_positions) {
  std::vector<const Group*> order;
  for (const Group& g : groups) order.push_back(&g);
  std::stable_sort(order.begin(), order.end(), [](const Group* a, const Group* b) { return a->longest > b->longest; });
  std::vector<std::vector<const Group*>> batches;
  int rows = 0, P = 0, R = 0;
  for (const Group* g : order) {
    int r = 0;
    for (int m : g->members) r = std::max(r, prep[m].n() - g->prefix);
    const int size = static_cast<int>(g->members.size());
    const bool fits = !batches.empty() && rows + size <= batch_size && std::max(P, g->prefix) + std::max(R, r) <= max_positions;
    if (!fits) {
      batches.emplace_back();
      rows = P = R = 0;
    }
    batches.back().push_back(g);
    rows += size;
    P = std::max(P, g->prefix);
    R = std::max(R, r);
  }
  return batches;
}

}  // namespace

std::vector<LLResult> score_requests(const LanguageModel& model, const std::vector<LLRequest>& requests,
                                     const ScoreOptions& options, ScoreStats* stats) {
  const int max_length = options.max_length > 0 ? options.max_length : model.max_positions();
  if (max_length > model.max_positions())
    throw Error("max_length " + std::to_string(max_length) + " exceeds the model's n_positions " + std::to_string(model.max_positions()));
  if (options.batch_size < 1) throw Error("batch_size must be at least 1, got " + std::to_string(options.batch_size));
  std::vector<Prepared> prep;
  std::vector<LLResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    check_request(requests[i], i, max_length, model.vocab_size());
    prep.push_back(prepare(requests[i], max_length));
    out[i].input_ids = prep.back().fed;
    out[i].truncated_tokens = prep.back().truncated;
    out[i].token_logprobs.assign(prep.back().c, 0.0f);
    out[i].greedy_tokens.assign(prep.back().c, -1);
  }
  ScoreStats local;
  BatchRunner runner(model, prep, out, stats ? *stats : local);
  const std::vector<Group> groups = make_groups(requests, prep, options.share_prefix);
  for (const auto& batch : make_batches(groups, prep, options.batch_size, model.max_positions())) runner.run(batch);
  for (size_t i = 0; i < requests.size(); ++i) {
    LLResult& r = out[i];
    r.logprob = std::accumulate(r.token_logprobs.begin(), r.token_logprobs.end(), 0.0);
    r.is_greedy = r.greedy_tokens == requests[i].continuation;
  }
  return out;
}

int32_t prefix_token_id(const Tokenizer* tokenizer, const ModelConfig& config) {
  if (tokenizer) {
    if (auto bos = tokenizer->bos_id()) return *bos;
    if (auto eos = tokenizer->eos_id()) return *eos;
  }
  if (config.bos_token_id) return *config.bos_token_id;
  if (config.eos_token_id) return *config.eos_token_id;
  throw Error("the model has no bos or eos token to use as the context of an empty-context request");
}

std::string python_rstrip(const std::string& text) { return tokenizer::rstrip_space(text); }

std::string python_strip(const std::string& text) { return tokenizer::lstrip_space(tokenizer::rstrip_space(text)); }

int code_point_length(const std::string& text) {
  int n = 0;
  for (unsigned char b : text) n += (b & 0xC0) != 0x80;
  return n;
}

int argmax_first(const std::vector<double>& values) {
  if (values.empty()) throw Error("argmax of an empty list");
  int best = 0;
  for (int i = 1; i < static_cast<int>(values.size()); ++i)
    if (values[i] > values[best]) best = i;
  return best;
}

EncodedPair encode_pair(const Tokenizer& tokenizer, const std::string& context, const std::string& continuation,
                        int32_t prefix_token) {
  EncodedPair e;
  if (context.empty()) {
    e.continuation_after_move = continuation;
    e.context_enc = {prefix_token};
    e.continuation_enc = tokenizer.encode(continuation);
    return e;
  }
  e.context_after_move = python_rstrip(context);
  e.continuation_after_move = context.substr(e.context_after_move.size()) + continuation;
  const TokenIds whole = tokenizer.encode(e.context_after_move + e.continuation_after_move);
  e.context_enc = tokenizer.encode(e.context_after_move);
  if (e.context_enc.size() < whole.size()) e.continuation_enc.assign(whole.begin() + static_cast<std::ptrdiff_t>(e.context_enc.size()), whole.end());
  return e;
}

std::vector<LLRequest> rolling_windows(const TokenIds& tokens, int32_t prefix_token, int max_seq_len, int context_len) {
  if (context_len < 1 || context_len > max_seq_len)
    throw Error("rolling windows: context_len must be between 1 and max_seq_len (" + std::to_string(max_seq_len) + ")");
  std::vector<LLRequest> out;
  const int total = static_cast<int>(tokens.size());
  if (total == 0) return out;
  const auto slice = [&](int a, int b) { return TokenIds(tokens.begin() + a, tokens.begin() + b); };
  // First window: the prefix token then predicts every token up to the window's size.
  const int first = std::min(max_seq_len, total);
  out.push_back({{prefix_token}, slice(0, first)});  // make_disjoint: context [prefix] + t[:first-1] keeps only [prefix]
  const int pred_len = max_seq_len - context_len + 1;
  for (int predicted = first; predicted < total;) {
    const int window_pred = std::min(total - predicted, pred_len);
    const int end = predicted + window_pred;
    // Window input tokens[end - max_seq_len - 1, end - 1); disjoint: drop its last window_pred - 1.
    const int ctx_begin = std::max(0, end - max_seq_len - 1);
    out.push_back({slice(ctx_begin, end - window_pred), slice(end - window_pred, end)});
    predicted += window_pred;
  }
  return out;
}

double score_rolling(const LanguageModel& model, const TokenIds& tokens, int32_t prefix_token, const ScoreOptions& options) {
  const int max_length = options.max_length > 0 ? options.max_length : model.max_positions();
  double sum = 0;
  for (const LLResult& r : score_requests(model, rolling_windows(tokens, prefix_token, max_length), options)) sum += r.logprob;
  return sum;
}

MultipleChoiceResult encode_multiple_choice(const Tokenizer& tokenizer, const MultipleChoiceDoc& doc,
                                            const std::string& delimiter, int32_t prefix_token,
                                            const std::string& where) {
  if (doc.choices.empty()) throw Error(where + " has no choices");
  MultipleChoiceResult r;
  for (const std::string& choice : doc.choices) {
    r.encoded.push_back(encode_pair(tokenizer, doc.context, delimiter + choice, prefix_token));
    if (r.encoded.back().continuation_enc.empty())
      throw Error(where + ": the choice '" + choice + "' tokenizes to nothing after the context");
    if (r.encoded.back().context_enc.empty())
      throw Error(where + ": the context tokenizes to nothing (it is only whitespace)");
    r.choice_lengths.push_back(code_point_length(choice));
  }
  return r;
}

void set_choice_scores(MultipleChoiceResult& r, std::vector<LLResult> scores) {
  if (scores.size() != r.encoded.size()) throw Error("set_choice_scores: one score per choice is needed");
  r.scores = std::move(scores);
  r.ll.clear();
  std::vector<double> norm;
  for (size_t i = 0; i < r.scores.size(); ++i) {
    r.ll.push_back(r.scores[i].logprob);
    norm.push_back(r.ll.back() / r.choice_lengths[i]);
  }
  r.pred_acc = argmax_first(r.ll);
  r.pred_acc_norm = argmax_first(norm);
}

std::vector<MultipleChoiceResult> score_multiple_choice(const LanguageModel& model, const Tokenizer& tokenizer,
                                                        const std::vector<MultipleChoiceDoc>& docs,
                                                        const ScoreOptions& options, const std::string& delimiter,
                                                        std::optional<int32_t> prefix_token) {
  if (!prefix_token) prefix_token = tokenizer.bos_id() ? tokenizer.bos_id() : tokenizer.eos_id();
  if (!prefix_token) throw Error("the tokenizer has no bos or eos token to use as an empty context");
  std::vector<MultipleChoiceResult> out;
  std::vector<LLRequest> requests;
  for (size_t d = 0; d < docs.size(); ++d) {
    out.push_back(encode_multiple_choice(tokenizer, docs[d], delimiter, *prefix_token, "document " + std::to_string(d)));
    for (const EncodedPair& e : out.back().encoded) requests.push_back({e.context_enc, e.continuation_enc});
  }
  std::vector<LLResult> scores = score_requests(model, requests, options);
  size_t next = 0;
  for (MultipleChoiceResult& r : out) {
    const size_t n = r.encoded.size();
    set_choice_scores(r, {std::make_move_iterator(scores.begin() + next), std::make_move_iterator(scores.begin() + next + n)});
    next += n;
  }
  return out;
}

}  // namespace lmforge::tasks
