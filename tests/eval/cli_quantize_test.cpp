// `lmforge quantize` end to end through the binary: the tuning table and history, the folder that
// `lmforge generate` then loads directly, and every bad input: one "error: ..." line, exit != 0,
// nothing written.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

using test::run_cli;
namespace fs = std::filesystem;

class CliQuantize : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_cli_quantize_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream csv(dir_ / "news.csv");
    csv << "publish_date,headline_text\n";
    const char* rows[] = {"the jury said friday an investigation", "of atlanta's recent primary election",
                          "produced no evidence that any irregularities", "took place in the city",
                          "the grand jury commented on a number", "of other topics among them the atlanta",
                          "and fulton county purchasing departments", "which it said are well operated"};
    int day = 1;
    for (const char* r : rows) csv << "2003020" << day++ << ",\"" << r << "\"\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string model() { return test::model_dir("gpt2-tiny").string(); }
  std::string base(const std::string& save = "") const {
    return "quantize --model " + model() + " --data_path " + (dir_ / "news.csv").string() + " --save_path " +
           (save.empty() ? (dir_ / "int8").string() : save) + " --validation_fraction 0.5";
  }
  void expect_one_error(const std::string& args, const std::string& needle) const {
    const auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "int8" / "model.safetensors")) << args;
  }
  fs::path dir_;
};

TEST_F(CliQuantize, WritesAFolderGenerateLoads) {
  const auto r = run_cli(base());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("baseline: perplexity"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| Duration (seconds) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Best tune result"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("meets the accuracy requirements"), std::string::npos) << r.out;
  for (const char* f : {"config.json", "model.safetensors", "vocab.json", "merges.txt", "generation_config.json",
                        "tuning_history.json"})
    EXPECT_TRUE(fs::exists(dir_ / "int8" / f)) << f;
  const auto cfg = nlohmann::json::parse(std::ifstream(dir_ / "int8" / "config.json"));
  EXPECT_EQ(cfg["quantization_config"]["scheme"], "dynamic");
  EXPECT_EQ(cfg["quantization_config"]["weights"]["granularity"], "per_output_channel");
  const auto hist = nlohmann::json::parse(std::ifstream(dir_ / "int8" / "tuning_history.json"));
  EXPECT_TRUE(hist["met"].get<bool>());
  EXPECT_LE(hist["trials"][hist["best"].get<int>()]["relative_loss"].get<double>(), 0.01);

  const auto g = run_cli("generate --model " + (dir_ / "int8").string() + " -p 'the jury' --max_new_tokens 4");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(g.out.rfind("the jury", 0), 0u) << g.out;
  const auto b = run_cli("generate --model " + (dir_ / "int8").string() + " --benchmark_mode --benchmark_seq_length 6");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(b.out.find("int8_dynamic"), std::string::npos) << b.out;

  // A second run replaces the folder whole; an already quantized model is refused.
  ASSERT_EQ(run_cli(base() + " --scheme weight_only").exit_code, 0);
  const auto cfg2 = nlohmann::json::parse(std::ifstream(dir_ / "int8" / "config.json"));
  EXPECT_EQ(cfg2["quantization_config"]["scheme"], "weight_only");
  const auto again = run_cli("quantize --model " + (dir_ / "int8").string() + " --data_path " +
                             (dir_ / "news.csv").string() + " --save_path " + (dir_ / "twice").string());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already quantized"), std::string::npos) << again.err;
}

TEST_F(CliQuantize, AccuracyMetricFromALabelledFile) {
  std::ofstream(dir_ / "labels.csv") << "prompt,label\n\"is the sky blue? answer:\",yes\n\"is fire cold? answer:\",no\n";
  const auto r = run_cli(base() + " --metric accuracy --labels_path " + (dir_ / "labels.csv").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("multiple-choice accuracy of 2 rows"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| accuracy "), std::string::npos) << r.out;
}

TEST_F(CliQuantize, UnmetToleranceSavesNothing) {
  // A loss no int8 try can meet (1e-12 relative) within one trial: exit 1, no folder.
  expect_one_error(base() + " --tolerance 1e-12 --max_trials 1", "no quantized model within --tolerance");
}

TEST_F(CliQuantize, BadInputs) {
  expect_one_error(base() + " --tolerance 0", "--tolerance");
  expect_one_error(base() + " --tolerance -0.1", "--tolerance");
  expect_one_error(base() + " --scheme static", "--scheme");
  expect_one_error(base() + " --fallback_dtype int8", "--fallback_dtype");
  expect_one_error(base() + " --max_trials 0", "--max_trials");
  expect_one_error(base() + " --metric bleu", "--metric");
  expect_one_error(base() + " --metric accuracy", "--labels_path");
  expect_one_error(base() + " --column nope", "nope");
  expect_one_error(base((dir_ / "missing" / "out").string()), "does not exist");
  fs::create_directories(dir_ / "mine");
  std::ofstream(dir_ / "mine" / "notes.txt") << "keep me";
  expect_one_error(base((dir_ / "mine").string() + "/"), "is not an earlier `lmforge quantize` output");
  EXPECT_TRUE(fs::exists(dir_ / "mine" / "notes.txt"));
  std::ofstream(dir_ / "empty.csv") << "publish_date,headline_text\n20030201,\n";
  expect_one_error("quantize --model " + model() + " --data_path " + (dir_ / "empty.csv").string() + " --save_path " +
                       (dir_ / "int8").string(),
                   "no usable rows");
  expect_one_error("quantize --model " + (dir_ / "nomodel").string() + " --data_path " + (dir_ / "news.csv").string() +
                       " --save_path " + (dir_ / "int8").string(),
                   "nomodel");
}

}  // namespace
}  // namespace lmforge
