// ROUGE against rouge-score's own outputs (tests/data/metrics/rouge.jsonl, rouge_corpus.jsonl).
#include <gtest/gtest.h>

#include <cmath>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/eval/rouge.h"

namespace lmforge::eval {
namespace {

constexpr double kTol = 1e-12;

void expect_score(const RougeScore& s, const nlohmann::json& want, const std::string& what) {
  EXPECT_NEAR(s.precision, want.at("precision").get<double>(), kTol) << what;
  EXPECT_NEAR(s.recall, want.at("recall").get<double>(), kTol) << what;
  EXPECT_NEAR(s.fmeasure, want.at("fmeasure").get<double>(), kTol) << what;
}

TEST(Rouge, PairsMatchRougeScore) {
  const auto cases = test::read_jsonl(test::data_dir() / "metrics/rouge.jsonl");
  ASSERT_EQ(cases.size(), 90u);
  for (const auto& c : cases) {
    const std::string id = c.at("id");
    const bool stem = c.at("use_stemmer");
    const auto scores = rouge_score(c.at("reference"), c.at("prediction"), kDefaultRougeTypes, stem);
    for (size_t t = 0; t < kDefaultRougeTypes.size(); ++t)
      expect_score(scores[t], c.at("scores").at(kDefaultRougeTypes[t]), id + " " + kDefaultRougeTypes[t]);
  }
}

TEST(Rouge, TokensMatchRougeScore) {
  for (const auto& c : test::read_jsonl(test::data_dir() / "metrics/rouge.jsonl")) {
    const bool stem = c.at("use_stemmer");
    EXPECT_EQ(rouge_tokenize(c.at("prediction"), stem), c.at("debug").at("prediction_tokens").get<std::vector<std::string>>())
        << c.at("id");
    EXPECT_EQ(rouge_tokenize(c.at("reference"), stem), c.at("debug").at("reference_tokens").get<std::vector<std::string>>())
        << c.at("id");
  }
}

TEST(Rouge, CorpusMeanAndBootstrapMatch) {
  const auto cases = test::read_jsonl(test::data_dir() / "metrics/rouge_corpus.jsonl");
  ASSERT_EQ(cases.size(), 5u);
  for (const auto& c : cases) {
    const std::string id = c.at("id");
    const auto types = c.at("rouge_types").get<std::vector<std::string>>();
    const RougeCorpus corpus = rouge_corpus(c.at("predictions"), c.at("references"), types, c.at("use_stemmer"));
    const auto boot = rouge_bootstrap(corpus, 0);
    for (size_t t = 0; t < types.size(); ++t) {
      expect_score(corpus.mean[t], c.at("mean").at(types[t]), id + " mean " + types[t]);
      EXPECT_NEAR(corpus.mean[t].fmeasure, c.at("mean_fmeasure").at(types[t]).get<double>(), kTol) << id;
      for (size_t i = 0; i < corpus.per_pair.size(); ++i)
        EXPECT_NEAR(corpus.per_pair[i][t].fmeasure, c.at("per_pair_fmeasure")[i].at(types[t]).get<double>(), kTol) << id;
      const auto& b = c.at("bootstrap_seed0").at(types[t]);
      expect_score(boot[t].mid, b.at("mid"), id + " bootstrap mid " + types[t]);
      EXPECT_NEAR(boot[t].low.fmeasure, b.at("low_fmeasure").get<double>(), kTol) << id << " low " << types[t];
      EXPECT_NEAR(boot[t].high.fmeasure, b.at("high_fmeasure").get<double>(), kTol) << id << " high " << types[t];
    }
  }
}

// NLTK PorterStemmer (NLTK_EXTENSIONS) outputs, incl. its irregular forms and departures.
TEST(Rouge, PorterStemmerNltkExtensions) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"caresses", "caress"}, {"ponies", "poni"},     {"ties", "tie"},        {"dies", "die"},
      {"cats", "cat"},        {"feed", "feed"},       {"agreed", "agre"},     {"plastered", "plaster"},
      {"motoring", "motor"},  {"sing", "sing"},       {"conflated", "conflat"}, {"troubled", "troubl"},
      {"sized", "size"},      {"hopping", "hop"},     {"falling", "fall"},    {"filing", "file"},
      {"happy", "happi"},     {"enjoy", "enjoy"},     {"sky", "sky"},         {"skies", "sky"},
      {"dying", "die"},       {"lying", "lie"},       {"news", "news"},       {"innings", "inning"},
      {"proceed", "proceed"}, {"relational", "relat"}, {"conditional", "condit"}, {"generously", "gener"},
      {"radically", "radic"}, {"hopefulness", "hope"}, {"electrical", "electr"}, {"adjustment", "adjust"},
      {"adoption", "adopt"},  {"controlling", "control"}, {"rolling", "roll"}, {"geology", "geolog"},
      {"spied", "spi"},       {"died", "die"},        {"1990s", "1990"},      {"this", "thi"},
      {"does", "doe"},        {"figures", "figur"},   {"pleased", "pleas"},   {"farmers", "farmer"}};
  for (const auto& [word, stem] : cases) EXPECT_EQ(porter_stem(word), stem) << word;
}

TEST(Rouge, EmptySidesScoreZero) {
  const auto s = rouge_score("", "some words", kDefaultRougeTypes, false);
  for (const auto& x : s) EXPECT_EQ(x.fmeasure, 0.0);
  EXPECT_THROW(rouge_score("a", "b", {"rougeX"}, false), Error);
  EXPECT_THROW(rouge_corpus({"a"}, {"a", "b"}, kDefaultRougeTypes, false), Error);
}

}  // namespace
}  // namespace lmforge::eval
