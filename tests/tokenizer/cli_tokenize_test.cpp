// `lmforge tokenize`, run as a real process on tests/data/models/gpt2-tiny. Expected ids, token
// strings and texts come from the HF fixtures in tests/data/tokenizer.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include <gtest/gtest.h>

#include "tokenizer/tokenizer_test_util.h"

namespace lmforge::test {
namespace {

struct RunResult {
  int exit_code;
  std::string out;  // stdout, or stdout + stderr when asked
};

// Single-quotes an argument for /bin/sh.
std::string quote(const std::string& arg) {
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `lmforge tokenize --model MODEL ARGS...`.
RunResult run_cli(const std::string& model, const std::vector<std::string>& args, bool merge_stderr) {
  std::string cmd = quote(LMFORGE_CLI) + " tokenize --model " + quote(model);
  for (const auto& a : args) cmd.append(" ").append(quote(a));
  cmd += merge_stderr ? " 2>&1" : " 2>/dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

RunResult run_tokenize(const std::vector<std::string>& args, bool merge_stderr = false) {
  return run_cli(model_dir("gpt2-tiny").string(), args, merge_stderr);
}

nlohmann::json fixture_case(const std::string& text) {
  for (auto& c : read_jsonl(tokenizer_data() / "cases.jsonl"))
    if (c.at("text") == text) return c;
  ADD_FAILURE() << "no fixture case for " << text;
  return {};
}

TEST(CliTokenize, BinaryExists) { ASSERT_TRUE(std::filesystem::exists(LMFORGE_CLI)) << LMFORGE_CLI; }

TEST(CliTokenize, EncodePrintsIdTabTokenLines) {
  const auto c = fixture_case("Hello world");
  const auto r = run_tokenize({"--text", "Hello world"});
  EXPECT_EQ(r.exit_code, 0);
  std::string expected;
  for (std::size_t i = 0; i < c.at("ids").size(); ++i)
    expected += std::to_string(c["ids"][i].get<int>()) + "\t" + c["tokens"][i].get<std::string>() + "\n";
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(r.out, "15496\tHello\n995\t\xC4\xA0world\n");
}

TEST(CliTokenize, EncodeJsonWithSpecialToken) {
  for (const std::string text : {"a <|endoftext|> b", "café naïve résumé façade Ångström"}) {
    const auto c = fixture_case(text);
    const auto r = run_tokenize({"--text", text, "--json"});
    ASSERT_EQ(r.exit_code, 0) << text;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("ids"), c.at("ids"));
    EXPECT_EQ(j.at("tokens"), c.at("tokens"));
  }
}

TEST(CliTokenize, DecodeIdsPrintsText) {
  auto r = run_tokenize({"--ids", "15496 995"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "Hello world\n");
  r = run_tokenize({"--ids", "[15496, 995]"});  // a pasted JSON list
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "Hello world\n");
}

// decode_cases.jsonl: [15496, 837, 995, 764] decodes to "Hello , world ." without clean-up and
// "Hello, world." with it; the model folder has no tokenizer_config.json, so the default is off.
TEST(CliTokenize, DecodeCleanUpFlag) {
  auto r = run_tokenize({"--ids", "15496,837,995,764", "--json"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out).at("text"), "Hello , world .");
  r = run_tokenize({"--ids", "15496 837 995 764", "--json", "--clean_up_tokenization_spaces", "true"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out).at("text"), "Hello, world.");
  r = run_tokenize({"--ids", "15496 837 995 764", "--json", "--clean_up_tokenization_spaces", "false"});
  EXPECT_EQ(nlohmann::json::parse(r.out).at("text"), "Hello , world .");
}

// decode_cases.jsonl: [50256, 220, 50256] -> "<|endoftext|> <|endoftext|>" / " " when skipped.
TEST(CliTokenize, DecodeSkipSpecialTokens) {
  auto r = run_tokenize({"--ids", "50256 220 50256", "--json"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out).at("text"), "<|endoftext|> <|endoftext|>");
  r = run_tokenize({"--ids", "50256 220 50256", "--json", "--skip_special_tokens"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out).at("text"), " ");
}

// decode_cases.jsonl: [64, 162, 65] -> "a\uFFFDb" (a lone lead byte).
TEST(CliTokenize, DecodeInvalidUtf8GivesReplacementCharacter) {
  const auto r = run_tokenize({"--ids", "64 162 65"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "a\xEF\xBF\xBD" "b\n");
}

void expect_error(const std::vector<std::string>& args, int code, const std::string& needle) {
  const auto r = run_tokenize(args, true);
  EXPECT_EQ(r.exit_code, code) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
}

TEST(CliTokenize, NonNumericIdIsAnErrorNamingIds) { expect_error({"--ids", "15496 hello"}, 1, "error: --ids"); }

TEST(CliTokenize, OutOfRangeIdIsAnErrorNamingIds) {
  expect_error({"--ids", "15496 50257"}, 1, "error: --ids");
  expect_error({"--ids", "-1"}, 1, "error: --ids");
}

TEST(CliTokenize, InvalidUtf8TextIsAnErrorNamingText) { expect_error({"--text", "caf\xC3"}, 1, "error: --text"); }

TEST(CliTokenize, NeitherTextNorIdsIsAnError) { expect_error({}, 1, "error: "); }

TEST(CliTokenize, TextAndIdsTogetherIsAUsageError) { expect_error({"--text", "a", "--ids", "1"}, 2, "error: "); }

TEST(CliTokenize, BadCleanUpValueIsAUsageError) {
  expect_error({"--ids", "1", "--clean_up_tokenization_spaces", "maybe"}, 2, "error: ");
}

TEST(CliTokenize, MissingModelFolderIsAnError) {
  const auto r = run_cli("/nonexistent/lmforge-model", {"--text", "hi"}, true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("error: model '/nonexistent/lmforge-model': no such folder"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace lmforge::test
