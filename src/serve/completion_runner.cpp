#include "serve/completion_runner.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "lmforge/generate/generate.h"

namespace lmforge::serve {
namespace {

using Ids = std::vector<int32_t>;

}  // namespace

GenerationConfig generation_config_for(const ServedModel& m, const CompletionRequest& r) {
  GenerationConfig g = m.defaults;
  g.max_length.reset();
  g.max_new_tokens = r.max_tokens;
  if (r.min_tokens) g.min_new_tokens = *r.min_tokens;
  g.top_k = r.top_k.value_or(0);
  g.top_p = r.top_p;
  g.num_return_sequences = r.best_of;
  if (r.beam_search()) {
    g.do_sample = false;
    g.num_beams = std::max(r.num_beams.value_or(r.best_of), r.best_of);
  } else if (r.temperature == 0) {
    g.do_sample = false;  // greedy: every candidate would be the same, so generate one
    g.num_beams = 1;
    g.num_return_sequences = 1;
  } else {
    g.do_sample = true;
    g.num_beams = 1;
    g.temperature = r.temperature;
  }
  if (r.length_penalty) g.length_penalty = *r.length_penalty;
  if (r.early_stopping) g.early_stopping = *r.early_stopping;
  if (r.repetition_penalty) g.repetition_penalty = *r.repetition_penalty;
  if (r.no_repeat_ngram_size) g.no_repeat_ngram_size = *r.no_repeat_ngram_size;
  g.presence_penalty = r.presence_penalty;
  g.frequency_penalty = r.frequency_penalty;
  g.logit_bias = r.logit_bias;
  g.stop_strings = r.stop;
  apply_structured_output(r, g);  // response_format / regex / grammar
  // Without a seed every request draws fresh randomness, as OpenAI's API does.
  g.seed = r.seed ? *r.seed : std::random_device{}() * 0x100000001ull + std::random_device{}();
  g.output_scores = false;
  return g;
}

namespace {

bool is_eos(const GenerationConfig& g, int32_t t) {
  return std::find(g.eos_token_id.begin(), g.eos_token_id.end(), t) != g.eos_token_id.end();
}

std::string decode(const ServedModel& m, const Ids& ids) { return m.tokenizer.decode(ids, false, false); }

// Where the completion text must end because of a stop string: its earliest match, or npos.
size_t stop_position(const std::string& text, const std::vector<std::string>& stop) {
  size_t cut = std::string::npos;
  for (const std::string& s : stop) cut = std::min(cut, text.find(s));
  return cut;
}

}  // namespace

size_t streamable_length(const std::string& text, const std::vector<std::string>& stop) {
  size_t end = text.size();
  static const std::string kReplacement = "\xEF\xBF\xBD";
  while (end >= 3 && text.compare(end - 3, 3, kReplacement) == 0) end -= 3;
  size_t hold = 0;
  for (const std::string& s : stop)
    for (size_t k = std::min(s.size() - 1, end); k > hold; --k)
      if (text.compare(end - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return end - hold;
}

namespace {

// One generated row, finished OpenAI's way: cut at eos and at the first stop string.
struct Finished {
  Ids tokens;        // completion tokens for logprobs: those the text covers, then the eos that ended it
  std::string text;  // completion text (no echo)
  std::string finish_reason;
  int generated = 0;  // tokens the model produced for this row, eos included (usage)
};

Finished finish_row(const ServedModel& m, const GenerationConfig& g, const CompletionRequest& r, Ids completion) {
  Finished f;
  auto eos = std::find_if(completion.begin(), completion.end(), [&](int32_t t) { return is_eos(g, t); });
  const bool hit_eos = eos != completion.end();
  f.generated = static_cast<int>(eos - completion.begin()) + (hit_eos ? 1 : 0);
  const int32_t eos_token = hit_eos ? *eos : 0;
  completion.erase(eos, completion.end());
  f.text = decode(m, completion);
  const size_t cut = stop_position(f.text, r.stop);
  if (cut != std::string::npos) f.text.resize(cut);
  // Keep the tokens that start inside the returned text.
  for (size_t i = 0; i < completion.size(); ++i) {
    if (cut != std::string::npos && i > 0 && decode(m, Ids(completion.begin(), completion.begin() + i)).size() >= cut)
      break;
    if (cut == 0) break;
    f.tokens.push_back(completion[i]);
  }
  // The eos is not text, but it is a generated token with a log-prob: clients such as lm-eval take
  // token_logprobs[ctxlen:-1] of an echo + max_tokens 1 request, which needs the last entry there.
  if (hit_eos && cut == std::string::npos) f.tokens.push_back(eos_token);
  // A stop string can also end generation by matching across the prompt boundary (HF's rule), in
  // which case the row is simply shorter than max_tokens.
  const bool stopped = hit_eos || cut != std::string::npos || f.generated < r.max_tokens;
  f.finish_reason = stopped ? "stop" : "length";
  return f;
}

// The `top` most likely tokens of one log-prob row, as (token text, log-prob), likeliest first.
std::vector<std::pair<std::string, float>> top_alternatives(const ServedModel& m, const float* row, int vocab, int top) {
  std::vector<int> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  const int k = std::min(top, vocab);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) { return row[a] > row[b]; });
  std::vector<std::pair<std::string, float>> alts;
  for (int j = 0; j < k; ++j) alts.emplace_back(decode(m, {order[j]}), row[order[j]]);
  return alts;
}

// log_softmax as `lmforge score` computes it (double accumulation, float result), in place.
void log_softmax_like_score(float* row, int vocab) {
  const float top = *std::max_element(row, row + vocab);
  double sum = 0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - top);
  const double log_sum = std::log(sum);
  for (int v = 0; v < vocab; ++v) row[v] = static_cast<float>(static_cast<double>(row[v]) - top - log_sum);
}

// OpenAI's logprobs object over `prompt` (when echoed) and `completion`; also the completion's mean
// token log-prob, best_of's ranking key.
struct Scored {
  Logprobs lp;
  double mean = 0;
};

Scored score_row(const ServedModel& m, const LanguageModel& lm, const Ids& prompt, const Ids& completion, bool echo,
                 int top) {
  Ids all = prompt;
  all.insert(all.end(), completion.begin(), completion.end());
  const int vocab = lm.vocab_size();
  const std::vector<float> lp = all.size() > 1 ? position_logprobs(lm, all) : std::vector<float>{};
  Scored s;
  double sum = 0;
  const size_t first = echo ? 0 : prompt.size();
  for (size_t i = first; i < all.size(); ++i) {
    s.lp.tokens.push_back(decode(m, {all[i]}));
    s.lp.text_offset.push_back(static_cast<int>(decode(m, Ids(all.begin(), all.begin() + i)).size()));
    if (i == 0) {
      s.lp.token_logprobs.push_back(std::nullopt);
      s.lp.top_logprobs.push_back(std::nullopt);
      continue;
    }
    const float* row = lp.data() + (i - 1) * vocab;
    s.lp.token_logprobs.push_back(row[all[i]]);
    if (i >= prompt.size()) sum += row[all[i]];
    s.lp.top_logprobs.push_back(top_alternatives(m, row, vocab, top));
  }
  s.mean = completion.empty() ? 0 : sum / completion.size();
  return s;
}

// Streams each row's text as it becomes final (see safe_length), one ChoiceDelta per choice the
// row feeds (greedy rows feed all n choices of their prompt).
class Streamer {
 public:
  Streamer(const ServedModel& m, const LanguageModel& lm, const CompletionRequest& r, const GenerationConfig& g,
           int first_index, int rows, const RunHooks& hooks)
      : m_(m), lm_(lm), r_(r), g_(g), first_(first_index), rows_(rows), hooks_(hooks), state_(rows) {}

