#pragma once
// HF logits processors and warpers as small composable classes (a sampler chain). Each one edits the
// next-token scores of one row given that row's full input_ids (left padding and prompt included,
// exactly what HF passes them). generate() builds the chain in HF's order:
//   processors (_get_logits_processor): repetition penalty -> no-repeat n-gram -> min length ->
//                                       min new tokens -> OpenAI presence/frequency penalty -> logit bias
//                                       -> structured output (last: see StructuredOutputProcessor)
//   warpers (_get_logits_warper, do_sample only): temperature -> top-k -> top-p
// Filtered entries are set to -inf (HF's filter_value).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "generate/plan.h"
#include "lmforge/structured/constraint.h"

namespace lmforge::gen {

class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  virtual void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const = 0;
  virtual std::string name() const = 0;
};

// Divides positive / multiplies negative scores of every token present in `ids` (once per token,
// however often it occurs), so a penalty > 1 always makes repeats less likely.
class RepetitionPenaltyProcessor : public LogitsProcessor {
 public:
  explicit RepetitionPenaltyProcessor(float penalty) : penalty_(penalty) {}
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "repetition_penalty"; }

 private:
  float penalty_;
};

// Bans every token that would complete an n-gram already present in `ids`.
class NoRepeatNGramProcessor : public LogitsProcessor {
 public:
  explicit NoRepeatNGramProcessor(int n) : n_(n) {}
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "no_repeat_ngram"; }

 private:
  int n_;
};

// Bans the eos tokens while the row (padding included) is shorter than min_length.
class MinLengthProcessor : public LogitsProcessor {
 public:
  MinLengthProcessor(int min_length, std::vector<int32_t> eos) : min_length_(min_length), eos_(std::move(eos)) {}
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "min_length"; }

 private:
  int min_length_;
  std::vector<int32_t> eos_;
};

// Bans the eos tokens while fewer than min_new_tokens tokens follow the (padded) prompt.
class MinNewTokensProcessor : public LogitsProcessor {
 public:
  MinNewTokensProcessor(int prompt_length, int min_new_tokens, std::vector<int32_t> eos)
      : prompt_length_(prompt_length), min_new_tokens_(min_new_tokens), eos_(std::move(eos)) {}
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "min_new_tokens"; }

 private:
  int prompt_length_, min_new_tokens_;
  std::vector<int32_t> eos_;
};

// OpenAI's presence and frequency penalties: every token generated so far (the ids after the padded
// prompt) loses count * frequency + presence from its score. The prompt is not counted, as in OpenAI.
class PresenceFrequencyPenaltyProcessor : public LogitsProcessor {
 public:
  PresenceFrequencyPenaltyProcessor(int prompt_length, float presence, float frequency)
      : prompt_length_(prompt_length), presence_(presence), frequency_(frequency) {}
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "presence_frequency_penalty"; }

 private:
  int prompt_length_;
  float presence_, frequency_;
};

// OpenAI's logit_bias: adds a fixed bias to the score of each listed token (ids outside the
// vocabulary are ignored; the server refuses them before they get here).
class LogitBiasProcessor : public LogitsProcessor {
 public:
  explicit LogitBiasProcessor(std::vector<std::pair<int32_t, float>> bias) : bias_(std::move(bias)) {}
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "logit_bias"; }

 private:
  std::vector<std::pair<int32_t, float>> bias_;
};

// Structured output: every token whose bytes cannot continue the output in the constraint's
// language gets -inf; eos keeps its score exactly when the output so far is complete. The row's
// automaton state comes from its generated tokens (ids after the padded prompt) through a prefix
// tree shared by the rows of one generate() call, so beam reordering and num_return_sequences
// copies need no bookkeeping of their own.
//
// It runs last among the processors and before the warpers, where HF runs a user's
// logits_processor (outlines, transformers-cfg): after the penalties, so nothing can lift a banned
// token back, and so it can see a dead end they caused; before temperature/top-k/top-p, so those
// choose among allowed tokens (top-k applied first could keep 50 tokens none of which is allowed).
// Dead end (no allowed token has a finite score, e.g. the vocabulary cannot continue the output,
// or min_new_tokens bans the eos of a complete one): only eos stays, so the row ends cleanly.
class StructuredOutputProcessor : public LogitsProcessor {
 public:
  StructuredOutputProcessor(std::shared_ptr<const structured::TokenConstraint> constraint, int prompt_length,
                            std::vector<int32_t> eos);
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "structured_output"; }

 private:
  std::shared_ptr<structured::SequenceStates> states_;  // mutable per-call cache behind a const apply
  int prompt_length_;
  std::vector<int32_t> eos_;
};

class TemperatureWarper : public LogitsProcessor {
 public:
  explicit TemperatureWarper(float t) : t_(t) {}
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "temperature"; }

 private:
  float t_;
};

// Keeps the entries >= the k-th largest (ties at the boundary survive, as in HF).
class TopKWarper : public LogitsProcessor {
 public:
  TopKWarper(int k, int min_tokens_to_keep) : k_(std::max(k, min_tokens_to_keep)) {}
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "top_k"; }

 private:
  int k_;
};

// Nucleus filtering the HF way: sort ascending, cumulative softmax, drop entries whose cumulative
// probability is <= 1 - top_p, but never the min_tokens_to_keep most likely.
class TopPWarper : public LogitsProcessor {
 public:
  TopPWarper(double top_p, int min_tokens_to_keep);
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const override;
  std::string name() const override { return "top_p"; }

 private:
  float threshold_;  // float32(1 - top_p): torch compares the float cumsum with the scalar in float32
  int min_keep_;
};

class ProcessorChain {
 public:
  void add(std::unique_ptr<LogitsProcessor> p) { chain_.push_back(std::move(p)); }
  void apply(const std::vector<int32_t>& ids, float* scores, int vocab) const {
    for (const auto& p : chain_) p->apply(ids, scores, vocab);
  }
  bool empty() const { return chain_.empty(); }
  std::vector<std::string> names() const;

 private:
  std::vector<std::unique_ptr<LogitsProcessor>> chain_;
};

// HF _get_logits_processor for the settings we support, in HF's order.
ProcessorChain build_logits_processors(const GenerationPlan& plan);
// HF _get_logits_warper: temperature, top-k, top-p (callers use it only when sampling). Beam
// sampling keeps at least one non-eos token (min_tokens_to_keep = #eos + 1).
ProcessorChain build_logits_warpers(const GenerationPlan& plan);

}  // namespace lmforge::gen
