// Counts, novelty, diversity (distinct-n, self-BLEU), lengths and training overlap of a synthetic set.
#include "lmforge/synth/synth_report.h"

#include <algorithm>
#include <iomanip>
#include <numeric>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "lmforge/eval/bleu.h"
#include "lmforge/train/data.h"

namespace lmforge::synth {

namespace {

// Rows are compared through their normalised words; join them back so that n-grams are strings.
std::vector<std::string> words_of(const std::string& text) {
  const std::string normalized = normalize_text(text);
  std::vector<std::string> out;
  for (std::string_view w : split_words(normalized)) out.emplace_back(w);
  return out;
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

void count_verdicts(const std::vector<SynthRow>& rows, SynthReport& r) {
  for (const auto& row : rows) {
    ++r.generated;
    if (row.privacy.reason == CopyReason::ExactCopy) ++r.exact_copies;
    if (row.privacy.reason == CopyReason::NgramCopy) ++r.ngram_copies;
    if (!row.kept) {
      ++r.dropped;
      continue;
    }
    ++r.kept;
    if (row.privacy.is_copy()) ++r.flagged;
    if (row.text.empty()) ++r.empty_rows;
  }
}

void measure_lengths(const std::vector<const SynthRow*>& kept, SynthReport& r) {
  if (kept.empty()) return;
  int64_t sum = 0;
  r.length_min = kept.front()->tokens;
  r.length_max = kept.front()->tokens;
  for (const SynthRow* row : kept) {
    sum += row->tokens;
    r.length_min = std::min(r.length_min, row->tokens);
    r.length_max = std::max(r.length_max, row->tokens);
  }
  r.length_mean = static_cast<double>(sum) / static_cast<double>(kept.size());
}

}  // namespace

DistinctN distinct_ngrams(const std::vector<std::string>& texts, int n) {
  std::unordered_set<std::string> seen;
  DistinctN d;
  for (const auto& text : texts) {
    const std::vector<std::string> words = words_of(text);
    for (size_t i = 0; i + static_cast<size_t>(n) <= words.size(); ++i) {
      std::string gram = words[i];
      for (size_t k = 1; k < static_cast<size_t>(n); ++k) gram += ' ' + words[i + k];
      ++d.total;
      if (seen.insert(std::move(gram)).second) ++d.unique;
    }
  }
  return d;
}

namespace {

// sentence_bleu depends on its references only through (a) for each n-gram of the hypothesis
// (n <= 4), the largest count in any one reference, and (b) the reference length closest to the
// hypothesis length (ties: the shorter). So a hypothesis needs only the rows holding some n-gram's
// largest count, plus the row of the closest length: the score is the same as against every other
// row, and each call reads a few dozen references instead of thousands.
class ReferencePruner {
 public:
  explicit ReferencePruner(const std::vector<std::string>& texts) : texts_(texts), grams_(texts.size()) {
    const eval::BleuOptions bleu;  // the tokenisation sentence_bleu applies
    for (size_t row = 0; row < texts.size(); ++row) {
      const std::vector<std::string> tokens = eval::tokenize_bleu(texts[row], bleu.tokenizer, bleu.lowercase);
      lengths_.push_back(static_cast<int64_t>(tokens.size()));
      by_length_.emplace_back(lengths_.back(), row);
      std::unordered_map<std::string, int64_t> counts;
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string gram;
        for (size_t n = 1; n <= static_cast<size_t>(eval::kBleuMaxOrder) && i + n <= tokens.size(); ++n) {
          gram += (n > 1 ? "\x1f" : "") + tokens[i + n - 1];  // a separator no token contains
          ++counts[gram];
        }
      }
      for (auto& [gram, count] : counts) {
        best_[gram].offer(count, row);
        grams_[row].push_back(gram);
      }
    }
    std::sort(by_length_.begin(), by_length_.end());
  }

  std::vector<std::string> references_for(size_t row) const {
    std::set<size_t> rows;
    for (const auto& gram : grams_[row])
      if (auto other = best_.at(gram).best_other_than(row)) rows.insert(*other);
    rows.insert(closest_length_other_than(row));
    std::vector<std::string> refs;
    for (size_t r : rows) refs.push_back(texts_[r]);
    return refs;
  }

 private:
  // The two largest counts of one n-gram, in different rows: the best once `row` is left out.
  struct Best {
    int64_t count[2] = {0, 0};
    size_t row[2] = {0, 0};
    void offer(int64_t c, size_t r) {
      if (c > count[0]) {
        count[1] = count[0], row[1] = row[0];
        count[0] = c, row[0] = r;
      } else if (c > count[1]) {
        count[1] = c, row[1] = r;
      }
    }
    std::optional<size_t> best_other_than(size_t r) const {
      if (row[0] != r) return row[0];
      if (count[1] > 0) return row[1];
      return std::nullopt;
    }
  };

  size_t closest_length_other_than(size_t row) const {
    const int64_t len = lengths_[row];
    auto above = std::lower_bound(by_length_.begin(), by_length_.end(), std::make_pair(len, size_t{0}));
    auto below = above;
    while (above != by_length_.end() && above->second == row) ++above;
    std::optional<std::pair<int64_t, size_t>> shorter;
    while (below != by_length_.begin()) {
      --below;
      if (below->second != row) {
        shorter = *below;
        break;
      }
    }
    if (above == by_length_.end()) return shorter->second;
    if (!shorter) return above->second;
    return len - shorter->first <= above->first - len ? shorter->second : above->second;  // ties: shorter
  }

