// SynthConfig: seed 000's YAML, HF generation keys, flags, errors and the HF length mapping.
#include <gtest/gtest.h>

#include <fstream>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/model/config.h"
#include "lmforge/synth/synth_config.h"

namespace lmforge::synth {
namespace {

class SynthConfigTest : public ::testing::Test {
 protected:
  std::filesystem::path dir_ =
      std::filesystem::temp_directory_path() / ("lmforge_synth_cfg_" + std::to_string(::getpid()));
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }
  SynthConfig load(const std::string& yaml) {
    SynthConfig c;
    load_synth_config(write("cfg.yml", yaml), c);
    return c;
  }
  std::string error_of(const std::string& yaml) {
    try {
      load(yaml);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

// The reference kit's configs/config_finetuned.yml, with format default.
TEST_F(SynthConfigTest, ReadsTheSeedConfig) {
  write("prompt.csv", "Community\nFarmers");
  const auto c = load(
      "# config_base.yaml\nversion: 1.0\n\nmodel:\n  format: default # default, onnx\n  pretrained_model: gpt2-medium\n"
      "  path: saved_models/gpt2-medium-finetuned\n\ngeneration:\n  prompt_file: prompt.csv # [optional]\n"
      "  min_length: 0\n  max_length_buffer: 20\n");
  EXPECT_EQ(c.model, "saved_models/gpt2-medium-finetuned");
  EXPECT_EQ(c.pretrained_model, "gpt2-medium");
  EXPECT_EQ(c.prompt_file, (dir_ / "prompt.csv").string()) << "relative to the YAML's folder when not in the cwd";
  EXPECT_EQ(c.min_length, 0);
  EXPECT_EQ(c.max_new_tokens(), 20);
}

TEST_F(SynthConfigTest, ReadsOurKeysAndHfKeysAnywhere) {
  const auto c = load(
      "model: m\nnum_samples: 5\nformat: JSONL\nprivacy: flag\nprefix: \"|HEADLINE| \"\nkeep_suffix: no\n"
      "generation:\n  top_p: 0.9\n  temperature: 0.7\n  max_copy_ngram: 6\ntop_k: 40\neos_token_id: [13, 50256]\n");
  EXPECT_EQ(c.model, "m");
  EXPECT_EQ(c.num_samples, 5);
  EXPECT_EQ(c.format, OutputFormat::Jsonl);
  EXPECT_EQ(c.privacy, PrivacyMode::Flag);
  EXPECT_EQ(c.prefix, "|HEADLINE| ");
  EXPECT_FALSE(c.keep_suffix);
  EXPECT_EQ(c.max_copy_ngram, 6);
  EXPECT_DOUBLE_EQ(c.generation.at("top_p").get<double>(), 0.9);
  EXPECT_EQ(c.generation.at("top_k").get<int>(), 40);
  EXPECT_EQ(c.generation.at("eos_token_id").size(), 2u);
}

TEST_F(SynthConfigTest, UnknownKeyNamesTheClosestValidOne) {
  EXPECT_EQ(error_of("model: m\nnum_sample: 3\n"), (dir_ / "cfg.yml").string() + ":2: unknown key 'num_sample' (did you mean 'num_samples'?)");
  EXPECT_NE(error_of("generation:\n  max_lenght_buffer: 3\n").find("did you mean 'max_length_buffer'?"), std::string::npos);
  EXPECT_NE(error_of("model:\n  paht: x\n").find("unknown key 'model.paht' (did you mean 'model.path'?)"), std::string::npos);
}

TEST_F(SynthConfigTest, TypeAndValueErrorsNameTheKeyAndLine) {
  EXPECT_NE(error_of("num_samples: many\n").find("cfg.yml:1: key 'num_samples' must be an integer, got 'many'"), std::string::npos);
  EXPECT_NE(error_of("format: xml\n").find("key 'format' must be json | jsonl | csv, got 'xml'"), std::string::npos);
  EXPECT_NE(error_of("\ntop_p: fast\n").find("cfg.yml:2: key 'top_p' must be a number"), std::string::npos);
  EXPECT_NE(error_of("model:\n  format: onnx\n").find("only 'default'"), std::string::npos);
  EXPECT_NE(error_of("max_new_tokens: 5\n").find("min_length + max_length_buffer"), std::string::npos);
  EXPECT_NE(error_of("min_length: 1\ngeneration:\n  min_length: 2\n").find("given twice"), std::string::npos);
  EXPECT_NE(error_of("a: [1\n").find("cfg.yml:"), std::string::npos);
  // A file name longer than the OS allows is kept as given (found by fuzz_yaml: looking it up threw
  // std::filesystem's own error out of the reader).
  const std::string long_name = std::string(300, 'p') + ".csv";
  EXPECT_EQ(load("prompt_file: " + long_name + "\n").prompt_file, long_name);
  // Bytes that are not UTF-8 in a list where a number belongs: one error naming the key, with the
  // bytes replaced in the message (found by fuzz_yaml: the JSON library threw on dumping them).
  EXPECT_NE(error_of("top_p: [\xfd\x01]\n").find("key 'top_p'"), std::string::npos) << error_of("top_p: [\xfd\x01]\n");
}

TEST_F(SynthConfigTest, FlagsOverrideTheYaml) {
  SynthConfig c = load("model: m\nnum_samples: 5\ntop_p: 0.9\n");
  set_synth_value(c, "num_samples", "2", "--num_samples");
  set_synth_value(c, "top_p", "0.5", "--top_p");
  set_synth_value(c, "do_sample", "false", "--do_sample");
  set_synth_value(c, "prefix", "|TITLE| ", "--prefix");
  EXPECT_EQ(c.num_samples, 2);
  EXPECT_DOUBLE_EQ(c.generation.at("top_p").get<double>(), 0.5);
  EXPECT_FALSE(c.generation.at("do_sample").get<bool>());
  EXPECT_EQ(c.prefix, "|TITLE| ");
  set_synth_value(c, "eos_token_id", "[13, 50256]", "--eos_token_id");
  EXPECT_EQ(c.generation.at("eos_token_id"), (nlohmann::json{13, 50256}));
  try {
    set_synth_value(c, "formt", "csv", "--formt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--formt: unknown key 'formt' (did you mean 'format'?)");
  }
}

TEST_F(SynthConfigTest, ValidateChecksRanges) {
  SynthConfig c;
  c.model = "m";
  EXPECT_NO_THROW(validate(c));
  auto message = [&](auto change) {
    SynthConfig bad = c;
    change(bad);
    try {
      validate(bad);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message([](SynthConfig& s) { s.min_length = 10, s.max_length_buffer = -5; }).find("min_length (10) is greater than the max length"),
            std::string::npos);
  EXPECT_NE(message([](SynthConfig& s) { s.max_length_buffer = 0; }).find("must be >= 1"), std::string::npos);
  EXPECT_NE(message([](SynthConfig& s) { s.num_samples = 0; }).find("num_samples must be >= 1"), std::string::npos);
  EXPECT_NE(message([](SynthConfig& s) { s.model.clear(); }).find("no model"), std::string::npos);
  EXPECT_NE(message([](SynthConfig& s) { s.reference_data = "/nonexistent.csv"; }).find("reference_data"), std::string::npos);
}

TEST_F(SynthConfigTest, GenerationConfigMapsTheSeedLengthsToHfTerms) {
  SynthConfig c;
  c.model = test::model_dir("gpt2-tiny").string();
  c.min_length = 3;
  c.max_length_buffer = 7;
  const ModelConfig mc = load_model_config(c.model);
  const GenerationConfig g = generation_config(c, mc, 13);
  EXPECT_EQ(g.min_new_tokens.value(), 3);
  EXPECT_EQ(g.max_new_tokens.value(), 10);
  EXPECT_TRUE(g.do_sample);
  EXPECT_EQ(g.top_k, 0) << "seed 000 samples from the whole distribution";
  EXPECT_EQ(g.eos_token_id, (std::vector<int32_t>{50256, 13}));
  EXPECT_EQ(g.seed.value(), 42u);

  set_synth_value(c, "top_k", "50", "--top_k");
  set_synth_value(c, "num_beams", "2", "--num_beams");
  c.num_samples = 2;
  const GenerationConfig beams = generation_config(c, mc, std::nullopt);
  EXPECT_EQ(beams.top_k, 50);
  EXPECT_EQ(beams.num_return_sequences, 2);
  EXPECT_EQ(beams.stop_strings, (std::vector<std::string>{"."})) << "no single suffix token: a stop string";
  c.num_samples = 3;
  EXPECT_THROW(generation_config(c, mc, 13), Error);
}


// finetune's record fills prefix/suffix only where neither the YAML nor a flag gave them.
TEST_F(SynthConfigTest, TrainingRecordFillsOnlyWhatWasNotGiven) {
  eval::TrainingRecord rec;
  rec.prefix = "<<";
  rec.suffix = "!";
  SynthConfig none;
  const auto taken = apply_training_record(none, rec);
  EXPECT_EQ(none.prefix, "<<");
  EXPECT_EQ(none.suffix, "!");
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0], (std::pair<std::string, std::string>{"prefix", "'<<'"}));

  SynthConfig yaml = load("prefix: '|HEADLINE| '\n");
  apply_training_record(yaml, rec);
  EXPECT_EQ(yaml.prefix, "|HEADLINE| ");
  EXPECT_EQ(yaml.suffix, "!");

  SynthConfig flag;
  set_synth_value(flag, "suffix", "", "--suffix");
  const auto only_prefix = apply_training_record(flag, rec);
  EXPECT_EQ(flag.suffix, "");
  EXPECT_EQ(flag.prefix, "<<");
  EXPECT_EQ(only_prefix.size(), 1u);

  SynthConfig partial;  // a record without a suffix leaves synth's default
  eval::TrainingRecord prefix_only;
  prefix_only.prefix = "";
  apply_training_record(partial, prefix_only);
  EXPECT_EQ(partial.prefix, "");
  EXPECT_EQ(partial.suffix, ".");
}

TEST_F(SynthConfigTest, RecognisesSynthOutputs) {
  EXPECT_TRUE(is_synth_rows_output("[{\"sentences\": [\"a.\", \"b.\"]}, {\"sentences\": []}]\n"));
  EXPECT_TRUE(is_synth_rows_output("[{\"sentences\": [\"a.\"], \"privacy\": [\"none\"]}]\n"));
  EXPECT_TRUE(is_synth_rows_output("{\"prompt\": \"\", \"text\": \"a.\", \"tokens\": 2, \"stop\": \"eos\"}\n"));
  EXPECT_TRUE(is_synth_rows_output("{\"prompt\": \"\", \"text\": \"a.\"}\n\n{\"prompt\": \"x\", \"text\": \"b\"}\n"));
  EXPECT_TRUE(is_synth_rows_output("prompt,text,tokens,stop\n,a.,2,eos\n"));
  EXPECT_TRUE(is_synth_rows_output("prompt,text,tokens,stop,privacy\r\n"));
  EXPECT_FALSE(is_synth_rows_output("publish_date,headline_text\n2020,a\n"));
  EXPECT_FALSE(is_synth_rows_output("my notes\n"));
  EXPECT_FALSE(is_synth_rows_output("[1, 2]"));
  EXPECT_FALSE(is_synth_rows_output("{\"rows\": {\"generated\": 1, \"kept\": 1}, \"self_bleu\": null}"));
  EXPECT_FALSE(is_synth_rows_output("{\"prompt\": \"\", \"text\": \"a.\"}\nnot json\n"));
  EXPECT_TRUE(is_synth_report_output("{\"rows\": {\"generated\": 1, \"kept\": 1}, \"self_bleu\": {\"value\": null}}"));
  EXPECT_FALSE(is_synth_report_output("[{\"sentences\": []}]"));
  EXPECT_FALSE(is_synth_report_output("{\"rows\": 3}"));
}

TEST_F(SynthConfigTest, OutputFileRule) {
  SynthConfig c;
  c.output = write("notes.txt", "keep\n").string();
  EXPECT_THROW(check_output_files(c), Error);
  c.overwrite_output_dir = true;
  EXPECT_NO_THROW(check_output_files(c));
  c.overwrite_output_dir = false;
  c.output = write("old.json", "[{\"sentences\": [\"x\"]}]\n").string();
  EXPECT_NO_THROW(check_output_files(c));
  c.report = write("report.json", "[{\"sentences\": [\"x\"]}]\n").string();  // rows are not a report
  EXPECT_THROW(check_output_files(c), Error);
  c.report = (dir_ / "new.json").string();
  EXPECT_NO_THROW(check_output_files(c));
  SynthConfig flag;
  set_synth_value(flag, "overwrite_output_dir", "true", "--overwrite_output_dir");
  EXPECT_TRUE(flag.overwrite_output_dir);
}

}  // namespace
}  // namespace lmforge::synth
