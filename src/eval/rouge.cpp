// ROUGE as rouge-score computes it (see include/lmforge/eval/rouge.h and docs/EVAL.md).
#include "lmforge/eval/rouge.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include "eval/text.h"
#include "lmforge/error.h"

namespace lmforge::eval {
namespace {

using Tokens = std::vector<std::string>;

double fmeasure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

// --- rougeN -----------------------------------------------------------------------------------

std::map<std::vector<std::string_view>, int64_t> count_ngrams(const Tokens& tokens, size_t n) {
  std::map<std::vector<std::string_view>, int64_t> counts;
  for (size_t i = 0; i + n <= tokens.size(); ++i) ++counts[std::vector<std::string_view>(tokens.begin() + i, tokens.begin() + i + n)];
  return counts;
}

int64_t total_count(const std::map<std::vector<std::string_view>, int64_t>& counts) {
  int64_t total = 0;
  for (const auto& [g, c] : counts) total += c;
  return total;
}

RougeScore score_ngrams(const Tokens& reference, const Tokens& prediction, size_t n) {
  const auto ref = count_ngrams(reference, n), pred = count_ngrams(prediction, n);
  int64_t overlap = 0;
  for (const auto& [g, c] : ref)
    if (auto it = pred.find(g); it != pred.end()) overlap += std::min(c, it->second);
  RougeScore s;
  s.precision = static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(total_count(pred), 1));
  s.recall = static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(total_count(ref), 1));
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

// --- rougeL / rougeLsum -----------------------------------------------------------------------

// table[i][j] = LCS length of ref[:i] and can[:j].
std::vector<std::vector<int32_t>> lcs_table(const Tokens& ref, const Tokens& can) {
  std::vector<std::vector<int32_t>> t(ref.size() + 1, std::vector<int32_t>(can.size() + 1, 0));
  for (size_t i = 1; i <= ref.size(); ++i)
    for (size_t j = 1; j <= can.size(); ++j)
      t[i][j] = ref[i - 1] == can[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  return t;
}

RougeScore score_lcs(const Tokens& reference, const Tokens& prediction) {
  if (reference.empty() || prediction.empty()) return {};
  const double lcs = lcs_table(reference, prediction)[reference.size()][prediction.size()];
  RougeScore s;
  s.precision = lcs / static_cast<double>(prediction.size());
  s.recall = lcs / static_cast<double>(reference.size());
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

// Indices into `ref` of one LCS with `can`. Which LCS matters for rougeLsum: like rouge-score, on a
// tie the walk moves up in the reference (i - 1) rather than left in the candidate.
std::vector<size_t> lcs_indices(const Tokens& ref, const Tokens& can) {
  const auto t = lcs_table(ref, can);
  std::vector<size_t> indices;
  size_t i = ref.size(), j = can.size();
  while (i > 0 && j > 0) {
    if (ref[i - 1] == can[j - 1]) {
      indices.push_back(i - 1);
      --i;
      --j;
    } else if (t[i][j - 1] > t[i - 1][j]) {
      --j;
    } else {
      --i;
    }
  }
  std::reverse(indices.begin(), indices.end());
  return indices;
}

// Summary-level LCS: for each reference sentence, the union of its LCS tokens with every candidate
// sentence; a token counts as a hit only while both sides still have unused occurrences of it.
RougeScore score_summary_lcs(const std::vector<Tokens>& ref_sents, const std::vector<Tokens>& can_sents) {
  if (ref_sents.empty() || can_sents.empty()) return {};
  std::unordered_map<std::string, int64_t> ref_counts, can_counts;
  size_t m = 0, n = 0;
  for (const Tokens& s : ref_sents) {
    m += s.size();
    for (const std::string& t : s) ++ref_counts[t];
  }
  for (const Tokens& s : can_sents) {
    n += s.size();
    for (const std::string& t : s) ++can_counts[t];
  }
  if (m == 0 || n == 0) return {};
  int64_t hits = 0;
  for (const Tokens& ref : ref_sents) {
    std::set<size_t> union_indices;
    for (const Tokens& can : can_sents) {
      const std::vector<size_t> idx = lcs_indices(ref, can);
      union_indices.insert(idx.begin(), idx.end());
    }
    for (size_t i : union_indices) {
      int64_t& rc = ref_counts[ref[i]];
      int64_t& cc = can_counts[ref[i]];
      if (cc > 0 && rc > 0) {
        ++hits;
        --cc;
        --rc;
      }
    }
  }
  RougeScore s;
  s.recall = static_cast<double>(hits) / static_cast<double>(m);
  s.precision = static_cast<double>(hits) / static_cast<double>(n);
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

// rougeLsum's sentences: text.split("\n") without empty strings, each tokenized.
std::vector<Tokens> tokenized_sentences(const std::string& text, bool use_stemmer) {
  std::vector<Tokens> sentences;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) sentences.push_back(rouge_tokenize(text.substr(start, end - start), use_stemmer));
    start = end + 1;
  }
  return sentences;
}

int ngram_order(const std::string& type) { return type[5] - '0'; }  // "rougeN", N in 1..9

// --- bootstrap (numpy's legacy RandomState and percentile) ---------------------------------------

// RandomState.randint(0, n) (the legacy masked rejection sampler, as np.random.choice uses it).
uint32_t numpy_randint(std::mt19937& mt, uint32_t n) {
  const uint32_t range = n - 1;
  if (range == 0) return 0;
  uint32_t mask = range;
  for (int shift = 1; shift < 32; shift <<= 1) mask |= mask >> shift;
  uint32_t value;
  do value = static_cast<uint32_t>(mt()) & mask;
  while (value > range);
  return value;
}

// numpy.percentile(values, q) with the default "linear" method, q in [0, 1] (already divided by 100).
double numpy_percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  const double virtual_index = n * q + (1 + q * (1 - 1 - 1)) - 1;  // alpha = beta = 1, numpy's operation order
  const double previous = std::floor(virtual_index);
  const size_t lo = static_cast<size_t>(std::clamp(previous, 0.0, n - 1));
  const size_t hi = static_cast<size_t>(std::clamp(previous + 1, 0.0, n - 1));
  const double gamma = virtual_index - previous;
  const double a = values[lo], b = values[hi], diff = b - a;
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;  // numpy's _lerp
}

RougeScore field_percentiles(const std::vector<std::array<double, 3>>& means, double q) {
  std::array<double, 3> out{};
  for (int f = 0; f < 3; ++f) {
    std::vector<double> column;
    column.reserve(means.size());
    for (const auto& m : means) column.push_back(m[f]);
    out[f] = numpy_percentile(std::move(column), q);
  }
  return {out[0], out[1], out[2]};
}

}  // namespace

