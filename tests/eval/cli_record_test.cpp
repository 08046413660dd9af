// finetune's training record (lmforge_output.json "training") as the default of `eval perplexity`,
// `quantize` and `tune`, through the binary. The model is the tiny GPT-2 fixture, linked file by
// file into a temporary folder next to a hand-written record (what finetune writes).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"
#include "lmforge/io/output_dir.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "lmforge/train/data.h"

namespace lmforge {
namespace {

using test::run_cli;
namespace fs = std::filesystem;

class CliRecord : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_cli_record_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream csv(dir_ / "news.csv");
    csv << "publish_date,headline_text\n";
    const char* rows[] = {"the jury said friday an investigation", "of atlanta's recent primary election",
                          "produced no evidence that any irregularities", "took place in the city",
                          "the grand jury commented on a number", "of other topics among them the atlanta",
                          "and fulton county purchasing departments", "which it said are well operated",
                          "the city executive committee which had", "over-all charge of the election",
                          "deserves the praise and thanks of the city", "for the manner in which the election was conducted"};
    int day = 10;
    for (const char* r : rows) csv << "200302" << day++ << ",\"" << r << "\"\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The tiny model's files linked into DIR/name, plus a finetune record with `training`.
  fs::path model_with_record(const std::string& name, const nlohmann::json& training) const {
    const fs::path m = dir_ / name;
    fs::create_directories(m);
    for (const auto& e : fs::directory_iterator(test::model_dir("gpt2-tiny")))
      if (e.is_regular_file()) fs::create_symlink(e.path(), m / e.path().filename());
    write_output_record(m, "finetune", {{"training", training}});
    return m;
  }
  static nlohmann::json headline_training(const std::string& data_path) {
    return {{"prefix", "|HEADLINE| "}, {"suffix", "."}, {"text_column", "headline_text"}, {"data_path", data_path},
            {"max_rows", 5000}, {"sample", "first"}, {"validation_fraction", 0.2}, {"seed", 42}, {"packing", false},
            {"block_size", 128}};
  }
  static double perplexity_of(const test::RunResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out).at("perplexity").get<double>();
  }
  std::string csv() const { return (dir_ / "news.csv").string(); }
  fs::path dir_;
};

// ---- eval perplexity ------------------------------------------------------------------------------

TEST_F(CliRecord, PerplexityRowsUseTheRecordAndFlagsOverrideIt) {
  const std::string plain = test::model_dir("gpt2-tiny").string();
  const std::string trained = model_with_record("trained", headline_training(csv())).string();
  const std::string data = " --json --data_path " + csv();

  const auto with_record = run_cli("eval perplexity --model " + trained + data);
  const double recorded = perplexity_of(with_record);
  EXPECT_NE(with_record.err.find("lmforge: using finetune's prefix '|HEADLINE| ', suffix '.' and text_column "
                                 "'headline_text' from " + trained + "/lmforge_output.json"),
            std::string::npos)
      << with_record.err;
  EXPECT_NE(with_record.err.find("each row is scored as '|HEADLINE| ' + row + '.' + <|endoftext|>"), std::string::npos)
      << with_record.err;
  const auto format = nlohmann::json::parse(with_record.out).at("format");
  EXPECT_EQ(format.at("prefix"), "|HEADLINE| ");
  EXPECT_TRUE(format.at("append_eos").get<bool>());

  // The same number as the plain folder given finetune's format by flags; a different one without it.
  const double explicit_format =
      perplexity_of(run_cli("eval perplexity --model " + plain + data + " --prefix '|HEADLINE| ' --suffix . --append_eos true"));
  EXPECT_NEAR(recorded, explicit_format, 1e-9 * explicit_format);
  const double bare = perplexity_of(run_cli("eval perplexity --model " + plain + data));
  EXPECT_GT(std::fabs(recorded - bare), 1e-3 * bare);

  // --prefix '' overrides the record (and only the prefix).
  const auto no_prefix = run_cli("eval perplexity --model " + trained + data + " --prefix ''");
  const double overridden = perplexity_of(no_prefix);
  EXPECT_NEAR(overridden, perplexity_of(run_cli("eval perplexity --model " + plain + data + " --suffix . --append_eos true")),
              1e-9 * overridden);
  EXPECT_GT(std::fabs(overridden - recorded), 1e-3 * recorded);
  EXPECT_NE(no_prefix.err.find("using finetune's suffix '.' and text_column"), std::string::npos) << no_prefix.err;
  EXPECT_NE(no_prefix.err.find("each row is scored as row + '.' + <|endoftext|>"), std::string::npos) << no_prefix.err;

  // Every part off: the plain text, as a folder without a record scores it.
  const double all_off =
      perplexity_of(run_cli("eval perplexity --model " + trained + data + " --prefix '' --suffix '' --append_eos false"));
  EXPECT_NEAR(all_off, bare, 1e-9 * bare);
}

