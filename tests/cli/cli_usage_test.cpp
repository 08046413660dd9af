// Usage errors through the real binary: one line "error: ..." naming the subcommand, flag or value,
// a "did you mean" for typos, and the exit-code rule (usage errors 2, everything else 1).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

using test::count_lines;
using test::model_dir;
using test::run_cli;

// Exactly `line` (plus its newline) on stderr, nothing on stdout, exit code `code`.
void expect_error(const std::string& args, int code, const std::string& line) {
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, code) << args << "\n" << r.err;
  EXPECT_EQ(r.err, "error: " + line + "\n") << args;
  EXPECT_EQ(r.out, "") << args;
}

// Exit code `code` and one stderr line that contains every one of `parts`.
void expect_error_mentions(const std::string& args, int code, const std::vector<std::string>& parts) {
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, code) << args << "\n" << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << args << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  for (const auto& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << args << ": no '" << p << "' in " << r.err;
}

TEST(CliUsage, UnknownSubcommandSuggestsTheClosest) {
  expect_error("generat --model x", 2, "unknown subcommand 'generat' (did you mean 'generate'?)");
  expect_error("finetun", 2, "unknown subcommand 'finetun' (did you mean 'finetune'?)");
  expect_error_mentions("frobnicate", 2, {"unknown subcommand 'frobnicate'", "generate", "finetune"});
  expect_error_mentions("eval perplexty --model x", 2, {"eval: unknown subcommand 'perplexty'", "'perplexity'"});
}

TEST(CliUsage, MistypedFlagNamesItAndTheClosest) {
  const std::string m = model_dir("gpt2-tiny").string();
  expect_error("generate --model " + m + " --max_new_token 3", 2,
               "generate: unknown flag '--max_new_token' (did you mean '--max_new_tokens'?); see lmforge generate --help");
  expect_error_mentions("finetune --data_path x.csv --save_path y --learning_rat 1e-4", 2,
                        {"finetune: unknown flag '--learning_rat'"});
  expect_error_mentions("eval perplexity --model " + m + " --txt hello", 2,
                        {"eval perplexity: unknown flag '--txt'", "did you mean '--text'"});
  expect_error_mentions("tokenize --model " + m + " --text hi stray", 2, {"tokenize: unexpected argument 'stray'"});
}

TEST(CliUsage, MissingValueAndMissingFlag) {
  expect_error("generate --model", 2, "generate: --model needs a value (TEXT)");
  expect_error("generate --prompt hi", 2, "generate: --model is required");
  expect_error_mentions("", 2, {"no subcommand given", "generate"});
  expect_error_mentions("eval", 2, {"eval: no subcommand given", "perplexity"});
}

TEST(CliUsage, MalformedValuesNameTheFlag) {
  const std::string m = model_dir("gpt2-tiny").string();
  expect_error_mentions("generate --model " + m + " --max_new_tokens many", 2, {"--max_new_tokens", "'many'"});
  expect_error_mentions("generate --model " + m + " --do_sample maybe", 2, {"--do_sample", "'maybe'"});
}

TEST(CliUsage, ThreadsBelowOneAndNegativeSeedsAreRefused) {
  const std::string m = model_dir("gpt2-tiny").string();
  const std::vector<std::string> with_threads = {"generate --model " + m, "logits --model " + m + " --prompt_ids 1",
                                                 "finetune --data_path x.csv --save_path y", "tune --model " + m,
                                                 "eval perplexity --model " + m + " --text hi", "quantize --model " + m};
  for (const std::string& cmd : with_threads)
    for (const std::string bad : {"0", "-2"})
      expect_error_mentions(cmd + " --threads " + bad, 2, {"--threads", "must be an integer >= 1"});
  const std::vector<std::string> with_seed = {"generate --model " + m, "finetune --data_path x.csv --save_path y",
                                              "init --save_path y", "tune --model " + m, "synth --model " + m};
  for (const std::string& cmd : with_seed)
    expect_error_mentions(cmd + " --seed -1", 2, {"--seed", "must be a non-negative integer"});
}

TEST(CliUsage, RuntimeErrorsExitWithOne) {
  const auto r = run_cli("generate --model /nonexistent/lmforge-model --prompt_ids 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
}

// A mistyped CSV path is the only line printed: no model is loaded and no save folder made first.
TEST(CliUsage, FinetuneWithAMissingCsvFailsFirstAndLeavesNoFolder) {
  const std::string save = "/tmp/lmforge-usage-" + std::to_string(::getpid()) + "/new";
  expect_error("finetune --model " + model_dir("gpt2-tiny").string() + " --data_path /nonexistent/news.csv --save_path " +
                   save,
               1, "/nonexistent/news.csv: no such file");
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(save).parent_path()));
}

TEST(CliUsage, HelpStatesTheExitCodeRule) {
  const auto r = run_cli("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Usage: lmforge"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 for a usage error"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace lmforge