  void start(const Ids& prompt) {
    if (!r_.stream) return;
    prompt_bytes_ = static_cast<int>(decode(m_, prompt).size());
    if (!r_.echo) return;
    std::optional<Logprobs> lp;
    if (r_.logprobs) lp = score_row(m_, lm_, prompt, {}, true, *r_.logprobs).lp;
    for (int c = 0; c < r_.n; ++c) emit(c, decode(m_, prompt), std::nullopt, lp);
  }

  // Streamed logprobs come from the step's raw logits (the non-streamed ones from one forward pass
  // over the whole text: equal up to float rounding).
  void logits(int row, const float* logits, int vocab) {
    if (!r_.logprobs || row >= rows_ || state_[row].done) return;
    std::vector<float>& lp = state_[row].step_logprobs;
    lp.assign(logits, logits + vocab);
    log_softmax_like_score(lp.data(), vocab);
  }

  void push(const std::vector<int32_t>& tokens) {
    if (!r_.stream) return;
    for (int row = 0; row < rows_; ++row) {
      Row& s = state_[row];
      if (s.done) continue;
      record(s, tokens[row]);
      if (is_eos(g_, tokens[row])) {  // no text; its logprobs entry goes out with the last chunk
        s.done = true;
        continue;
      }
      const std::string text = decode(m_, s.ids);
      s.text_bytes = text.size();
      size_t safe = stop_position(text, r_.stop);
      if (safe != std::string::npos) s.done = true;
      else safe = streamable_length(text, r_.stop);
      if (safe > s.sent) {
        const auto lp = take_logprobs(s, safe, s.ids.size());
        for (int c : choices_of(row)) emit(c, text.substr(s.sent, safe - s.sent), std::nullopt, lp);
        s.sent = safe;
      }
    }
  }