TEST_F(CliRecord, PerplexityFreeTextTakesThePrefixAsContext) {
  const std::string plain = test::model_dir("gpt2-tiny").string();
  const std::string trained = model_with_record("trained", headline_training(csv())).string();
  const auto r = run_cli("eval perplexity --json --model " + trained + " --text 'the jury said friday'");
  const double got = perplexity_of(r);
  EXPECT_NE(r.err.find("using finetune's prefix '|HEADLINE| ' from"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the text is scored as context '|HEADLINE| ' (not scored) + text"), std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j.at("format").at("prefix_scored").get<bool>());
  EXPECT_EQ(j.at("format").at("suffix"), "");  // the record's suffix is not added to free text
  // The 4 tokens of "|HEADLINE|" are context; the words are scored, " the" carrying the prefix's
  // space as in training: as many tokens as " the jury said friday" has on its own.
  const auto words = run_cli("tokenize --json --model " + plain + " --text ' the jury said friday'");
  ASSERT_EQ(words.exit_code, 0) << words.err;
  EXPECT_EQ(j.at("tokens").get<size_t>(), nlohmann::json::parse(words.out).at("ids").size());
  const double bare = perplexity_of(run_cli("eval perplexity --json --model " + plain + " --text 'the jury said friday'"));
  EXPECT_GT(std::fabs(got - bare), 1e-3 * bare);
  // --prefix '' turns it off: the plain folder's value.
  EXPECT_NEAR(perplexity_of(run_cli("eval perplexity --json --model " + trained + " --prefix '' --text 'the jury said friday'")),
              bare, 1e-9 * bare);
}

TEST_F(CliRecord, DamagedRecordIsOneError) {
  const std::string m = model_with_record("bad", {{"prefix", 3}}).string();
  const auto r = run_cli("eval perplexity --model " + m + " --text 'a b c'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("training.prefix must be a string"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("lmforge_output.json"), std::string::npos) << r.err;
}

// ---- quantize -------------------------------------------------------------------------------------

// finetune's validation rows (their CSV lines), by finetune's own load_dataset.
std::vector<int64_t> finetune_validation_lines(const DataOptions& d, const fs::path& model) {
  const Tokenizer tok = Tokenizer::from_dir(model);
  std::vector<int64_t> lines;
  for (const Example& e : load_dataset(d, tok).validation) lines.push_back(e.line);
  return lines;
}

TEST_F(CliRecord, QuantizeHoldsOutFinetunesValidationRows) {
  nlohmann::json training = headline_training(csv());
  training["seed"] = 7;  // not quantize's old fixed 42
  training["validation_fraction"] = 0.4;
  training["max_rows"] = 10;
  training["sample"] = "random";
  const fs::path m = model_with_record("trained", training);
  const fs::path out = dir_ / "int8";
  const auto r = run_cli("quantize --model " + m.string() + " --save_path " + out.string() + " --max_trials 3 --tolerance 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("lmforge: using finetune's prefix '|HEADLINE| ', suffix '.', text_column 'headline_text', "
                       "data_path '" + csv() + "', max_rows 10, sample 'random', validation_fraction 0.4 and seed 7 from"),
            std::string::npos)
      << r.out;

  DataOptions d;
  d.data_path = csv();
  d.max_rows = 10;
  d.sample = SampleMode::Random;
  d.validation_fraction = 0.4;
  d.seed = 7;
  const std::vector<int64_t> want = finetune_validation_lines(d, m);
  ASSERT_EQ(want.size(), 4u);
  const auto history = nlohmann::json::parse(std::ifstream(out / "tuning_history.json"));
  EXPECT_EQ(history.at("held_out").at("lines").get<std::vector<int64_t>>(), want);
  EXPECT_EQ(history.at("held_out").at("seed"), 7);
  // The test can fail: seed 42 (quantize's old default) holds out other rows.
  d.seed = 42;
  EXPECT_NE(finetune_validation_lines(d, m), want);

  // The quantized folder keeps the training block, so synth and eval keep finetune's format.
  const auto record = read_output_record(out);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->at("command"), "quantize");
  EXPECT_EQ(record->at("training"), training);
  const auto e = run_cli("eval perplexity --model " + out.string() + " --text 'the jury'");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.err.find("using finetune's prefix '|HEADLINE| ' from " + out.string()), std::string::npos) << e.err;
}

