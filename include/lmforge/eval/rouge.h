#pragma once
// ROUGE exactly as Google's rouge-score package (rouge_scorer.RougeScorer) computes it, and the
// corpus aggregates HF `evaluate`'s "rouge" metric reports. See docs/EVAL.md.
//
//   tokens   lowercase (Python str.lower()), every character outside [a-z0-9] becomes a space,
//            split; with use_stemmer, NLTK's PorterStemmer (NLTK_EXTENSIONS mode) on tokens longer
//            than 3 characters.
//   rougeN   clipped n-gram overlap: P = overlap / max(#prediction n-grams, 1), R likewise with the
//            reference, F = 2PR / (P + R) (0 when P + R == 0).
//   rougeL   longest common subsequence of the two token lists: P = LCS / #prediction tokens, ...
//   rougeLsum  summary-level union LCS over sentences split on "\n".
#include <cstdint>
#include <string>
#include <vector>

namespace lmforge::eval {

struct RougeScore {
  double precision = 0, recall = 0, fmeasure = 0;
};

// HF evaluate's default rouge_types; also the order in which the bootstrap consumes random numbers.
inline const std::vector<std::string> kDefaultRougeTypes = {"rouge1", "rouge2", "rougeL", "rougeLsum"};

// rouge-score's DefaultTokenizer(use_stemmer).tokenize(text).
std::vector<std::string> rouge_tokenize(const std::string& text, bool use_stemmer);

// nltk.stem.PorterStemmer() (mode NLTK_EXTENSIONS).stem(word) for a lowercase [a-z0-9] word.
std::string porter_stem(const std::string& word);

// True for "rouge1".."rouge9", "rougeL", "rougeLsum" (the types rouge-score accepts).
bool is_rouge_type(const std::string& type);

// RougeScorer(types, use_stemmer).score(target=reference, prediction=prediction), one score per type
// in `types` order. Throws lmforge::Error on an unknown type.
std::vector<RougeScore> rouge_score(const std::string& reference, const std::string& prediction,
                                    const std::vector<std::string>& types, bool use_stemmer);

// A corpus of (prediction, reference) pairs.
struct RougeCorpus {
  std::vector<std::string> types;
  std::vector<std::vector<RougeScore>> per_pair;  // [pair][type]
  std::vector<RougeScore> mean;                   // [type]: arithmetic mean of each field over pairs
};
// Throws lmforge::Error when the sizes differ or the corpus is empty.
RougeCorpus rouge_corpus(const std::vector<std::string>& predictions, const std::vector<std::string>& references,
                         const std::vector<std::string>& types, bool use_stemmer);

// rouge_score.scoring.BootstrapAggregator(confidence_interval, n_samples).aggregate() after
// numpy.random.seed(seed): per type (in corpus.types order, each consuming its own draws), the
// 2.5/50/97.5 percentiles of n_samples bootstrap-resampled means. `mid` is what HF evaluate's rouge
// returns by default (there with an unseeded generator, so it varies from run to run).
struct RougeBootstrap {
  RougeScore low, mid, high;
};
std::vector<RougeBootstrap> rouge_bootstrap(const RougeCorpus& corpus, uint32_t seed, int n_samples = 1000,
                                            double confidence_interval = 0.95);

}  // namespace lmforge::eval