  // The rest of each choice's final text, with its finish_reason.
  void finish(int row, const Finished& f) {
    if (!r_.stream) return;
    Row& s = state_[row];
    const std::string rest = f.text.size() > s.sent ? f.text.substr(s.sent) : "";
    const auto lp = take_logprobs(s, std::string::npos, std::min(f.tokens.size(), s.ids.size()));
    for (int c : choices_of(row)) emit(c, rest, f.finish_reason, lp);
  }

 private:
  struct Row {
    Ids ids;
    size_t sent = 0;  // bytes of completion text streamed
    size_t text_bytes = 0;
    bool done = false;
    // logprobs: per token its start in the completion text, log-prob and alternatives
    std::vector<int> offsets;
    std::vector<float> token_logprobs, step_logprobs;
    std::vector<std::vector<std::pair<std::string, float>>> top;
    size_t tokens_sent = 0;
  };

  void record(Row& s, int32_t token) {
    s.offsets.push_back(static_cast<int>(s.text_bytes));
    s.ids.push_back(token);
    if (!r_.logprobs) return;
    const std::vector<float>& lp = s.step_logprobs;
    s.token_logprobs.push_back(lp[token]);
    s.top.push_back(top_alternatives(m_, lp.data(), static_cast<int>(lp.size()), *r_.logprobs));
  }

  // The logprobs of the tokens not yet sent that start before `text_end`, at most up to token `limit`.
  std::optional<Logprobs> take_logprobs(Row& s, size_t text_end, size_t limit) {
    if (!r_.logprobs) return std::nullopt;
    Logprobs lp;
    for (; s.tokens_sent < limit && static_cast<size_t>(s.offsets[s.tokens_sent]) < text_end; ++s.tokens_sent) {
      const size_t i = s.tokens_sent;
      lp.tokens.push_back(decode(m_, {s.ids[i]}));
      lp.token_logprobs.push_back(s.token_logprobs[i]);
      lp.top_logprobs.push_back(s.top[i]);
      lp.text_offset.push_back(prompt_bytes_ + s.offsets[i]);
    }
    return lp;
  }
  std::vector<int> choices_of(int row) const {
    if (rows_ == r_.n) return {row};
    std::vector<int> all(r_.n);
    std::iota(all.begin(), all.end(), 0);
    return all;
  }
  void emit(int choice, const std::string& text, std::optional<std::string> finish, std::optional<Logprobs> lp) {
    if (hooks_.on_delta) hooks_.on_delta(ChoiceDelta{first_ + choice, text, std::move(finish), std::move(lp)});
  }

  const ServedModel& m_;
  const LanguageModel& lm_;
  const CompletionRequest& r_;
  const GenerationConfig& g_;
  int first_, rows_;
  const RunHooks& hooks_;
  std::vector<Row> state_;
  int prompt_bytes_ = 0;  // text_offset counts from the prompt's start, as OpenAI's does
};

// The best_of candidates of one prompt, generated (or, with max_tokens 0, just the prompt).
std::vector<Ids> generate_candidates(const ServedModel& m, const LanguageModel& lm, const CompletionRequest& r,
                                     const GenerationConfig& g, const Ids& prompt, Streamer& streamer,
                                     const RunHooks& hooks) {
  if (r.max_tokens == 0) return std::vector<Ids>(g.num_return_sequences);
  GenerationCallbacks cb;
  cb.decode = [&](const Ids& ids) { return m.tokenizer.decode(ids, false, false); };
  if (r.stream && r.logprobs)
    cb.on_step_logits = [&](int, int row, const float* logits, int vocab) { streamer.logits(row, logits, vocab); };
  cb.on_tokens = [&](const std::vector<int32_t>& tokens) {
    if (hooks.cancelled && hooks.cancelled()) throw Cancelled{};
    if (hooks.on_step) hooks.on_step();
    streamer.push(tokens);
  };
  const GenerationOutput out = generate(lm, {prompt}, g, cb);
  std::vector<Ids> rows;
  for (const auto& seq : out.sequences) rows.emplace_back(seq.begin() + out.prompt_length, seq.end());
  return rows;
}

}  // namespace

