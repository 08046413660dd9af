// `lmforge synth` and finetune's training record (prefix/suffix by default, YAML and flags win),
// and the output-file rule (HF's --overwrite_output_dir in spirit): an existing --output or
// --report that is not synth's own earlier output is never replaced without the flag.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"
#include "lmforge/io/output_dir.h"

namespace lmforge {
namespace {

using test::run_cli;
namespace fs = std::filesystem;

class CliSynthRecord : public ::testing::Test {
 protected:
  fs::path dir_ = fs::temp_directory_path() / ("lmforge_cli_synth_record_" + std::to_string(::getpid()));
  void SetUp() override {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

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
  // The tiny model's files linked into DIR/trained next to a finetune record.
  std::string trained(const nlohmann::json& training) const {
    const fs::path m = dir_ / "trained";
    fs::create_directories(m);
    for (const auto& e : fs::directory_iterator(test::model_dir("gpt2-tiny")))
      if (e.is_regular_file()) fs::create_symlink(e.path(), m / e.path().filename());
    write_output_record(m, "finetune", {{"training", training}});
    return m.string();
  }
  static std::string small() { return " --num_samples 2 --max_length_buffer 3"; }
};

void expect_one_error(const test::RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

// ---- the training record --------------------------------------------------------------------------

TEST_F(CliSynthRecord, RecordGivesPrefixAndSuffix) {
  const std::string m = trained({{"prefix", "<<"}, {"suffix", "!"}});
  const auto r = run_cli("synth --model " + m + small());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("lmforge: using finetune's prefix '<<' and suffix '!' from " + m + "/lmforge_output.json"),
            std::string::npos)
      << r.err;
}

TEST_F(CliSynthRecord, FlagsAndYamlWinOverTheRecord) {
  const std::string m = trained({{"prefix", "<<"}, {"suffix", "!"}});
  const auto flag = run_cli("synth --model " + m + small() + " --prefix ''");
  ASSERT_EQ(flag.exit_code, 0) << flag.err;
  EXPECT_NE(flag.err.find("using finetune's suffix '!' from"), std::string::npos) << flag.err;
  EXPECT_EQ(flag.err.find("prefix '<<'"), std::string::npos) << flag.err;

  const std::string yml = write("cfg.yml", "model:\n  path: " + m + "\nprefix: '|HEADLINE| '\nsuffix: '.'\n");
  const auto yaml = run_cli("synth --model_config " + yml + small());
  ASSERT_EQ(yaml.exit_code, 0) << yaml.err;
  EXPECT_EQ(yaml.err.find("using finetune's"), std::string::npos) << yaml.err;
}

TEST_F(CliSynthRecord, NoRecordKeepsTheSeedDefaults) {
  const auto r = run_cli("synth --model " + test::model_dir("gpt2-tiny").string() + small());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("using finetune's"), std::string::npos) << r.err;
}

// ---- output files ---------------------------------------------------------------------------------

TEST_F(CliSynthRecord, ForeignOutputFileIsRefusedAndKept) {
  const std::string model = " --model " + test::model_dir("gpt2-tiny").string() + small();
  const std::string notes = write("notes.txt", "my notes\n");
  expect_one_error(run_cli("synth" + model + " --output " + notes),
                   "output: '" + notes + "' exists and is not an earlier `lmforge synth` output");
  EXPECT_EQ(read(notes), "my notes\n");
  const std::string data = write("train.csv", "publish_date,headline_text\n2020,a b\n");
  expect_one_error(run_cli("synth" + model + " --format csv --output " + data), "--overwrite_output_dir");
  EXPECT_EQ(read(data), "publish_date,headline_text\n2020,a b\n");
  expect_one_error(run_cli("synth" + model + " --report " + notes), "report: '" + notes + "' exists");
  EXPECT_EQ(read(notes), "my notes\n");

  const auto forced = run_cli("synth" + model + " --output " + notes + " --overwrite_output_dir");
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_TRUE(nlohmann::json::parse(read(notes)).is_array());
}

TEST_F(CliSynthRecord, OwnEarlierOutputIsReplaced) {
  const std::string model = " --model " + test::model_dir("gpt2-tiny").string() + small();
  for (const std::string format : {"json", "jsonl", "csv"}) {
    const std::string out = path("rows." + format);
    ASSERT_EQ(run_cli("synth" + model + " --format " + format + " --output " + out + " --report " + path("r.json")).exit_code, 0);
    // A rerun, in another format too, replaces synth's own rows and report without the flag.
    const auto again = run_cli("synth" + model + " --format json --seed 7 --output " + out + " --report " + path("r.json"));
    ASSERT_EQ(again.exit_code, 0) << format << ": " << again.err;
    EXPECT_TRUE(nlohmann::json::parse(read(out)).is_array()) << format;
  }
  write("empty.json", "");
  EXPECT_EQ(run_cli("synth" + model + " --output " + path("empty.json")).exit_code, 0) << "an empty file holds nothing to lose";
}

TEST_F(CliSynthRecord, OutputAndReportMustDiffer) {
  expect_one_error(run_cli("synth --model " + test::model_dir("gpt2-tiny").string() + small() + " --output " +
                           path("x.json") + " --report " + path("x.json")),
                   "is also the output file");
}

}  // namespace
}  // namespace lmforge