  const std::vector<std::string>& texts_;
  std::vector<std::vector<std::string>> grams_;  // distinct n-grams of each row
  std::unordered_map<std::string, Best> best_;
  std::vector<int64_t> lengths_;                       // tokens per row
  std::vector<std::pair<int64_t, size_t>> by_length_;  // (tokens, row), sorted
};

}  // namespace

std::optional<SelfBleu> self_bleu(const std::vector<std::string>& texts, int max_hypotheses, uint64_t seed) {
  if (texts.size() < 2) return std::nullopt;
  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  SelfBleu result;
  result.sampled = texts.size() > static_cast<size_t>(max_hypotheses);
  if (result.sampled) {
    Rng rng(seed);
    rng.shuffle(order);
    order.resize(static_cast<size_t>(max_hypotheses));
    std::sort(order.begin(), order.end());
  }
  const ReferencePruner pruner(texts);
  double sum = 0;
  for (size_t i : order) sum += eval::sentence_bleu(texts[i], pruner.references_for(i)).score;
  result.hypotheses = static_cast<int64_t>(order.size());
  result.score = sum / static_cast<double>(order.size());
  return result;
}

SynthReport build_report(const std::vector<SynthRow>& rows, const std::vector<std::string>& references,
                         const SynthConfig& cfg) {
  SynthReport r;
  r.privacy_mode = to_string(cfg.privacy);
  r.max_copy_ngram = cfg.max_copy_ngram;
  r.reference_rows = static_cast<int64_t>(references.size());
  count_verdicts(rows, r);

  std::vector<const SynthRow*> kept;
  std::vector<std::string> kept_texts;
  for (const auto& row : rows)
    if (row.kept) {
      kept.push_back(&row);
      kept_texts.push_back(row.text);
    }
  measure_lengths(kept, r);
  for (int n = 1; n <= 3; ++n) r.distinct[n - 1] = distinct_ngrams(kept_texts, n);
  if (auto s = self_bleu(kept_texts, cfg.self_bleu_samples, cfg.seed)) {
    r.self_bleu = s->score;
    r.self_bleu_hypotheses = s->hypotheses;
    r.self_bleu_sampled = s->sampled;
  }

  if (!references.empty()) {
    r.novel_percent = r.generated ? 100.0 * static_cast<double>(r.generated - r.exact_copies) / static_cast<double>(r.generated) : 100.0;
    std::map<int, int64_t> histogram;
    for (int longest : longest_shared_ngrams(kept_texts, references)) ++histogram[longest];
    r.overlap_histogram = std::move(histogram);
  }
  return r;
}

nlohmann::json SynthReport::to_json() const {
  auto optional_number = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  nlohmann::json j;
  j["rows"] = {{"generated", generated}, {"kept", kept},         {"dropped", dropped},
               {"flagged", flagged},     {"empty", empty_rows}};
  j["privacy"] = {{"mode", privacy_mode},
                  {"max_copy_ngram", max_copy_ngram},
                  {"reference_rows", reference_rows},
                  {"exact_copy", exact_copies},
                  {"ngram_copy", ngram_copies}};
  j["novel_percent"] = optional_number(novel_percent);
  for (int n = 1; n <= 3; ++n)
    j["distinct_" + std::to_string(n)] = {{"value", distinct[n - 1].ratio()},
                                          {"unique", distinct[n - 1].unique},
                                          {"total", distinct[n - 1].total}};
  j["self_bleu"] = {{"value", optional_number(self_bleu)},
                    {"hypotheses", self_bleu_hypotheses},
                    {"sampled", self_bleu_sampled}};
  j["length_tokens"] = {{"mean", length_mean}, {"min", length_min}, {"max", length_max}};
  if (overlap_histogram) {
    nlohmann::json h = nlohmann::json::object();
    for (const auto& [len, count] : *overlap_histogram) h[std::to_string(len)] = count;
    j["overlap_histogram"] = h;
  } else {
    j["overlap_histogram"] = nullptr;
  }
  return j;
}

std::string SynthReport::to_table() const {
  std::ostringstream os;
  auto line = [&](const std::string& name, const std::string& value) {
    os << "  " << std::left << std::setw(26) << name << value << "\n";
  };
  os << "synthetic set report\n";
  line("rows generated", std::to_string(generated));
  line("rows kept", std::to_string(kept) + (empty_rows ? " (" + std::to_string(empty_rows) + " empty)" : ""));
  line("rows dropped", std::to_string(dropped) + " (privacy " + privacy_mode + ")");
  if (reference_rows > 0) {
    line("  exact copy", std::to_string(exact_copies));
    line("  shares a " + std::to_string(max_copy_ngram) + "-gram", std::to_string(ngram_copies));
    if (flagged) line("rows flagged (kept)", std::to_string(flagged));
  }
  line("novel", novel_percent ? fixed(*novel_percent, 1) + " %" : "n/a (no reference data)");
  for (int n = 1; n <= 3; ++n)
    line("distinct-" + std::to_string(n), fixed(distinct[n - 1].ratio(), 4) + " (" + std::to_string(distinct[n - 1].unique) +
                                              " / " + std::to_string(distinct[n - 1].total) + ")");
  line("self-BLEU", self_bleu ? fixed(*self_bleu, 2) + " (" + std::to_string(self_bleu_hypotheses) + " rows" +
                                    (self_bleu_sampled ? ", sampled" : "") + ")"
                              : "n/a (fewer than 2 rows)");
  line("length (tokens)", "mean " + fixed(length_mean, 2) + ", min " + std::to_string(length_min) + ", max " +
                              std::to_string(length_max));
  if (overlap_histogram) {
    os << "  longest n-gram shared with a training row (words: rows)\n";
    for (const auto& [len, count] : *overlap_histogram) line("    " + std::to_string(len), std::to_string(count));
  }
  return os.str();
}

}  // namespace lmforge::synth