TEST_F(CliRecord, QuantizeFlagsOverrideTheRecord) {
  nlohmann::json training = headline_training(csv());
  training["seed"] = 7;
  const fs::path m = model_with_record("trained", training);
  const fs::path out = dir_ / "int8";
  const auto r = run_cli("quantize --model " + m.string() + " --save_path " + out.string() +
                         " --seed 3 --validation_fraction 0.5 --max_trials 3 --tolerance 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto held_out = nlohmann::json::parse(std::ifstream(out / "tuning_history.json")).at("held_out");
  EXPECT_EQ(held_out.at("seed"), 3);
  EXPECT_EQ(held_out.at("validation_fraction"), 0.5);
  EXPECT_EQ(r.out.find("seed 7"), std::string::npos) << r.out;
  DataOptions d;
  d.data_path = csv();
  d.validation_fraction = 0.5;
  d.seed = 3;
  EXPECT_EQ(held_out.at("lines").get<std::vector<int64_t>>(), finetune_validation_lines(d, m));
}

TEST_F(CliRecord, QuantizeRecordedDataMissingIsOneError) {
  const fs::path m = model_with_record("trained", headline_training((dir_ / "gone.csv").string()));
  const auto r = run_cli("quantize --model " + m.string() + " --save_path " + (dir_ / "int8").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--data_path: not given, and the training data"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gone.csv"), std::string::npos) << r.err;
}

// HF's --overwrite_output_dir: a folder of someone else's files is refused, kept with the flag.
TEST_F(CliRecord, QuantizeOutputFolderRule) {
  const fs::path mine = dir_ / "mine";
  fs::create_directories(mine);
  std::ofstream(mine / "notes.txt") << "keep me";
  const std::string base = "quantize --model " + test::model_dir("gpt2-tiny").string() + " --data_path " + csv() +
                           " --save_path " + mine.string() + " --max_trials 3 --tolerance 0.5";
  const auto refused = run_cli(base);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  EXPECT_NE(refused.err.find("is not an earlier `lmforge quantize` output"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--overwrite_output_dir"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(mine / "model.safetensors"));

  const auto forced = run_cli(base + " --overwrite_output_dir");
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_TRUE(fs::exists(mine / "model.safetensors"));
  EXPECT_EQ(read_output_record(mine)->at("command"), "quantize");
  std::string kept;
  std::getline(std::ifstream(mine / "notes.txt"), kept);
  EXPECT_EQ(kept, "keep me");  // the user's file survives the overwrite

  // Its own earlier output needs no flag; the notes still survive.
  ASSERT_EQ(run_cli(base + " --scheme weight_only").exit_code, 0);
  EXPECT_TRUE(fs::exists(mine / "notes.txt"));
  const auto cfg = nlohmann::json::parse(std::ifstream(mine / "config.json"));
  EXPECT_EQ(cfg["quantization_config"]["scheme"], "weight_only");
  EXPECT_FALSE(fs::exists(dir_ / "mine.lmforge-tmp"));
}

// ---- tune -----------------------------------------------------------------------------------------

TEST_F(CliRecord, TunePromptsAfterTheRecordedPrefix) {
  const std::string trained = model_with_record("trained", headline_training(csv())).string();
  const std::string grid = " --prompt 'the jury' --top_k 0 --top_p 0.9 --temperature 1.0 --max_new_tokens 3 --json";
  const auto r = run_cli("tune --model " + trained + grid + " --output " + (dir_ / "best.yml").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("using finetune's prefix '|HEADLINE| ' from"), std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("prefix"), "|HEADLINE| ");
  const std::string text = j.at("settings").at(0).at("samples").at(0).at("text");
  EXPECT_EQ(text.rfind("|HEADLINE| the jury", 0), 0u) << text;
  std::ifstream yml(dir_ / "best.yml");
  const std::string yaml((std::istreambuf_iterator<char>(yml)), std::istreambuf_iterator<char>());
  EXPECT_NE(yaml.find("prefix: \"|HEADLINE| \""), std::string::npos) << yaml;

  // --prefix '' overrides it.
  const auto plain = run_cli("tune --model " + trained + grid + " --prefix ''");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.err.find("using finetune's"), std::string::npos) << plain.err;
  const std::string plain_text = nlohmann::json::parse(plain.out).at("settings").at(0).at("samples").at(0).at("text");
  EXPECT_EQ(plain_text.rfind("the jury", 0), 0u) << plain_text;
}

}  // namespace
}  // namespace lmforge
