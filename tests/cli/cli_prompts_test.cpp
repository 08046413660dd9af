// Where `generate` takes its prompts from (prompt files with the shared reader's rules, standard
// input through a real pipe) and the per-token log-probabilities of --json, through the binary.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::count_lines;
using test::ids_arg;
using test::model_cases;
using test::model_dir;
using test::run_cli;
using test::RunResult;

fs::path write_temp(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("lmforge-prompts-" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

// `cat input | lmforge <args>`: the binary reads a pipe on standard input.
RunResult run_piped(const fs::path& input, const std::string& args) {
  const fs::path err = fs::temp_directory_path() / "lmforge-prompts-stderr";
  const std::string cmd = "cat '" + input.string() + "' | " + LMFORGE_CLI + " " + args + " 2>'" + err.string() + "'";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  fs::remove(err);
  return r;
}

std::vector<std::string> prompts_of(const std::string& json_out) {
  std::vector<std::string> p;
  for (const auto& e : nlohmann::json::parse(json_out)) p.push_back(e.at("prompt"));
  return p;
}

const std::string kGpt2 = " --model " + model_dir("gpt2-tiny").string() + " --max_new_tokens 2";

// ---- prompt files -----------------------------------------------------------------------------------

TEST(CliPrompts, PromptHeaderIsNotAPrompt) {
  // The bug of issue 11: a `prompt` header line became a prompt of its own.
  const auto f = write_temp("header.csv", "prompt\nthe city\n\"Hello, world\"\n");
  const auto r = run_cli("generate --json" + kGpt2 + " --prompt_file " + f.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(prompts_of(r.out), (std::vector<std::string>{"the city", "Hello, world"}));
  fs::remove(f);
}

TEST(CliPrompts, PlainLinesAndColumns) {
  const auto plain = write_temp("plain.txt", "the city, at night\r\n\r\npresident\r\n");
  auto r = run_cli("generate --json" + kGpt2 + " --prompt_file " + plain.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(prompts_of(r.out), (std::vector<std::string>{"the city, at night", "president"}));

  const auto csv = write_temp("cols.csv", "id,headline,prompt\n1,a headline,the city\n");
  r = run_cli("generate --json" + kGpt2 + " --prompt_file " + csv.string() + " --prompt_column headline");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(prompts_of(r.out), (std::vector<std::string>{"a headline"}));
  fs::remove(plain);
  fs::remove(csv);
}

// ---- standard input ---------------------------------------------------------------------------------

TEST(CliPrompts, PipedPromptsWithoutAFlag) {
  const auto in = write_temp("piped.csv", "prompt\nthe city\npresident\n");
  const auto piped = run_piped(in, "generate --json" + kGpt2);
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(prompts_of(piped.out), (std::vector<std::string>{"the city", "president"}));
  // The same generations as the prompts given as flags.
  const auto flags = run_cli("generate --json" + kGpt2 + " -p 'the city' -p president");
  ASSERT_EQ(flags.exit_code, 0) << flags.err;
  EXPECT_EQ(nlohmann::json::parse(piped.out), nlohmann::json::parse(flags.out));
  fs::remove(in);
}

TEST(CliPrompts, PromptFileDashReadsTheSamePipe) {
  const auto in = write_temp("dash.txt", "the city\n");
  const auto r = run_piped(in, "generate --json" + kGpt2 + " --prompt_file -");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(prompts_of(r.out), (std::vector<std::string>{"the city"}));
  fs::remove(in);
}

TEST(CliPrompts, AFlagWinsOverThePipe) {
  const auto in = write_temp("ignored.txt", "not this\n");
  const auto r = run_piped(in, "generate --json" + kGpt2 + " -p president");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(prompts_of(r.out), (std::vector<std::string>{"president"}));
  fs::remove(in);
}

TEST(CliPrompts, NothingPipedStartsFromBosAsHf) {
  const auto r = run_cli("generate --json --model " + model_dir("gptj-tiny").string() + " --max_new_tokens 2 </dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)[0].at("ids")[0][0], 999) << "bos_token_id of gptj-tiny";
}

TEST(CliPrompts, PipedTextToAModelWithoutTokenizerIsAnError) {
  const auto in = write_temp("notok.txt", "hello\n");
  const auto r = run_piped(in, "generate --model " + model_dir("gptj-tiny").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("prompts on standard input"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--prompt_ids"), std::string::npos) << r.err;
  fs::remove(in);
}

// ---- bad prompt input: one line naming the flag and file -------------------------------------------

TEST(CliPrompts, BadPromptFilesAreOneLineErrors) {
  const auto nocol = write_temp("nocol.csv", "id,text\n1,a\n");
  const auto commas = write_temp("commas.csv", "prompt\nHello, world\n");
  const auto empty = write_temp("empty.csv", "prompt\n\n");
  const std::vector<std::pair<std::string, std::string>> cases{
      {"--prompt_file /nonexistent/p.csv", "--prompt_file: cannot read '/nonexistent/p.csv'"},
      {"--prompt_file " + nocol.string() + " --prompt_column prompt", "has no column 'prompt'"},
      {"--prompt_file " + commas.string(), "line 2: 2 fields, but the header has 1"},
      {"--prompt_file " + empty.string(), "holds no prompt"},
      {"-p hi --prompt_column prompt", "--prompt_column applies to --prompt_file"},
  };
  for (const auto& [args, needle] : cases) {
    const auto r = run_cli("generate" + kGpt2 + " " + args + " </dev/null");
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
  for (const auto& f : {nocol, commas, empty}) fs::remove(f);
}

// ---- token_logprobs ---------------------------------------------------------------------------------

// lm-eval's log-likelihoods of gptj-tiny's own greedy continuation (HF log_softmax of the logits)
// are the token_logprobs of greedy generation from the context.
TEST(CliTokenLogprobs, GreedyMatchesHfLogSoftmax) {
  nlohmann::json c;
  for (const auto& row : test::read_jsonl(test::data_dir() / "loglikelihood" / "cases.jsonl"))
    if (row.at("id") == "gptj-tiny/pair_greedy_continuation") c = row;
  ASSERT_FALSE(c.is_null());
  const auto context = c.at("inputs").at("context_ids").get<std::vector<int>>();
  const auto cont = c.at("inputs").at("continuation_ids").get<std::vector<int>>();
  const auto r = run_cli("generate --json --model " + model_dir("gptj-tiny").string() + " --prompt_ids " +
                         ids_arg(context) + " --max_new_tokens " + std::to_string(cont.size()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out)[0];
  std::vector<int> want_ids = context;
  want_ids.insert(want_ids.end(), cont.begin(), cont.end());
  EXPECT_EQ(j.at("ids")[0].get<std::vector<int>>(), want_ids);
  const auto got = j.at("token_logprobs")[0].get<std::vector<double>>();
  const auto want = c.at("expected").at("token_logprobs").get<std::vector<double>>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  EXPECT_FALSE(j.contains("sequences_scores"));
}

// Sampling: the log of HF's sampling distribution (after temperature and top-k) at the drawn token.
TEST(CliTokenLogprobs, SamplingMatchesHfDistribution) {
  for (const auto& c : model_cases("gptj-tiny", "dist")) {
    if (c.at("id") != "gptj-tiny/dist/82") continue;  // top_k 50, top_p 0.95, temperature 0.7
    const auto want = test::read_npy(c.at("output").at("npy").get<std::string>());
    for (int seed : {1, 2, 3, 4}) {
      const auto r = run_cli("generate --json --model " + model_dir("gptj-tiny").string() + " --prompt_ids " +
                             ids_arg(c.at("input_ids").get<std::vector<int>>()) +
                             " --do_sample --top_k 50 --top_p 0.95 --temperature 0.7 --max_new_tokens 1 --seed " +
                             std::to_string(seed));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const auto j = nlohmann::json::parse(r.out)[0];
      const int t = j.at("ids")[0].back().get<int>();
      const double p = want.data.at(static_cast<size_t>(t));
      ASSERT_GT(p, 0.0);
      EXPECT_NEAR(j.at("token_logprobs")[0][0].get<double>(), std::log(p), std::max(1e-5, 2e-6 / p)) << seed;
    }
    return;
  }
  FAIL() << "no gptj-tiny/dist/82";
}

TEST(CliTokenLogprobs, BeamSearchHasSequencesScoresInstead) {
  const auto r = run_cli("generate --json --model " + model_dir("gptj-tiny").string() +
                         " --prompt_ids '1 2 3' --num_beams 2 --num_return_sequences 2 --max_new_tokens 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out)[0];
  EXPECT_TRUE(j.contains("sequences_scores"));
  EXPECT_FALSE(j.contains("token_logprobs"));
}

TEST(CliTokenLogprobs, OnePerGeneratedTokenPerSequence) {
  // A left-padded batch of two prompts, two samples each: one value per new token up to the eos 999.
  const auto r = run_cli("generate --json --model " + model_dir("gptj-tiny").string() +
                         " --prompt_ids '1 2 3' --prompt_ids '4 5' --do_sample --num_return_sequences 2"
                         " --max_new_tokens 6 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& entry : nlohmann::json::parse(r.out)) {
    ASSERT_EQ(entry.at("token_logprobs").size(), 2u);
    for (size_t k = 0; k < 2; ++k) {
      const auto ids = entry.at("ids")[k].get<std::vector<int>>();
      size_t generated = 0;
      for (size_t i = 3; i < ids.size(); ++i) {  // 3 = the padded prompt length
        ++generated;
        if (ids[i] == 999) break;
      }
      const auto& seq = entry.at("token_logprobs")[k];
      EXPECT_EQ(seq.size(), generated);
      for (const auto& v : seq) EXPECT_LE(v.get<double>(), 0.0);
    }
  }
}

}  // namespace
}  // namespace lmforge
