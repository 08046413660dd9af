#include "generate/processors.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "generate/scores.h"

namespace lmforge::gen {

namespace {
constexpr float kFiltered = -std::numeric_limits<float>::infinity();

void ban(const std::vector<int32_t>& tokens, float* scores, int vocab) {
  for (int32_t t : tokens)
    if (t >= 0 && t < vocab) scores[t] = kFiltered;
}
}  // namespace

void RepetitionPenaltyProcessor::apply(const std::vector<int32_t>& ids, float* scores, int vocab) const {
  // HF gathers the scores of input_ids and scatters the penalised values back: a token that occurs
  // several times is penalised once, so work on the distinct ids.
  std::vector<int32_t> seen(ids);
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  for (int32_t t : seen) {
    if (t < 0 || t >= vocab) continue;
    const float s = scores[t];
    scores[t] = s < 0 ? s * penalty_ : s / penalty_;
  }
}

void NoRepeatNGramProcessor::apply(const std::vector<int32_t>& ids, float* scores, int vocab) const {
  const int len = static_cast<int>(ids.size());
  if (len + 1 < n_) return;  // HF: not enough tokens to form an n-gram yet
  // The last n-1 tokens are the prefix of the n-gram the next token would complete; every earlier
  // n-gram with that prefix bans its final token. (HF builds a prefix -> next-tokens dict; scanning
  // gives the same set.)
  const int prefix = n_ - 1;
  const int32_t* tail = ids.data() + len - prefix;
  for (int start = 0; start + n_ <= len; ++start) {
    if (std::equal(tail, tail + prefix, ids.data() + start)) {
      const int32_t t = ids[start + prefix];
      if (t >= 0 && t < vocab) scores[t] = kFiltered;
    }
  }
}

void MinLengthProcessor::apply(const std::vector<int32_t>& ids, float* scores, int vocab) const {
  if (static_cast<int>(ids.size()) < min_length_) ban(eos_, scores, vocab);
}

void MinNewTokensProcessor::apply(const std::vector<int32_t>& ids, float* scores, int vocab) const {
  if (static_cast<int>(ids.size()) - prompt_length_ < min_new_tokens_) ban(eos_, scores, vocab);
}

void PresenceFrequencyPenaltyProcessor::apply(const std::vector<int32_t>& ids, float* scores, int vocab) const {
  std::vector<int> count(vocab, 0);
  for (size_t i = std::min<size_t>(prompt_length_, ids.size()); i < ids.size(); ++i)
    if (ids[i] >= 0 && ids[i] < vocab) ++count[ids[i]];
  for (int t = 0; t < vocab; ++t)
    if (count[t] > 0) scores[t] -= count[t] * frequency_ + presence_;
}

void LogitBiasProcessor::apply(const std::vector<int32_t>&, float* scores, int vocab) const {
  for (const auto& [t, b] : bias_)
    if (t >= 0 && t < vocab) scores[t] += b;
}

StructuredOutputProcessor::StructuredOutputProcessor(std::shared_ptr<const structured::TokenConstraint> constraint,
                                                     int prompt_length, std::vector<int32_t> eos)
    : states_(std::make_shared<structured::SequenceStates>(std::move(constraint))),
      prompt_length_(prompt_length),
      eos_(std::move(eos)) {}

void StructuredOutputProcessor::apply(const std::vector<int32_t>& ids, float* scores, int vocab) const {
  const size_t start = std::min<size_t>(prompt_length_, ids.size());
  const auto mask = states_->constraint().mask(states_->state_after(ids.data() + start, ids.size() - start));
  std::vector<float> eos_scores;
  for (int32_t e : eos_) eos_scores.push_back(e >= 0 && e < vocab ? scores[e] : kFiltered);
  // A word of the mask at a time: most words of a narrow constraint are 0 (64 bans at once).
  const int known = std::min(vocab, states_->constraint().vocab_size());
  bool any_left = false;
  for (int base = 0; base < vocab; base += 64) {
    const uint64_t bits = base < known ? mask->bits[base >> 6] : 0;
    const int end = std::min(base + 64, vocab);
    for (int t = base; t < end; ++t) {
      if ((bits >> (t - base)) & 1) any_left = any_left || scores[t] != kFiltered;
      else scores[t] = kFiltered;
    }
  }
  if (mask->accepting) {
    for (size_t i = 0; i < eos_.size(); ++i)
      if (eos_[i] >= 0 && eos_[i] < vocab) {
        scores[eos_[i]] = eos_scores[i];
        any_left = any_left || eos_scores[i] != kFiltered;
      }
  }
  // Dead end: eos alone, with its own score when it has one (beam search adds it to the beam's
  // running log-probability, where 0 would make a dead end look like a certainty).
  if (!any_left && !eos_.empty() && eos_[0] >= 0 && eos_[0] < vocab)
    scores[eos_[0]] = eos_scores[0] != kFiltered ? eos_scores[0] : 0.0f;
}

void TemperatureWarper::apply(const std::vector<int32_t>&, float* scores, int vocab) const {
  for (int i = 0; i < vocab; ++i) scores[i] = scores[i] / t_;
}

void TopKWarper::apply(const std::vector<int32_t>&, float* scores, int vocab) const {
  const int k = std::min(k_, vocab);
  if (k <= 0) return;
  std::vector<float> sorted(scores, scores + vocab);
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float kth = sorted[k - 1];
  for (int i = 0; i < vocab; ++i)
    if (scores[i] < kth) scores[i] = kFiltered;
}

TopPWarper::TopPWarper(double top_p, int min_tokens_to_keep)
    : threshold_(static_cast<float>(1.0 - top_p)), min_keep_(min_tokens_to_keep) {}

void TopPWarper::apply(const std::vector<int32_t>&, float* scores, int vocab) const {
  std::vector<int> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [scores](int a, int b) { return scores[a] < scores[b]; });
  std::vector<float> probs(vocab);
  for (int i = 0; i < vocab; ++i) probs[i] = scores[order[i]];
  softmax_inplace(probs.data(), vocab);
  // torch's CPU cumsum accumulates float in double and rounds each partial sum to float.
  double cum = 0.0;
  const int removable = vocab - min_keep_;  // the last min_keep_ (most likely) always stay
  for (int i = 0; i < removable; ++i) {
    cum += probs[i];
    if (static_cast<float>(cum) <= threshold_) scores[order[i]] = kFiltered;
  }
}

