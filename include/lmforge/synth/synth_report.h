#pragma once
// The synthetic-set report: how many rows survived the privacy guard, how novel and how diverse
// the kept rows are, and how close they come to the training rows.
//
// Definitions (words are the privacy guard's normalised words, see privacy_guard.h):
//   novel_percent      share of *generated* rows that are not an exact normalised copy of a
//                      training row (null without reference data)
//   distinct_n         unique word n-grams / all word n-grams over the kept rows (n = 1, 2, 3)
//   self_bleu          mean sacreBLEU sentence BLEU (0-100) of a kept row against all the other
//                      kept rows as references; at most self_bleu_samples rows are scored, drawn
//                      with the seed (self_bleu_sampled says so); higher = less diverse
//   length_*           generated tokens per kept row (the prompt not counted)
//   overlap_histogram  for each kept row, the longest run of words it shares with any training
//                      row: {"0": rows, "1": rows, ...} (null without reference data)
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmforge/synth/synthesize.h"

namespace lmforge::synth {

struct DistinctN {
  int64_t unique = 0, total = 0;
  double ratio() const { return total ? static_cast<double>(unique) / static_cast<double>(total) : 0.0; }
};

struct SynthReport {
  int64_t generated = 0, kept = 0, dropped = 0, flagged = 0;
  int64_t exact_copies = 0, ngram_copies = 0;  // verdicts among the generated rows
  int64_t empty_rows = 0;                      // kept rows with no text
  std::string privacy_mode;
  int max_copy_ngram = 0;
  int64_t reference_rows = 0;  // 0: no reference data

  std::optional<double> novel_percent;
  DistinctN distinct[3];
  std::optional<double> self_bleu;
  int64_t self_bleu_hypotheses = 0;
  bool self_bleu_sampled = false;
  double length_mean = 0;
  int length_min = 0, length_max = 0;
  std::optional<std::map<int, int64_t>> overlap_histogram;

  nlohmann::json to_json() const;
  std::string to_table() const;  // aligned, human-readable lines
};

// Word-level distinct-n over `texts`.
DistinctN distinct_ngrams(const std::vector<std::string>& texts, int n);

// Mean sentence BLEU of sampled rows against the others. nullopt with fewer than 2 rows.
struct SelfBleu {
  double score = 0;
  int64_t hypotheses = 0;
  bool sampled = false;
};
std::optional<SelfBleu> self_bleu(const std::vector<std::string>& texts, int max_hypotheses, uint64_t seed);

// `references` empty = no reference data (novelty and overlap stay null).
SynthReport build_report(const std::vector<SynthRow>& rows, const std::vector<std::string>& references,
                         const SynthConfig& cfg);

}  // namespace lmforge::synth