std::vector<std::string> rouge_tokenize(const std::string& text, bool use_stemmer) {
  // After str.lower() only [a-z0-9] survive; everything else separates tokens.
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (current.empty()) return;
    tokens.push_back(use_stemmer && current.size() > 3 ? porter_stem(current) : current);
    current.clear();
  };
  for (char32_t c : python_lower(to_code_points(text))) {
    if ((c >= U'a' && c <= U'z') || (c >= U'0' && c <= U'9'))
      current.push_back(static_cast<char>(c));
    else
      flush();
  }
  flush();
  return tokens;
}

bool is_rouge_type(const std::string& type) {
  if (type == "rougeL" || type == "rougeLsum") return true;
  return type.size() == 6 && type.starts_with("rouge") && type[5] >= '1' && type[5] <= '9';
}

std::vector<RougeScore> rouge_score(const std::string& reference, const std::string& prediction,
                                    const std::vector<std::string>& types, bool use_stemmer) {
  for (const std::string& t : types)
    if (!is_rouge_type(t)) throw Error("unknown ROUGE type \"" + t + "\" (expected rouge1..rouge9, rougeL or rougeLsum)");
  const Tokens ref = rouge_tokenize(reference, use_stemmer), pred = rouge_tokenize(prediction, use_stemmer);
  std::vector<RougeScore> scores;
  for (const std::string& t : types) {
    if (t == "rougeL")
      scores.push_back(score_lcs(ref, pred));
    else if (t == "rougeLsum")
      scores.push_back(score_summary_lcs(tokenized_sentences(reference, use_stemmer), tokenized_sentences(prediction, use_stemmer)));
    else
      scores.push_back(score_ngrams(ref, pred, ngram_order(t)));
  }
  return scores;
}

RougeCorpus rouge_corpus(const std::vector<std::string>& predictions, const std::vector<std::string>& references,
                         const std::vector<std::string>& types, bool use_stemmer) {
  if (predictions.size() != references.size())
    throw Error("ROUGE: " + std::to_string(predictions.size()) + " predictions but " + std::to_string(references.size()) +
                " references");
  if (predictions.empty()) throw Error("ROUGE: no prediction/reference pairs");
  RougeCorpus c;
  c.types = types;
  c.mean.assign(types.size(), RougeScore{});
  for (size_t i = 0; i < predictions.size(); ++i) {
    c.per_pair.push_back(rouge_score(references[i], predictions[i], types, use_stemmer));
    for (size_t t = 0; t < types.size(); ++t) {
      c.mean[t].precision += c.per_pair.back()[t].precision;
      c.mean[t].recall += c.per_pair.back()[t].recall;
      c.mean[t].fmeasure += c.per_pair.back()[t].fmeasure;
    }
  }
  const double n = static_cast<double>(predictions.size());
  for (RougeScore& m : c.mean) m = {m.precision / n, m.recall / n, m.fmeasure / n};
  return c;
}

std::vector<RougeBootstrap> rouge_bootstrap(const RougeCorpus& corpus, uint32_t seed, int n_samples,
                                            double confidence_interval) {
  // numpy.random.seed(s) initialises MT19937 exactly as std::mt19937(s) does.
  std::mt19937 mt(seed);
  const size_t pairs = corpus.per_pair.size();
  const double delta = (1 - confidence_interval) / 2;
  const std::array<double, 3> q = {100 * delta / 100, 100 * 0.5 / 100, 100 * (1 - delta) / 100};
  std::vector<RougeBootstrap> out;
  for (size_t t = 0; t < corpus.types.size(); ++t) {
    std::vector<std::array<double, 3>> means(n_samples);
    for (auto& mean : means) {
      std::array<double, 3> sum{};
      for (size_t k = 0; k < pairs; ++k) {
        const RougeScore& s = corpus.per_pair[numpy_randint(mt, static_cast<uint32_t>(pairs))][t];
        sum[0] += s.precision;
        sum[1] += s.recall;
        sum[2] += s.fmeasure;
      }
      for (int f = 0; f < 3; ++f) mean[f] = sum[f] / static_cast<double>(pairs);
    }
    out.push_back({field_percentiles(means, q[0]), field_percentiles(means, q[1]), field_percentiles(means, q[2])});
  }
  return out;
}

}  // namespace lmforge::eval
