// GenerationConfig::validate() messages and generation_config.json loading.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <unistd.h>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/generate/generation_config.h"

namespace lmforge {
namespace {

struct BadSetting {
  std::string flag;
  std::function<void(GenerationConfig&)> set;
};

class Validate : public ::testing::TestWithParam<BadSetting> {};

TEST_P(Validate, NamesTheFlag) {
  GenerationConfig c;
  GetParam().set(c);
  try {
    c.validate();
    ADD_FAILURE() << "accepted a bad " << GetParam().flag;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam().flag), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    GenerationConfig, Validate,
    ::testing::Values(
        BadSetting{"--temperature", [](auto& c) { c.do_sample = true; c.temperature = 0.0f; }},
        BadSetting{"--temperature", [](auto& c) { c.do_sample = true; c.temperature = -1.0f; }},
        BadSetting{"--top_p", [](auto& c) { c.top_p = 0.0f; }},
        BadSetting{"--top_p", [](auto& c) { c.top_p = 1.5f; }},
        BadSetting{"--top_k", [](auto& c) { c.top_k = -1; }},
        BadSetting{"--num_beams", [](auto& c) { c.num_beams = 0; }},
        BadSetting{"--num_return_sequences", [](auto& c) { c.num_beams = 2; c.num_return_sequences = 3; }},
        BadSetting{"--num_return_sequences", [](auto& c) { c.num_return_sequences = 2; }},
        BadSetting{"--num_return_sequences", [](auto& c) { c.num_return_sequences = 0; }},
        BadSetting{"--repetition_penalty", [](auto& c) { c.repetition_penalty = 0.0f; }},
        BadSetting{"--no_repeat_ngram_size", [](auto& c) { c.no_repeat_ngram_size = -1; }},
        BadSetting{"--length_penalty", [](auto& c) { c.length_penalty = std::numeric_limits<float>::infinity(); }},
        BadSetting{"--length_penalty", [](auto& c) { c.length_penalty = std::nanf(""); }},
        BadSetting{"--max_new_tokens", [](auto& c) { c.max_new_tokens = 0; }},
        BadSetting{"--max_length", [](auto& c) { c.max_length = 0; }},
        BadSetting{"--min_length", [](auto& c) { c.min_length = -1; }},
        BadSetting{"--min_new_tokens", [](auto& c) { c.min_new_tokens = -2; }},
        BadSetting{"--eos_token_id", [](auto& c) { c.eos_token_id = {-1}; }},
        BadSetting{"--pad_token_id", [](auto& c) { c.pad_token_id = -1; }},
        BadSetting{"--stop_strings", [](auto& c) { c.stop_strings = {""}; }}));

TEST(ValidateOk, DefaultsAndCommonSettingsPass) {
  GenerationConfig c;
  EXPECT_NO_THROW(c.validate());
  c.temperature = 0.0f;  // ignored without --do_sample (HF only warns)
  EXPECT_NO_THROW(c.validate());
  c.do_sample = true;
  c.temperature = 0.7f;
  c.top_k = 0;
  c.top_p = 1.0f;
  c.num_return_sequences = 4;  // sampling may return several per prompt
  EXPECT_NO_THROW(c.validate());
  c.do_sample = false;
  c.num_beams = 4;
  c.length_penalty = -0.5f;
  EXPECT_NO_THROW(c.validate());
}

class ConfigFile : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& text) {
    path_ = std::filesystem::temp_directory_path() /
            ("lmforge_gencfg_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json");
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  std::filesystem::path path_;
};

TEST_F(ConfigFile, ReadsHfKeys) {
  GenerationConfig c;
  apply_generation_config_file(write(R"({"eos_token_id": [5, 7], "do_sample": true, "temperature": 0.7,
      "top_k": null, "top_p": 0.9, "early_stopping": "never", "num_beams": 3, "max_new_tokens": 12,
      "pad_token_id": 0, "repetition_penalty": 1.2, "no_repeat_ngram_size": 2, "length_penalty": 2,
      "stop_strings": "END", "transformers_version": "4.43.4", "_from_model_config": true})"),
                               c);
  EXPECT_EQ(c.eos_token_id, (std::vector<int32_t>{5, 7}));
  EXPECT_TRUE(c.do_sample);
  EXPECT_EQ(c.temperature, 0.7f);
  EXPECT_EQ(c.top_k, 0);  // HF: None -> no top-k warper
  EXPECT_EQ(c.top_p, 0.9f);
  EXPECT_EQ(c.early_stopping, EarlyStopping::Never);
  EXPECT_EQ(c.num_beams, 3);
  EXPECT_EQ(c.max_new_tokens, 12);
  EXPECT_EQ(c.pad_token_id, 0);
  EXPECT_EQ(c.repetition_penalty, 1.2f);
  EXPECT_EQ(c.no_repeat_ngram_size, 2);
  EXPECT_EQ(c.length_penalty, 2.0f);
  EXPECT_EQ(c.stop_strings, (std::vector<std::string>{"END"}));
}

TEST_F(ConfigFile, SingleEosAndNullsOverAnExistingConfig) {
  GenerationConfig c;
  c.pad_token_id = 3;
  c.max_length = 50;
  apply_generation_config_file(write(R"({"eos_token_id": 9, "pad_token_id": null, "max_length": null,
      "early_stopping": true})"), c);
  EXPECT_EQ(c.eos_token_id, (std::vector<int32_t>{9}));
  EXPECT_FALSE(c.pad_token_id.has_value());
  EXPECT_FALSE(c.max_length.has_value());
  EXPECT_EQ(c.early_stopping, EarlyStopping::True);
}

TEST_F(ConfigFile, TheFixtureModelsConfig) {
  GenerationConfig c;
  apply_generation_config_file(test::model_dir("gpt2-tiny") / "generation_config.json", c);
  EXPECT_EQ(c.eos_token_id, (std::vector<int32_t>{50256}));
  EXPECT_EQ(c.bos_token_id, 50256);
  EXPECT_EQ(c.top_k, 50);  // untouched
}

void expect_file_error(const std::filesystem::path& file, const std::string& key) {
  GenerationConfig c;
  c.top_k = 7;
  try {
    apply_generation_config_file(file, c);
    ADD_FAILURE() << "accepted " << file;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
  }
  EXPECT_EQ(c.top_k, 7);  // nothing applied
}

TEST_F(ConfigFile, WrongTypesNameFileAndKey) {
  expect_file_error(write(R"({"top_k": 3, "temperature": "hot"})"), "temperature");
  expect_file_error(write(R"({"eos_token_id": [1, "x"]})"), "eos_token_id");
  expect_file_error(write(R"({"early_stopping": "sometimes"})"), "early_stopping");
  expect_file_error(write(R"({"num_beams": 2.5})"), "num_beams");
  expect_file_error(write(R"({"do_sample": 1})"), "do_sample");
}

TEST_F(ConfigFile, MalformedOrMissing) {
  expect_file_error(write("{\"top_k\": "), "JSON");
  // A number past double: the JSON library's out_of_range, not only its parse_error (found by fuzz_generation_config).
  expect_file_error(write(R"({"eos_token_id": [502561e308]})"), "JSON");
  expect_file_error(write("[1, 2]"), "object");
  expect_file_error("/nonexistent/generation_config.json", "cannot open");
}

}  // namespace
}  // namespace lmforge
