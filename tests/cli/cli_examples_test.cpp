// The YAML files in examples/ that the README and docs refer to work as written: finetune's config,
// synth's config (with its prompt file), and the form of tune's output used as a synth config.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::model_dir;
using test::run_cli;

const fs::path kExamples = fs::path(LMFORGE_SOURCE_DIR) / "examples";

class CliExamples : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("lmforge-examples-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream csv(dir_ / "news.csv");
    csv << "publish_date,headline_text\n";
    const char* words[] = {"council", "farmers", "police", "community", "school", "rain", "budget", "court"};
    for (int i = 0; i < 48; ++i)
      csv << 20030219 + i << "," << words[i % 8] << " " << words[(i * 3 + 1) % 8] << " plan " << i << "\n";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  // Fine-tunes the tiny test model with examples/finetune_headlines.yml (data, model and length
  // overridden by flags) once for all tests.
  static fs::path trained_model() {
    const fs::path out = dir_ / "model";
    if (!fs::exists(out / "config.json")) {
      const auto r = run_cli("finetune --model_config " + (kExamples / "finetune_headlines.yml").string() +
                             " --model " + model_dir("gpt2-tiny").string() + " --data_path " +
                             (dir_ / "news.csv").string() + " --save_path " + out.string() +
                             " --max_steps 2 --save_steps 0 --per_device_train_batch_size 4");
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    return out;
  }
  static fs::path dir_;
};
fs::path CliExamples::dir_;

TEST_F(CliExamples, FinetuneConfigTrainsAndRecordsItsTextFormat) {
  const fs::path model = trained_model();
  std::ifstream in(model / "lmforge_output.json");
  ASSERT_TRUE(in) << "finetune wrote no lmforge_output.json";
  const auto rec = nlohmann::json::parse(in);
  EXPECT_EQ(rec.at("command"), "finetune");
  EXPECT_EQ(rec.at("training").at("prefix"), "|HEADLINE| ");
  EXPECT_EQ(rec.at("training").at("suffix"), ".");
  EXPECT_EQ(rec.at("training").at("text_column"), "headline_text");
  EXPECT_DOUBLE_EQ(rec.at("training").at("validation_fraction").get<double>(), 0.2);
}

TEST_F(CliExamples, SynthConfigWithItsPromptFile) {
  const fs::path model = trained_model();
  const fs::path out = dir_ / "synthetic.json";
  const auto r = run_cli("synth --model_config " + (kExamples / "synth_headlines.yml").string() + " --model " +
                         model.string() + " --num_samples 2 --max_length_buffer 4 --output " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(out);
  const auto j = nlohmann::json::parse(in);
  ASSERT_EQ(j.size(), 2u) << "one entry per prompt of examples/prompts.csv (its header is not a prompt)";
  for (const auto& entry : j) EXPECT_EQ(entry.at("sentences").size(), 2u);
}

TEST_F(CliExamples, TuneOutputIsASynthConfig) {
  const fs::path model = trained_model();
  const fs::path out = dir_ / "tuned.json";
  const auto r = run_cli("synth --model_config " + (kExamples / "tune_best.yml").string() + " --model " +
                         model.string() + " --prompt_file " + (kExamples / "prompts.csv").string() +
                         " --num_samples 1 --max_length_buffer 4 --output " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(out);
  EXPECT_EQ(nlohmann::json::parse(in).size(), 2u);
}

}  // namespace
}  // namespace lmforge
