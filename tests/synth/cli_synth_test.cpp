// `lmforge synth` end to end through the binary, with the tiny GPT-2 (its text is random; these
// tests check the mechanics: layout, counts, the privacy guard, the report and every bad input).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

using test::run_cli;

class CliSynth : public ::testing::Test {
 protected:
  std::filesystem::path dir_ = std::filesystem::temp_directory_path() / ("lmforge_cli_synth_" + std::to_string(::getpid()));
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return path(name);
  }
  static std::string read(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Seed 000's config_finetuned.yml pointing at the tiny model, plus `extra` YAML lines.
  std::string config(const std::string& extra = "") const {
    write("prompt.csv", "Community\nFarmers\n");
    return write("config.yml", "version: 1.0\nmodel:\n  format: default\n  pretrained_model: gpt2\n  path: " +
                                   test::model_dir("gpt2-tiny").string() +
                                   "\ngeneration:\n  prompt_file: " + path("prompt.csv") +
                                   "\n  min_length: 2\n  max_length_buffer: 6\n" + extra);
  }
  test::RunResult synth(const std::string& flags) const { return run_cli("synth " + flags); }
};

// One "error: ..." line on stderr, a failing exit code, no crash.
void expect_one_error(const test::RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST_F(CliSynth, SeedConfigWritesTheSeedJsonLayout) {
  const auto r = synth("--model_config " + config() + " --num_samples 3 --batch_size 4 --output " + path("out.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read(path("out.json")));
  ASSERT_EQ(j.size(), 2u);
  for (size_t p = 0; p < 2; ++p) {
    ASSERT_EQ(j[p].size(), 1u) << "only \"sentences\", as the seed";
    ASSERT_EQ(j[p]["sentences"].size(), 3u);
    for (const auto& s : j[p]["sentences"])
      EXPECT_EQ(s.get<std::string>().rfind(p == 0 ? "Community" : "Farmers", 0), 0u) << s;
  }
  EXPECT_NE(r.err.find("6 rows (2 prompts x 3 samples)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rows/s"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 3) << "no temp file left next to the output";
}

TEST_F(CliSynth, FlagsWinAndNoPromptFileGeneratesFromThePrefix) {
  const auto r = synth("--model " + test::model_dir("gpt2-tiny").string() +
                       " --num_samples 4 --max_length_buffer 5 --format jsonl --top_k 20 --temperature 0.8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto row = nlohmann::json::parse(line);
    EXPECT_EQ(row["prompt"], "");
    EXPECT_LE(row["tokens"].get<int>(), 5);
    EXPECT_TRUE(row.contains("text") && row.contains("stop"));
    ++n;
  }
  EXPECT_EQ(n, 4);
}

TEST_F(CliSynth, PrivacyGuardDropsOrFlagsCopiesAndReports) {
  // Generate once, then use those very rows as the "training data": the same seed regenerates
  // them, so every row is an exact copy.
  const std::string cfg = config();
  auto first = synth("--model_config " + cfg + " --num_samples 2 --format csv --output " + path("first.csv"));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::string csv = read(path("first.csv"));
  csv.replace(0, csv.find(','), "publish_date");  // header: publish_date,text,... -> column 'text'
  write("train.csv", csv);

  const auto dropped = synth("--model_config " + cfg + " --num_samples 2 --format csv --reference_data " +
                             path("train.csv") + " --column text --output " + path("kept.csv") + " --report " + path("report.json"));
  ASSERT_EQ(dropped.exit_code, 0) << dropped.err;
  EXPECT_EQ(read(path("kept.csv")), "prompt,text,tokens,stop\n");
  EXPECT_NE(dropped.err.find("privacy guard dropped 4 of 4 rows (4 exact copies"), std::string::npos) << dropped.err;
  const auto report = nlohmann::json::parse(read(path("report.json")));
  EXPECT_EQ(report["rows"]["generated"], 4);
  EXPECT_EQ(report["rows"]["dropped"], 4);
  EXPECT_EQ(report["privacy"]["exact_copy"], 4);
  EXPECT_DOUBLE_EQ(report["novel_percent"].get<double>(), 0.0);
  EXPECT_NE(dropped.out.find("synthetic set report"), std::string::npos) << "the table on stdout";

  const auto flagged = synth("--model_config " + cfg + " --num_samples 2 --privacy flag --reference_data " +
                             path("train.csv") + " --column text --report " + path("report2.json"));
  ASSERT_EQ(flagged.exit_code, 0) << flagged.err;
  const auto j = nlohmann::json::parse(flagged.out);  // rows on stdout, so the table went to stderr
  EXPECT_EQ(j[0]["sentences"].size(), 2u);
  EXPECT_EQ(j[0]["privacy"], (nlohmann::json{"exact_copy", "exact_copy"}));
  EXPECT_NE(flagged.err.find("synthetic set report"), std::string::npos);
  const auto report2 = nlohmann::json::parse(read(path("report2.json")));
  EXPECT_EQ(report2["rows"]["flagged"], 4);
  int64_t rows = 0;
  for (const auto& [len, count] : report2["overlap_histogram"].items()) {
    EXPECT_GT(std::stoi(len), 0) << "a copied row shares all its words";
    rows += count.get<int64_t>();
  }
  EXPECT_EQ(rows, 4);
}

// ---- bad input ----------------------------------------------------------------------------------

TEST_F(CliSynth, UnknownYamlKeyNamesTheClosestValidOne) {
  expect_one_error(synth("--model_config " + config("  max_lenght_buffer: 3\n")),
                   "unknown key 'max_lenght_buffer' (did you mean 'max_length_buffer'?)");
  expect_one_error(synth("--model_config " + config("tempreature: 0.7\n")), "(did you mean 'temperature'?)");
}

TEST_F(CliSynth, MissingOrEmptyPromptFile) {
  expect_one_error(synth("--model_config " + config() + " --prompt_file " + path("nope.csv")), "prompt_file: cannot read");
  write("empty.csv", "\n\n");
  expect_one_error(synth("--model_config " + config() + " --prompt_file " + path("empty.csv")), "holds no prompt");
}

TEST_F(CliSynth, MinLengthAboveTheMaxLength) {
  expect_one_error(synth("--model_config " + config() + " --min_length 10 --max_length_buffer=-4"),
                   "min_length (10) is greater than the max length");
}

TEST_F(CliSynth, UnwritableOutputLeavesNothingBehind) {
  expect_one_error(synth("--model_config " + config() + " --output " + path("missing/out.json")), "does not exist");
  expect_one_error(synth("--model_config " + config() + " --output " + dir_.string()), "is a folder");
  expect_one_error(synth("--model_config " + config() + " --report " + path("missing/r.json")), "report: cannot write");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 2) << "only config.yml and prompt.csv";
}

TEST_F(CliSynth, NonPositiveNumSamples) {
  expect_one_error(synth("--model_config " + config() + " --num_samples 0"), "num_samples must be >= 1");
  expect_one_error(synth("--model_config " + config() + " --num_samples=-2"), "num_samples must be >= 1");
}

TEST_F(CliSynth, UnknownFormat) {
  expect_one_error(synth("--model_config " + config() + " --format xml"), "key 'format' must be json | jsonl | csv, got 'xml'");
}

TEST_F(CliSynth, ReferenceCsvWithoutTheColumn) {
  write("train.csv", "publish_date,title\n20200101,council meets\n");
  expect_one_error(synth("--model_config " + config() + " --reference_data " + path("train.csv")),
                   "no column 'headline_text'");
}

// The shared prompt-file reader: a CSV from standard input, its prompt column chosen by key.
TEST_F(CliSynth, PromptColumnOfACsvFromStandardInput) {
  write("prompts.csv", "id,start\n1,\"Community, farmers\"\n2,Police\n");
  const auto r = run_cli("synth --model_config " + config() + " --prompt_file - --prompt_column start --output " +
                         path("out.json") + " < " + path("prompts.csv"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read(path("out.json")));
  ASSERT_EQ(j.size(), 2u) << "two prompts: the header and the id column are not prompts";
  for (const auto& entry : j) ASSERT_EQ(entry.at("sentences").size(), 1u);
  EXPECT_EQ(j[0]["sentences"][0].get<std::string>().rfind("Community, farmers", 0), 0u) << j.dump();
  EXPECT_EQ(j[1]["sentences"][0].get<std::string>().rfind("Police", 0), 0u) << j.dump();
  expect_one_error(run_cli("synth --model_config " + config() + " --prompt_file " + path("prompts.csv") +
                           " --prompt_column title"),
                   "title");
}

}  // namespace
}  // namespace lmforge
