// HF _beam_search (transformers 4.43) with BeamSearchScorer: scores are log_softmax(logits) after
// the logits processors (and warpers when beam sampling) plus each beam's running score; the
// 2 * num_beams best (more with several eos ids) over num_beams * vocab are offered to the scorer.
#include "generate/beam_search.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>

#include "generate/decoder.h"
#include "generate/processors.h"
#include "generate/sampler.h"
#include "generate/scores.h"
#include "generate/stopping.h"
#include "generate/strategies.h"
#include "lmforge/error.h"

namespace lmforge::gen {

// ---------------------------------------------------------------------------------------------
// BeamHypotheses

BeamHypotheses::BeamHypotheses(int num_beams, double length_penalty, EarlyStopping early_stopping, int max_length)
    : num_beams_(num_beams), length_penalty_(length_penalty), early_stopping_(early_stopping), max_length_(max_length) {}

void BeamHypotheses::add(std::vector<int32_t> tokens, double sum_logprobs, int generated_len) {
  const double score = sum_logprobs / std::pow(static_cast<double>(generated_len), length_penalty_);
  if (size() < num_beams_ || score > worst_score_) {
    beams_.push_back({score, std::move(tokens)});
    if (size() > num_beams_) {
      // HF sorts (score, index) pairs: the lowest score goes (the earliest one on ties) and the
      // next lowest becomes the new worst.
      std::vector<std::pair<double, int>> order;
      for (int i = 0; i < size(); ++i) order.emplace_back(beams_[i].score, i);
      std::sort(order.begin(), order.end());
      beams_.erase(beams_.begin() + order[0].second);
      worst_score_ = order[1].first;
    } else {
      worst_score_ = std::min(score, worst_score_);
    }
  }
}

bool BeamHypotheses::is_done(double best_sum_logprobs, int cur_len, int prompt_len) const {
  if (size() < num_beams_) return false;
  switch (early_stopping_) {
    case EarlyStopping::True:
      return true;
    case EarlyStopping::False:
      return worst_score_ >= best_sum_logprobs / std::pow(static_cast<double>(cur_len - prompt_len), length_penalty_);
    case EarlyStopping::Never:
    default: {
      // With a positive penalty a running beam's best possible score is at max_length; otherwise at cur_len.
      const int len = length_penalty_ > 0.0 ? max_length_ - prompt_len : cur_len - prompt_len;
      return worst_score_ >= best_sum_logprobs / std::pow(static_cast<double>(len), length_penalty_);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// BeamSearchScorer

BeamSearchScorer::BeamSearchScorer(int batch, int num_beams, double length_penalty, EarlyStopping early_stopping,
                                   int num_return_sequences, int max_length)
    : num_beams_(num_beams), num_return_(num_return_sequences), max_length_(max_length),
      hyps_(batch, BeamHypotheses(num_beams, length_penalty, early_stopping, max_length)), done_(batch, false) {}

bool BeamSearchScorer::is_done() const {
  return std::all_of(done_.begin(), done_.end(), [](bool d) { return d; });
}

BeamStep BeamSearchScorer::process(const std::vector<std::vector<int32_t>>& ids,
                                   const std::vector<std::vector<BeamCandidate>>& candidates,
                                   std::optional<int32_t> pad, const std::vector<int32_t>& eos, int prompt_len) {
  const int batch = static_cast<int>(hyps_.size());
  const int cur_len = static_cast<int>(ids.front().size()) + 1;  // length once this step's token is added
  BeamStep out;
  out.scores.assign(static_cast<size_t>(batch) * num_beams_, 0.0f);
  out.tokens.assign(out.scores.size(), 0);
  out.source.assign(out.scores.size(), 0);
  auto is_eos = [&eos](int32_t t) { return std::find(eos.begin(), eos.end(), t) != eos.end(); };

  for (int b = 0; b < batch; ++b) {
    const int base = b * num_beams_;
    if (done_[b]) {
      if (!pad) throw Error("beam search: a finished prompt needs --pad_token_id");
      std::fill(out.tokens.begin() + base, out.tokens.begin() + base + num_beams_, *pad);
      continue;  // scores 0, source 0 (HF's literal index 0)
    }
    int filled = 0;
    float best = -std::numeric_limits<float>::infinity();
    const auto& cands = candidates[b];
    for (size_t rank = 0; rank < cands.size(); ++rank) {
      const BeamCandidate& c = cands[rank];
      const int row = base + c.beam;
      if (is_eos(c.token)) {
        // Only an eos among the top num_beams candidates closes a hypothesis.
        if (static_cast<int>(rank) >= num_beams_) continue;
        hyps_[b].add(ids[row], c.score, cur_len - prompt_len);
      } else {
        out.scores[base + filled] = c.score;
        out.tokens[base + filled] = c.token;
        out.source[base + filled] = row;
        ++filled;
      }
      if (filled == num_beams_) break;
    }
    if (filled < num_beams_)
      throw Error("beam search: fewer than " + std::to_string(num_beams_) +
                  " non-eos candidates were available for the next step");
    for (const BeamCandidate& c : cands) best = std::max(best, c.score);  // HF: next_scores.max()
    done_[b] = done_[b] || hyps_[b].is_done(best, cur_len, prompt_len);
  }
  return out;
}

BeamResult BeamSearchScorer::finalize(const std::vector<std::vector<int32_t>>& ids,
                                      const std::vector<float>& beam_scores, std::optional<int32_t> pad,
                                      const std::vector<int32_t>& eos, int prompt_len) {
  const int batch = static_cast<int>(hyps_.size());
  for (int b = 0; b < batch; ++b) {
    if (done_[b]) continue;
    for (int k = 0; k < num_beams_; ++k) {
      const int row = b * num_beams_ + k;
      hyps_[b].add(ids[row], beam_scores[row], static_cast<int>(ids[row].size()) - prompt_len);
    }
  }
  // Best first: HF sorts by score (stable) and pops from the end, so among equal scores the
  // hypothesis added last comes first.
  BeamResult out;
  for (int b = 0; b < batch; ++b) {
    std::vector<Hypothesis> sorted = hyps_[b].beams();
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const Hypothesis& x, const Hypothesis& y) { return x.score < y.score; });
    for (int j = 0; j < num_return_; ++j) {
      out.sequences.push_back(sorted.back().tokens);
      out.scores.push_back(static_cast<float>(sorted.back().score));
      sorted.pop_back();
    }
  }
  size_t shortest = SIZE_MAX, longest = 0;
  for (const auto& s : out.sequences) {
    shortest = std::min(shortest, s.size());
    longest = std::max(longest, s.size());
  }
  // Room for one eos after the longest, but never beyond max_length. (Without eos ids every
  // hypothesis has the same length and nothing is appended.)
  const size_t width = eos.empty() ? longest : std::min(longest + 1, static_cast<size_t>(max_length_));
  if (shortest != longest && !pad) throw Error("beam search: hypotheses of different lengths need --pad_token_id");
  for (auto& s : out.sequences) {
    if (s.size() < width) s.push_back(eos.empty() ? *pad : eos.front());
    s.resize(width, pad.value_or(0));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The decoding loop

namespace {

// Candidates of prompt b: the `keep` best (or, beam sampling, `keep` drawn) entries of the prompt's
// num_beams x vocab scores, best first.
// `constrained` (structured output): a constraint may leave fewer than `keep` tokens possible (one
// allowed token per beam is common), which is no user error: the draw is topped up with the best
// impossible entries (score -inf), as beam search without sampling takes them from top-k.
std::vector<BeamCandidate> select_candidates(const float* scores, int num_beams, int vocab, int keep, bool do_sample,
                                             bool constrained, Sampler& sampler) {
  const int n = num_beams * vocab;
  std::vector<int> picked;
  if (do_sample) {
    std::vector<float> probs(scores, scores + n);
    softmax_inplace(probs.data(), n);
    picked = sampler.sample_without_replacement(probs.data(), n, keep);
    if (static_cast<int>(picked.size()) < keep && constrained) {
      for (int i : top_k_indices(scores, n, n < 4 * keep ? n : 4 * keep)) {
        if (static_cast<int>(picked.size()) == keep) break;
        if (std::find(picked.begin(), picked.end(), i) == picked.end()) picked.push_back(i);
      }
    }
    if (static_cast<int>(picked.size()) < keep)
      throw Error("beam sampling: fewer than " + std::to_string(keep) +
                  " tokens have a non-zero probability; raise --top_k / --top_p or lower --num_beams");
    std::stable_sort(picked.begin(), picked.end(), [scores](int a, int b) { return scores[a] > scores[b]; });
  } else {
    picked = top_k_indices(scores, n, keep);
  }
  std::vector<BeamCandidate> out;
  out.reserve(picked.size());
  for (int i : picked) out.push_back({scores[i], static_cast<int32_t>(i % vocab), i / vocab});
  return out;
}

}  // namespace

GenerationOutput run_beam_search(const LanguageModel& lm, const GenerationPlan& plan,
                                 const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerationCallbacks& callbacks) {
  const GenerationConfig& cfg = plan.cfg;
  const int num_beams = cfg.num_beams;
  const int batch = static_cast<int>(prompts.size());
  BatchDecoder dec(lm, left_pad(prompts, prompt_pad_token(plan, prompts), num_beams), plan.max_length);
  const ProcessorChain processors = build_logits_processors(plan);
  const ProcessorChain warpers = build_logits_warpers(plan);
  const StoppingCriteria stopping(plan, callbacks.decode);
  Sampler sampler(cfg.seed);
  BeamSearchScorer scorer(batch, num_beams, plan.length_penalty, cfg.early_stopping, cfg.num_return_sequences,
                          plan.max_length);

  const int rows = dec.rows(), vocab = dec.vocab();
  // Only the first beam of each prompt starts live, so the first step does not pick the same
  // token num_beams times.
  std::vector<float> beam_scores(rows, 0.0f);
  for (int r = 0; r < rows; ++r)
    if (r % num_beams != 0) beam_scores[r] = -1e9f;
  // HF 4.43: 1 + #eos candidates per beam, so at least one non-eos continuation always exists.
  const int keep = std::max<int>(2, 1 + static_cast<int>(plan.eos().size())) * num_beams;
  std::vector<float> scores(static_cast<size_t>(rows) * vocab);
  std::vector<std::vector<BeamCandidate>> candidates(batch);

  dec.prefill();
  for (int step = 0;; ++step) {
    for (int r = 0; r < rows; ++r) {
      if (callbacks.on_step_logits) callbacks.on_step_logits(step, r, dec.logits(r), vocab);
      float* s = scores.data() + static_cast<size_t>(r) * vocab;
      std::copy(dec.logits(r), dec.logits(r) + vocab, s);
      log_softmax_inplace(s, vocab);
      processors.apply(dec.ids(r), s, vocab);
      if (cfg.do_sample) warpers.apply(dec.ids(r), s, vocab);
      for (int v = 0; v < vocab; ++v) s[v] += beam_scores[r];
    }
    for (int b = 0; b < batch; ++b)
      candidates[b] = select_candidates(scores.data() + static_cast<size_t>(b) * num_beams * vocab, num_beams, vocab,
                                        keep, cfg.do_sample, cfg.constraint != nullptr, sampler);
    BeamStep next = scorer.process(dec.all_ids(), candidates, plan.pad, plan.eos(), plan.prompt_length);
    dec.reorder_and_append(next.source, next.tokens);
    beam_scores = std::move(next.scores);

    if (scorer.is_done()) break;
    bool all_stopped = true;
    for (int r = 0; r < rows && all_stopped; ++r) all_stopped = stopping.done(dec.ids(r), dec.pad_count(r));
    if (all_stopped) break;
    dec.forward_last();
  }

  BeamResult res = scorer.finalize(dec.all_ids(), beam_scores, plan.pad, plan.eos(), plan.prompt_length);
  GenerationOutput out;
  out.prompt_length = plan.prompt_length;
  out.sequences = std::move(res.sequences);
  out.sequences_scores = std::move(res.scores);
  return out;
}

}  // namespace lmforge::gen