std::vector<std::string> ProcessorChain::names() const {
  std::vector<std::string> out;
  for (const auto& p : chain_) out.push_back(p->name());
  return out;
}

ProcessorChain build_logits_processors(const GenerationPlan& plan) {
  const GenerationConfig& c = plan.cfg;
  ProcessorChain chain;
  if (c.repetition_penalty != 1.0f) chain.add(std::make_unique<RepetitionPenaltyProcessor>(c.repetition_penalty));
  if (c.no_repeat_ngram_size > 0) chain.add(std::make_unique<NoRepeatNGramProcessor>(c.no_repeat_ngram_size));
  // HF adds both once min_new_tokens is set (min_length was already rewritten to prompt + min_new).
  if (plan.min_length > 0 && plan.has_eos()) chain.add(std::make_unique<MinLengthProcessor>(plan.min_length, plan.eos()));
  if (c.min_new_tokens && *c.min_new_tokens > 0 && plan.has_eos())
    chain.add(std::make_unique<MinNewTokensProcessor>(plan.prompt_length, *c.min_new_tokens, plan.eos()));
  if (c.presence_penalty != 0.0f || c.frequency_penalty != 0.0f)
    chain.add(std::make_unique<PresenceFrequencyPenaltyProcessor>(plan.prompt_length, c.presence_penalty, c.frequency_penalty));
  if (!c.logit_bias.empty()) chain.add(std::make_unique<LogitBiasProcessor>(c.logit_bias));
  if (c.constraint)
    chain.add(std::make_unique<StructuredOutputProcessor>(c.constraint, plan.prompt_length, plan.eos()));
  return chain;
}

ProcessorChain build_logits_warpers(const GenerationPlan& plan) {
  const GenerationConfig& c = plan.cfg;
  // HF: beam methods keep one more token than there are eos ids (2 when there is no eos tensor).
  int min_keep = 1;
  if (c.num_beams > 1) min_keep = plan.has_eos() ? static_cast<int>(plan.eos().size()) + 1 : 2;
  ProcessorChain chain;
  if (c.temperature != 1.0f) chain.add(std::make_unique<TemperatureWarper>(c.temperature));
  if (c.top_k != 0) chain.add(std::make_unique<TopKWarper>(c.top_k, min_keep));
  if (plan.top_p < 1.0) chain.add(std::make_unique<TopPWarper>(plan.top_p, min_keep));
  return chain;
}

}  // namespace lmforge::gen
