// `lmforge score`: the fixtures of tests/data/loglikelihood/cases.jsonl (HF, computed the lm-eval
// way) through the binary, as text requests, id requests and multiple-choice text requests; rolling
// requests against the pair they equal; bad input as one `error: FILE:LINE: ...` line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CliScore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_cli_score_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::vector<json>& lines) {
    std::string text;
    for (const auto& l : lines) text += l.dump() + "\n";
    return write_text(name, text);
  }
  std::string write_text(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  // Runs score and returns its JSONL output lines.
  std::vector<json> score(const std::string& model, const std::string& requests, const std::string& extra = "") {
    const auto r = run_cli("score --model " + model_dir(model).string() + " --requests " + requests + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
  void expect_error(const std::string& model, const std::string& requests, const std::string& needle) {
    const auto r = run_cli("score --model " + model_dir(model).string() + " --requests " + requests);
    EXPECT_EQ(r.exit_code, 1) << needle;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  fs::path dir_;
};

// (request line, expected logprob, expected is_greedy) for every case of `model` the CLI can express.
struct Expect {
  json request;
  double logprob;
  bool is_greedy;
  std::string id;
};

std::vector<Expect> fixture_requests(const std::string& model) {
  std::vector<Expect> out;
  for (const auto& c : read_jsonl(data_dir() / "loglikelihood" / "cases.jsonl")) {
    if (c.at("model") != "models/" + model) continue;
    const json& in = c.at("inputs");
    const json& e = c.at("expected");
    const std::string id = c.at("id");
    if (c.at("kind") == "pair")
      out.push_back({{{"context_ids", in.at("context_ids")}, {"continuation_ids", in.at("continuation_ids")}},
                     e.at("logprob"), e.at("is_greedy"), id});
    if (c.at("kind") == "text_pair")
      out.push_back({{{"context", in.at("context")}, {"continuation", in.at("continuation")}}, e.at("logprob"), e.at("is_greedy"), id});
    if (c.at("kind") == "multiple_choice")
      for (const auto& pc : e.at("per_choice"))
        out.push_back({{{"context", in.at("context")}, {"continuation", pc.at("continuation")}}, pc.at("ll"), pc.at("is_greedy"), id});
  }
  return out;
}

void expect_matches(const std::vector<Expect>& want, const std::vector<json>& got) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i].at("logprob").get<double>(), want[i].logprob, 1e-4 * std::max(1.0, std::abs(want[i].logprob))) << want[i].id;
    EXPECT_EQ(got[i].at("is_greedy").get<bool>(), want[i].is_greedy) << want[i].id;
  }
}

TEST_F(CliScore, EveryFixtureOfBothModelsInRequestOrder) {
  for (const std::string model : {"gpt2-tiny", "gptj-tiny"}) {
    const auto want = fixture_requests(model);
    ASSERT_GE(want.size(), 24u) << model;
    std::vector<json> lines;
    for (const auto& w : want) lines.push_back(w.request);
    const std::string req = write(model + ".jsonl", lines);
    expect_matches(want, score(model, req));
    expect_matches(want, score(model, req, "--batch_size 1 --share_prefix false"));
  }
}

TEST_F(CliScore, OutputFileJsonSummaryAndKeyOrder) {
  const std::string req = write("r.jsonl", {{{"context", "The capital of France is"}, {"continuation", " Paris"}}});
  const std::string out = (dir_ / "out.jsonl").string();
  const auto r = run_cli("score --model " + model_dir("gpt2-tiny").string() + " --requests " + req + " --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  std::ifstream f(out);
  std::string line;
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line.rfind("{\"logprob\":", 0), 0u) << line;
  EXPECT_NEAR(json::parse(line).at("logprob").get<double>(), -10.255176544189453, 1e-4);  // fixture cap_space_in_cont
  const auto s = run_cli("score --json --model " + model_dir("gpt2-tiny").string() + " --requests " + req);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const json summary = json::parse(s.out);
  EXPECT_EQ(summary.at("requests"), 1);
  EXPECT_EQ(summary.at("results").size(), 1u);
}

TEST_F(CliScore, RollingTextEqualsTheEmptyContextPairAndBlankLinesAreSkipped) {
  const std::string text = "Hello world, this is a test of the rolling log-likelihood.";
  const std::string req = write_text("r.jsonl", json{{"text", text}}.dump() + "\n\n" +
                                                    json{{"context", ""}, {"continuation", text}}.dump() + "\n" +
                                                    json{{"text", ""}}.dump() + "\n");
  const auto got = score("gpt2-tiny", req);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_FALSE(got[0].contains("is_greedy"));
  // Same tokens, but two rows of one batch: a row's place in the batch may change float rounding.
  EXPECT_NEAR(got[0].at("logprob").get<double>(), got[1].at("logprob").get<double>(), 1e-4);
  EXPECT_EQ(got[2].at("logprob").get<double>(), 0.0);  // nothing to predict: lm-eval's sum([])
}

TEST_F(CliScore, BadInputIsOneErrorLineNamingTheLineAndKey) {
  const json ok{{"context", "a"}, {"continuation", " b"}};
  expect_error("gpt2-tiny", write_text("m.jsonl", ok.dump() + "\n{\"context\": \"a\"\n"), "m.jsonl:2: malformed JSON");
  expect_error("gpt2-tiny", write("both.jsonl", {ok, {{"text", "x"}, {"context_ids", json::array({1})}, {"continuation_ids", json::array({2})}}}),
               "both.jsonl:2: give exactly one of");
  expect_error("gpt2-tiny", write("empty.jsonl", {{{"context", "abc"}, {"continuation", ""}}}),
               "empty.jsonl:1: \"continuation\": the continuation is empty");
  expect_error("gpt2-tiny", write("long.jsonl", {{{"context_ids", json::array({1})}, {"continuation_ids", std::vector<int>(129, 5)}}}),
               "long.jsonl:1: \"continuation_ids\": the continuation has 129 tokens, more than the model's max_length 128");
  expect_error("gpt2-tiny", write("key.jsonl", {{{"context", "a"}, {"continuaton", " b"}}}), "key.jsonl:1: unknown key \"continuaton\"");
  expect_error("gpt2-tiny", write("miss.jsonl", {{{"context", "a"}}}), "miss.jsonl:1: missing \"continuation\"");
  expect_error("gpt2-tiny", write("type.jsonl", {{{"context_ids", "1 2"}, {"continuation_ids", json::array({3})}}}),
               "type.jsonl:1: \"context_ids\" must be an array");
  expect_error("gpt2-tiny", write("vocab.jsonl", {{{"context_ids", json::array({1})}, {"continuation_ids", json::array({50257})}}}),
               "vocab.jsonl:1: \"continuation_ids\": token id 50257 is outside the vocabulary");
  expect_error("gptj-tiny", write("tok.jsonl", {ok}), "tok.jsonl:1: \"context\": the model folder has no tokenizer");
  expect_error("gpt2-tiny", write_text("none.jsonl", "\n"), "has no requests");
  // An error leaves no output file behind.
  const std::string out = (dir_ / "never.jsonl").string();
  const auto r = run_cli("score --model " + model_dir("gpt2-tiny").string() + " --requests " + (dir_ / "m.jsonl").string() + " --output " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace lmforge::test