std::vector<float> position_logprobs(const LanguageModel& lm, const std::vector<int32_t>& ids) {
  const int n = static_cast<int>(ids.size()), vocab = lm.vocab_size();
  auto session = lm.start(1, n);
  std::vector<int32_t> positions(n);
  std::iota(positions.begin(), positions.end(), 0);
  const std::vector<uint8_t> mask(n, 1);
  std::vector<float> logits(static_cast<size_t>(n) * vocab);
  session->forward(n, ids.data(), positions.data(), mask.data(), logits.data(), true);
  logits.resize(static_cast<size_t>(n - 1) * vocab);  // the last position predicts nothing here
  // The same log_softmax as `lmforge score`, so echo log-probs agree with it.
  for (int p = 0; p + 1 < n; ++p) log_softmax_like_score(logits.data() + static_cast<size_t>(p) * vocab, vocab);
  return logits;
}

namespace {

// One generated row of a prompt, finished, and scored when logprobs or best_of need it.
struct Candidate {
  int row = 0;
  Finished f;
  std::optional<Scored> s;
  double mean = 0;  // best_of's ranking key
};

// The prompt's candidates in the order they are returned: OpenAI's best_of keeps the n with the
// highest mean token log-prob, best first.
std::vector<Candidate> rank_candidates(const ServedModel& m, const LanguageModel& lm, const CompletionRequest& r,
                                       const GenerationConfig& g, const Ids& prompt, const std::vector<Ids>& rows) {
  const bool need_scores = r.logprobs.has_value() || r.best_of > r.n;
  std::vector<Candidate> cands;
  for (size_t row = 0; row < rows.size(); ++row) {
    Candidate c{static_cast<int>(row), finish_row(m, g, r, rows[row]), std::nullopt};
    if (need_scores) {
      c.s = score_row(m, lm, prompt, c.f.tokens, r.echo, r.logprobs.value_or(0));
      c.mean = c.s->mean;
    }
    cands.push_back(std::move(c));
  }
  if (r.best_of > r.n)
    std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) { return a.mean > b.mean; });
  return cands;
}

Choice make_choice(const ServedModel& m, const CompletionRequest& r, const Ids& prompt, const Candidate& c, int index) {
  Choice choice;
  choice.index = index;
  choice.text = (r.echo ? decode(m, prompt) : "") + c.f.text;
  if (r.logprobs) choice.logprobs = c.s->lp;
  choice.finish_reason = c.f.finish_reason;
  return choice;
}

}  // namespace

CompletionResult run_completion(const ServedModel& m, const CompletionRequest& r, const RunHooks& hooks) {
  return run_completion(m, *m.model, r, hooks);
}

CompletionResult run_completion(const ServedModel& m, const LanguageModel& lm, const CompletionRequest& r,
                                const RunHooks& hooks) {
  CompletionResult result;
  const GenerationConfig g = generation_config_for(m, r);
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    const Ids& prompt = r.prompts[p];
    const int first_index = static_cast<int>(p) * r.n;
    Streamer streamer(m, lm, r, g, first_index, g.num_return_sequences, hooks);
    streamer.start(prompt);
    const std::vector<Ids> rows = generate_candidates(m, lm, r, g, prompt, streamer, hooks);
    const std::vector<Candidate> cands = rank_candidates(m, lm, r, g, prompt, rows);
    result.prompt_tokens += static_cast<int>(prompt.size());
    for (const Candidate& c : cands) result.completion_tokens += c.f.generated;
    for (int c = 0; c < r.n; ++c)  // greedy: one row serves all n
      result.choices.push_back(make_choice(m, r, prompt, cands[std::min<size_t>(c, cands.size() - 1)], first_index + c));
    for (const Candidate& c : cands)
      if (static_cast<int>(cands.size()) == r.n || c.row == 0) streamer.finish(c.row, c.f);
  }
  return result;
}

}  // namespace lmforge::serve
