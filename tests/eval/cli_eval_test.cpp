// `lmforge eval rouge|bleu|perplexity` end to end through the binary, incl. every bad input the
// issue lists: one "error: ..." line on stderr, a non-zero exit code, no crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

using test::run_cli;
namespace fs = std::filesystem;

class CliEval : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_cli_eval_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  static std::string lines(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& l : v) s += l + "\n";
    return s;
  }
  // Exactly one line "error: ..." on stderr and a failing exit code.
  static void expect_one_error(const test::RunResult& r, const std::string& must_contain) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_LT(r.exit_code, 128) << "crashed (signal)";
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(must_contain), std::string::npos) << r.err;
  }

  fs::path dir_;
};

TEST_F(CliEval, BleuPrintsSacrebleuLines) {
  for (const auto& c : test::read_jsonl(test::data_dir() / "metrics/bleu.jsonl")) {
    if (c.at("id") != "bleu-002" && c.at("id") != "bleu-013") continue;
    const std::string hyp = write("hyp.txt", lines(c.at("hypotheses")));
    std::string refs;
    for (size_t r = 0; r < c.at("references").size(); ++r)
      refs.append(" ").append(write("ref" + std::to_string(r) + ".txt", lines(c.at("references")[r])));
    auto r = run_cli("eval bleu --predictions " + hyp + " --references" + refs);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, c.at("formatted").get<std::string>() + "\n" + c.at("signature").get<std::string>() + "\n");
    r = run_cli("eval bleu --json --predictions " + hyp + " --references" + refs);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_NEAR(j.at("score").get<double>(), c.at("score").get<double>(), 1e-9);
  }
}

TEST_F(CliEval, RougeMatchesHfEvaluateMeanAndBootstrap) {
  for (const auto& c : test::read_jsonl(test::data_dir() / "metrics/rouge_corpus.jsonl")) {
    const std::string pred = write("pred.txt", lines(c.at("predictions")));
    const std::string ref = write("ref.txt", lines(c.at("references")));
    std::string types;
    for (const auto& t : c.at("rouge_types")) types.append(types.empty() ? "" : ",").append(t.get<std::string>());
    const auto r = run_cli("eval rouge --json --bootstrap_seed 0 --predictions " + pred + " --references " + ref +
                           " --use_stemmer " + (c.at("use_stemmer").get<bool>() ? "true" : "false") + " --rouge_types " + types);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    for (const auto& t : c.at("rouge_types")) {
      const std::string type = t;
      EXPECT_NEAR(j.at(type).at("fmeasure").get<double>(), c.at("mean_fmeasure").at(type).get<double>(), 1e-12) << c.at("id");
      EXPECT_NEAR(j.at("bootstrap").at(type).at("mid").at("fmeasure").get<double>(),
                  c.at("bootstrap_seed0").at(type).at("mid").at("fmeasure").get<double>(), 1e-12)
          << c.at("id");
    }
  }
}

TEST_F(CliEval, RougePlainOutput) {
  const std::string p = write("p.txt", "farmers are pleased with the figures\n");
  const std::string r = write("r.txt", "farmers pleased with figures\n");
  const auto out = run_cli("eval rouge --predictions " + p + " --references " + r);
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_NE(out.out.find("rouge1: F1 0.800000"), std::string::npos) << out.out;
  EXPECT_NE(out.out.find("rougeL: F1 0.800000"), std::string::npos) << out.out;
}

TEST_F(CliEval, MissingFiles) {
  const std::string ok = write("ok.txt", "a b c\n");
  expect_one_error(run_cli("eval rouge --predictions " + (dir_ / "nope.txt").string() + " --references " + ok), "nope.txt");
  expect_one_error(run_cli("eval bleu --predictions " + ok + " --references " + (dir_ / "nope.txt").string()), "nope.txt");
}

TEST_F(CliEval, MismatchedLineCountsNameBothFiles) {
  const std::string p = write("pred3.txt", "a\nb\nc\n");
  const std::string r = write("ref2.txt", "a\nb\n");
  for (const std::string metric : {"rouge", "bleu"}) {
    const auto out = run_cli("eval " + metric + " --predictions " + p + " --references " + r);
    expect_one_error(out, "pred3.txt");
    EXPECT_NE(out.err.find("ref2.txt"), std::string::npos) << out.err;
    EXPECT_NE(out.err.find(" 3 "), std::string::npos) << out.err;
    EXPECT_NE(out.err.find(" 2"), std::string::npos) << out.err;
  }
}

TEST_F(CliEval, EmptyFiles) {
  const std::string empty = write("empty.txt", "");
  const std::string ok = write("ok.txt", "a b c\n");
  expect_one_error(run_cli("eval rouge --predictions " + empty + " --references " + ok), "empty");
  expect_one_error(run_cli("eval bleu --predictions " + ok + " --references " + empty), "empty");
}

TEST_F(CliEval, PerplexityTextMatchesHf) {
  for (const auto& c : test::model_cases("gpt2-tiny", "ppl")) {
    if (!c.at("args").contains("text")) continue;
    const std::string text = c.at("args").at("text");
    const std::string f = write("text.txt", text + "\n");
    const auto r = run_cli("eval perplexity --json --model " + test::model_dir("gpt2-tiny").string() + " --file " + f);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const double want = std::exp(c.at("output").at("loss").get<double>());
    EXPECT_NEAR(nlohmann::json::parse(r.out).at("perplexity").get<double>(), want, 1e-5 * want) << c.at("id");
  }
}

TEST_F(CliEval, PerplexityCsvColumn) {
  const std::string csv = write("d.csv", "publish_date,headline_text\n20200101,farmers pleased with figures\n20200102,council approves budget\n");
  const std::string model = test::model_dir("gpt2-tiny").string();
  auto r = run_cli("eval perplexity --json --model " + model + " --data_path " + csv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("per_row").size(), 2u);
  EXPECT_GT(j.at("perplexity").get<double>(), 1.0);
  expect_one_error(run_cli("eval perplexity --model " + model + " --data_path " + csv + " --column nope"), "nope");
}

TEST_F(CliEval, PerplexityBadInput) {
  const std::string model = test::model_dir("gpt2-tiny").string();
  expect_one_error(run_cli("eval perplexity --model " + model + " --text 'a b c d' --stride 0"), "--stride");
  expect_one_error(run_cli("eval perplexity --model " + model + " --text 'a b c d' --stride -3"), "--stride");
  expect_one_error(run_cli("eval perplexity --model " + model + " --text 'a b c d' --max_length 16 --stride 17"), "--stride");
  expect_one_error(run_cli("eval perplexity --model " + (dir_ / "no_model").string() + " --text 'a b'"), "no_model");
  expect_one_error(run_cli("eval perplexity --model " + model + " --file " + (dir_ / "none.txt").string()), "none.txt");
}

}  // namespace
}  // namespace lmforge
