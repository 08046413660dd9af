// BLEU against sacrebleu 2.6.0's own outputs (tests/data/metrics/bleu.jsonl, sentence_bleu.jsonl).
#include <gtest/gtest.h>

#include <cmath>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/eval/bleu.h"

namespace lmforge::eval {
namespace {

constexpr double kTol = 1e-9;  // relative; the fixtures hold Python's doubles

void expect_close(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, kTol * std::max(1.0, std::fabs(want))) << what;
}

BleuOptions options_from(const nlohmann::json& kwargs, bool sentence) {
  BleuOptions o;
  o.effective_order = sentence;  // sentence_bleu's default is use_effective_order=True
  if (kwargs.contains("tokenize")) o.tokenizer = parse_bleu_tokenizer(kwargs["tokenize"]);
  if (kwargs.contains("smooth_method")) o.smooth = parse_bleu_smooth(kwargs["smooth_method"]);
  if (kwargs.contains("smooth_value")) o.smooth_value = kwargs["smooth_value"];
  if (kwargs.contains("lowercase")) o.lowercase = kwargs["lowercase"];
  if (kwargs.contains("effective_order")) o.effective_order = kwargs["effective_order"];
  if (kwargs.contains("use_effective_order")) o.effective_order = kwargs["use_effective_order"];
  for (const auto& [k, v] : kwargs.items())
    EXPECT_TRUE(k == "tokenize" || k == "smooth_method" || k == "smooth_value" || k == "lowercase" ||
                k == "effective_order" || k == "use_effective_order")
        << "kwarg not handled by the test: " << k;
  return o;
}

void expect_matches(const BleuScore& s, const nlohmann::json& c) {
  const std::string id = c.at("id");
  expect_close(s.score, c.at("score"), id + " score");
  expect_close(s.bp, c.at("bp"), id + " bp");
  EXPECT_EQ(s.sys_len, c.at("sys_len").get<int64_t>()) << id;
  EXPECT_EQ(s.ref_len, c.at("ref_len").get<int64_t>()) << id;
  for (int n = 0; n < 4; ++n) {
    expect_close(s.precisions[n], c.at("precisions")[n], id + " precision " + std::to_string(n + 1));
    EXPECT_EQ(s.counts[n], c.at("counts")[n].get<int64_t>()) << id << " count " << n + 1;
    EXPECT_EQ(s.totals[n], c.at("totals")[n].get<int64_t>()) << id << " total " << n + 1;
  }
  EXPECT_EQ(s.signature, c.at("signature").get<std::string>()) << id;
  EXPECT_EQ(format_bleu(s), c.at("formatted").get<std::string>()) << id;
}

TEST(Bleu, CorpusMatchesSacrebleu) {
  const auto cases = test::read_jsonl(test::data_dir() / "metrics/bleu.jsonl");
  ASSERT_EQ(cases.size(), 26u);
  for (const auto& c : cases) {
    const BleuOptions opt = options_from(c.at("kwargs"), false);
    const auto hyps = c.at("hypotheses").get<std::vector<std::string>>();
    const auto refs = c.at("references").get<std::vector<std::vector<std::string>>>();
    expect_matches(corpus_bleu(hyps, refs, opt), c);
    if (c.at("kwargs").empty()) expect_matches(corpus_bleu(hyps, refs), c);
  }
}

TEST(Bleu, TokenizerMatchesSacrebleu) {
  for (const auto& c : test::read_jsonl(test::data_dir() / "metrics/bleu.jsonl")) {
    const BleuOptions opt = options_from(c.at("kwargs"), false);
    const auto hyps = c.at("hypotheses").get<std::vector<std::string>>();
    const auto want = c.at("debug").at("hyp_tokenized");
    ASSERT_EQ(hyps.size(), want.size());
    for (size_t i = 0; i < hyps.size(); ++i) {
      std::string joined;
      for (const auto& t : tokenize_bleu(hyps[i], opt.tokenizer, opt.lowercase)) joined += (joined.empty() ? "" : " ") + t;
      EXPECT_EQ(joined, want[i].get<std::string>()) << c.at("id") << " line " << i;
    }
  }
}

TEST(Bleu, SentenceMatchesSacrebleu) {
  const auto cases = test::read_jsonl(test::data_dir() / "metrics/sentence_bleu.jsonl");
  ASSERT_EQ(cases.size(), 24u);
  for (const auto& c : cases) {
    const auto hyp = c.at("hypothesis").get<std::string>();
    const auto refs = c.at("references").get<std::vector<std::string>>();
    expect_matches(sentence_bleu(hyp, refs, options_from(c.at("kwargs"), true)), c);
    if (c.at("kwargs").empty()) expect_matches(sentence_bleu(hyp, refs), c);
  }
}

TEST(Bleu, Tokenize13aRules) {
  using V = std::vector<std::string>;
  EXPECT_EQ(tokenize_13a("Hello, world."), (V{"Hello", ",", "world", "."}));
  EXPECT_EQ(tokenize_13a("3.5 1,000 2023-24 pre-trained don't"), (V{"3.5", "1,000", "2023", "-", "24", "pre-trained", "don't"}));
  EXPECT_EQ(tokenize_13a("a &amp; b &quot;c&quot; &apos;"), (V{"a", "&", "b", "\"", "c", "\"", "&", "apos", ";"}));
  EXPECT_EQ(tokenize_13a("x<skipped>y"), (V{"xy"}));
  EXPECT_EQ(tokenize_13a("a\xc2\xa0" "b\xe2\x80\x8b" "c"), (V{"a", "b\xe2\x80\x8b" "c"}));  // NBSP splits, ZWSP does not
  EXPECT_TRUE(tokenize_13a("").empty());
}

TEST(Bleu, MismatchedStreamThrows) {
  EXPECT_THROW(corpus_bleu({"a", "b"}, {{"a"}}), Error);
  EXPECT_THROW(corpus_bleu({"a"}, {}), Error);
}

}  // namespace
}  // namespace lmforge::eval
