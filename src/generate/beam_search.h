#pragma once
// HF BeamSearchScorer / BeamHypotheses (transformers 4.43), separated from the decoding loop so the
// bookkeeping can be tested on its own.
//
// A finished hypothesis scores sum_logprobs / generated_len ** length_penalty, where generated_len
// counts the new tokens (eos included, prompt excluded). Scores are Python doubles in HF; so here.
#include <cstdint>
#include <optional>
#include <vector>

#include "lmforge/generate/generation_config.h"

namespace lmforge::gen {

struct Hypothesis {
  double score;
  std::vector<int32_t> tokens;  // the row as it was before the eos (HF stores input_ids[beam])
};

// The num_beams best finished hypotheses of one prompt.
class BeamHypotheses {
 public:
  BeamHypotheses(int num_beams, double length_penalty, EarlyStopping early_stopping, int max_length);

  int size() const { return static_cast<int>(beams_.size()); }
  double worst_score() const { return worst_score_; }
  const std::vector<Hypothesis>& beams() const { return beams_; }

  // Keeps the hypothesis if there is room or it beats the worst kept one (which is then dropped).
  void add(std::vector<int32_t> tokens, double sum_logprobs, int generated_len);

  // Whether no running beam can still improve on the kept hypotheses:
  //   early_stopping True: as soon as num_beams hypotheses are kept;
  //   False: worst kept >= best running sum_logprobs / (cur_len - prompt_len) ** length_penalty;
  //   Never: the same with (max_length - prompt_len) when length_penalty > 0 (the best a running beam
  //          could reach), else with cur_len.
  bool is_done(double best_sum_logprobs, int cur_len, int prompt_len) const;

 private:
  int num_beams_;
  double length_penalty_;
  EarlyStopping early_stopping_;
  int max_length_;
  std::vector<Hypothesis> beams_;
  double worst_score_ = 1e9;
};

// One of the top candidates of a prompt in a beam step: a beam (0..num_beams-1 within the prompt),
// the token appended to it, and the running score sum of log-probabilities.
struct BeamCandidate {
  float score;
  int32_t token;
  int beam;
};

struct BeamStep {
  std::vector<float> scores;    // [batch * num_beams] new running beam scores
  std::vector<int32_t> tokens;  // [batch * num_beams] token appended to each new beam
  std::vector<int> source;      // [batch * num_beams] row (global) each new beam continues
};

struct BeamResult {
  std::vector<std::vector<int32_t>> sequences;  // [batch * num_return_sequences]
  std::vector<float> scores;
};

class BeamSearchScorer {
 public:
  BeamSearchScorer(int batch, int num_beams, double length_penalty, EarlyStopping early_stopping,
                   int num_return_sequences, int max_length);

  // HF process(): walks each prompt's candidates best first; an eos candidate ranked within the top
  // num_beams closes a hypothesis (the running row without the eos), any other candidate fills the
  // next free beam until num_beams are chosen. A prompt that is already done gets pad tokens, score
  // 0 and source row 0 (HF's literal zero index). `ids` are the rows before this step's token.
  BeamStep process(const std::vector<std::vector<int32_t>>& ids,
                   const std::vector<std::vector<BeamCandidate>>& candidates, std::optional<int32_t> pad,
                   const std::vector<int32_t>& eos, int prompt_len);

  bool is_done() const;

  // HF finalize(): adds the running beams of unfinished prompts as hypotheses, takes the
  // num_return_sequences best of each prompt, pads shorter ones with pad and appends eos[0] where
  // it fits (below min(longest + 1, max_length)).
  BeamResult finalize(const std::vector<std::vector<int32_t>>& ids, const std::vector<float>& beam_scores,
                      std::optional<int32_t> pad, const std::vector<int32_t>& eos, int prompt_len);

  const BeamHypotheses& hypotheses(int b) const { return hyps_[b]; }

 private:
  int num_beams_, num_return_, max_length_;
  std::vector<BeamHypotheses> hyps_;
  std::vector<bool> done_;
};

}  // namespace lmforge::gen
