// Reading finetune's training record (lmforge_output.json "training") for the commands that
// default to it, and the line that announces what was taken.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "lmforge/error.h"
#include "lmforge/eval/training_record.h"
#include "lmforge/io/output_dir.h"

namespace lmforge::eval {
namespace {

namespace fs = std::filesystem;

class TrainingRecordTest : public ::testing::Test {
 protected:
  fs::path dir_ = fs::temp_directory_path() / ("lmforge_training_record_" + std::to_string(::getpid()));
  void SetUp() override { fs::create_directories(dir_); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string error_of(const nlohmann::json& training) {
    write_output_record(dir_, "finetune", {{"training", training}});
    try {
      load_training_record(dir_);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(TrainingRecordTest, NoRecordOrNoTrainingBlockIsNone) {
  EXPECT_FALSE(load_training_record(dir_).has_value());
  write_output_record(dir_, "init");
  EXPECT_FALSE(load_training_record(dir_).has_value());
  EXPECT_FALSE(load_training_record(dir_ / "missing").has_value());
}

TEST_F(TrainingRecordTest, ReadsEveryValue) {
  const nlohmann::json training = {{"prefix", "|HEADLINE| "}, {"suffix", "."}, {"text_column", "t"},
                                   {"data_path", "d.csv"}, {"max_rows", 10}, {"sample", "random"},
                                   {"validation_fraction", 0.25}, {"seed", 7}, {"packing", true}};
  write_output_record(dir_, "finetune", {{"training", training}});
  const auto r = load_training_record(dir_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->file, dir_ / "lmforge_output.json");
  EXPECT_EQ(r->block, training);
  EXPECT_EQ(*r->prefix, "|HEADLINE| ");
  EXPECT_EQ(*r->suffix, ".");
  EXPECT_EQ(*r->text_column, "t");
  EXPECT_EQ(*r->data_path, "d.csv");
  EXPECT_EQ(*r->max_rows, 10);
  EXPECT_EQ(*r->sample, "random");
  EXPECT_DOUBLE_EQ(*r->validation_fraction, 0.25);
  EXPECT_EQ(*r->seed, 7u);
}

TEST_F(TrainingRecordTest, MissingValuesStayUnset) {
  write_output_record(dir_, "finetune", {{"training", {{"prefix", ""}, {"suffix", nullptr}}}});
  const auto r = load_training_record(dir_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r->prefix, "");  // an empty prefix is a value (trained without one)
  EXPECT_FALSE(r->suffix.has_value());
  EXPECT_FALSE(r->seed.has_value());
}

TEST_F(TrainingRecordTest, WrongTypesNameTheFileAndKey) {
  EXPECT_NE(error_of({{"prefix", 3}}).find("lmforge_output.json: training.prefix must be a string"), std::string::npos);
  EXPECT_NE(error_of({{"seed", -1}}).find("training.seed must be a non-negative integer"), std::string::npos);
  EXPECT_NE(error_of({{"seed", 1.5}}).find("training.seed must be an integer"), std::string::npos);
  EXPECT_NE(error_of({{"max_rows", "all"}}).find("training.max_rows must be an integer"), std::string::npos);
  EXPECT_NE(error_of({{"sample", "shuffle"}}).find("training.sample must be \"first\" or \"random\""), std::string::npos);
  EXPECT_NE(error_of({{"validation_fraction", 1.0}}).find("training.validation_fraction must be in [0, 1)"),
            std::string::npos);
  write_output_record(dir_, "finetune", {{"training", "headline"}});
  EXPECT_THROW(load_training_record(dir_), Error);
}

TEST(TrainingRecordText, QuoteShowsEmptyAndControlCharacters) {
  EXPECT_EQ(quote_text(""), "''");
  EXPECT_EQ(quote_text("|HEADLINE| "), "'|HEADLINE| '");
  EXPECT_EQ(quote_text("a\nb\t'c'\\"), "'a\\nb\\t\\'c\\'\\\\'");
  EXPECT_EQ(quote_text(std::string("\x01", 1)), "'\\x01'");
  EXPECT_EQ(quote_text("café"), "'café'");
}

TEST(TrainingRecordText, UsedLineListsWhatWasTaken) {
  TrainingRecord r;
  r.file = "out/lmforge_output.json";
  EXPECT_EQ(record_used_line(r, {}), "");
  EXPECT_EQ(record_used_line(r, {{"prefix", "'|HEADLINE| '"}}), "lmforge: using finetune's prefix '|HEADLINE| ' from out/lmforge_output.json");
  EXPECT_EQ(record_used_line(r, {{"prefix", "'|HEADLINE| '"}, {"suffix", "'.'"}}),
            "lmforge: using finetune's prefix '|HEADLINE| ' and suffix '.' from out/lmforge_output.json");
  EXPECT_EQ(record_used_line(r, {{"prefix", "'a'"}, {"suffix", "'.'"}, {"seed", "7"}}),
            "lmforge: using finetune's prefix 'a', suffix '.' and seed 7 from out/lmforge_output.json");
}

}  // namespace
}  // namespace lmforge::eval
