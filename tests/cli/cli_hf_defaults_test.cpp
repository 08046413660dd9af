// `lmforge generate` applies HF's generation defaults whatever the model type: HF GenerationConfig,
// then generation_config.json, then the flags. Checked through the real binary against HF's own
// GPT-J outputs (tests/data/models/gptj-tiny/cases.jsonl).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::ids_arg;
using test::model_cases;
using test::model_dir;
using test::run_cli;

nlohmann::json hf_case(const std::string& id) {
  for (const auto& c : model_cases("gptj-tiny"))
    if (c.at("id") == id) return c;
  ADD_FAILURE() << "no fixture case " << id;
  return {};
}

// A GPT-J folder as a user may have it: config.json and weights, no generation_config.json (HF then
// derives its GenerationConfig from config.json alone), optionally with one holding `keys`.
fs::path gptj_folder(const std::string& name, const nlohmann::json& keys = nullptr) {
  const fs::path dir = fs::temp_directory_path() / ("lmforge-hf-defaults-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(model_dir("gptj-tiny") / f, dir / f);
  if (!keys.is_null()) std::ofstream(dir / "generation_config.json") << keys.dump(2);
  return dir;
}

nlohmann::json run_json(const std::string& args) {
  const auto r = run_cli("generate --json " + args + " </dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::array({{{"ids", {{}}}}});
}

std::vector<int> first_ids(const nlohmann::json& j) { return j[0].at("ids")[0].get<std::vector<int>>(); }

// Issue 11: `generate --model <gptj> --prompt_ids ... --max_new_tokens N` is HF's greedy output
// (HF model.generate(input_ids, max_new_tokens=20) on GPT-J: do_sample is False by default).
TEST(CliHfDefaults, GptjPlainGenerateIsHfGreedy) {
  const auto c = hf_case("gptj-tiny/generate/6");  // max_new_tokens 20, greedy
  const auto hf = c.at("output").at("sequences")[0].get<std::vector<int>>();
  const std::string prompt = " --prompt_ids " + ids_arg(c.at("input_ids").get<std::vector<int>>());
  const fs::path dir = gptj_folder("plain");
  EXPECT_EQ(first_ids(run_json("--model " + dir.string() + prompt + " --max_new_tokens 20")), hf);
  EXPECT_EQ(first_ids(run_json("--model " + dir.string() + prompt + " --max_new_tokens 20 --seed 7")), hf)
      << "no sampling, so the seed changes nothing";
  // The fixture folder itself (its generation_config.json holds only the special token ids).
  EXPECT_EQ(first_ids(run_json("--model " + model_dir("gptj-tiny").string() + prompt + " --max_new_tokens 20")), hf);
  // No length flag: HF's max_length 20, prompt included.
  const auto short_ids = first_ids(run_json("--model " + dir.string() + prompt));
  EXPECT_EQ(short_ids, std::vector<int>(hf.begin(), hf.begin() + 20));
  fs::remove_all(dir);
}

// Beam search without --do_sample is beam search, not beam sampling: HF's beams and scores.
TEST(CliHfDefaults, GptjBeamSearchIsNotBeamSampling) {
  const auto c = hf_case("gptj-tiny/generate/8");  // num_beams 5, max_new_tokens 20
  const fs::path dir = gptj_folder("beams");
  const auto j = run_json("--model " + dir.string() + " --prompt_ids " +
                          ids_arg(c.at("input_ids").get<std::vector<int>>()) + " --num_beams 5 --max_new_tokens 20");
  EXPECT_EQ(j[0].at("ids"), c.at("output").at("sequences"));
  ASSERT_TRUE(j[0].contains("sequences_scores"));
  EXPECT_NEAR(j[0].at("sequences_scores")[0].get<double>(),
              c.at("output").at("sequences_scores")[0].get<double>(), 1e-4);
  fs::remove_all(dir);
}

// generation_config.json over HF's defaults, the flags over the file.
TEST(CliHfDefaults, GenerationConfigFileThenFlags) {
  const std::string prompt = " --prompt_ids '967 506 430 291 539 408'";
  const fs::path dir = gptj_folder("file", {{"do_sample", true}, {"max_new_tokens", 7}, {"temperature", 1.5}});
  const auto a = first_ids(run_json("--model " + dir.string() + prompt + " --seed 1"));
  const auto b = first_ids(run_json("--model " + dir.string() + prompt + " --seed 2"));
  EXPECT_EQ(a.size(), 6u + 7u);
  EXPECT_NE(a, b) << "the file turns sampling on";
  // --do_sample false wins over the file: HF's greedy 7 tokens (gptj-tiny/generate/15).
  const auto greedy = first_ids(run_json("--model " + dir.string() + prompt + " --do_sample false"));
  EXPECT_EQ(greedy, hf_case("gptj-tiny/generate/15").at("output").at("sequences")[0].get<std::vector<int>>());
  EXPECT_EQ(first_ids(run_json("--model " + dir.string() + prompt + " --max_new_tokens 3 --seed 1")).size(), 9u);
  fs::remove_all(dir);
}

// Benchmark mode keeps its documented rule: greedy unless --do_sample, whatever the file says.
TEST(CliHfDefaults, BenchmarkStaysGreedyUnlessAsked) {
  const fs::path dir = gptj_folder("bench", {{"do_sample", true}});
  const auto r = run_cli("generate --model " + dir.string() +
                         " --prompt_ids '1 2' --benchmark_mode --benchmark_seq_length 3 --benchmark_warmup 0 "
                         "--benchmark_iters 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("greedy"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

// --model NAME: the snapshot of a Hugging Face cache laid out here (HF_HUB_CACHE), nothing downloaded.
TEST(CliHfDefaults, ModelNameFromTheHubCache) {
  const fs::path cache = fs::temp_directory_path() / "lmforge-hf-defaults-cache";
  fs::remove_all(cache);
  const std::string hash = "0123456789abcdef0123456789abcdef01234567";
  const fs::path snapshot = cache / "models--tiny-org--gptj-tiny" / "snapshots" / hash;
  fs::create_directories(snapshot);
  fs::create_directories(cache / "models--tiny-org--gptj-tiny" / "refs");
  std::ofstream(cache / "models--tiny-org--gptj-tiny" / "refs" / "main") << hash;
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(model_dir("gptj-tiny") / f, snapshot / f);
  const char* old = std::getenv("HF_HUB_CACHE");
  const std::string saved = old ? old : "";
  setenv("HF_HUB_CACHE", cache.c_str(), 1);

  const auto c = hf_case("gptj-tiny/generate/6");
  const std::string prompt = " --prompt_ids " + ids_arg(c.at("input_ids").get<std::vector<int>>());
  EXPECT_EQ(first_ids(run_json("--model tiny-org/gptj-tiny" + prompt + " --max_new_tokens 20")),
            c.at("output").at("sequences")[0].get<std::vector<int>>());
  const auto r = run_cli("generate --model tiny-org/not-cached" + prompt);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("not in the Hugging Face cache " + cache.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing is downloaded"), std::string::npos) << r.err;

  if (old) setenv("HF_HUB_CACHE", saved.c_str(), 1);
  else unsetenv("HF_HUB_CACHE");
  fs::remove_all(cache);
}

TEST(CliHfDefaults, HelpDocumentsHfDefaultsAndTheExampleSettingsAsFlags) {
  const auto r = run_cli("generate --help");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("GPT-J default"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("model_type gptj"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--do_sample --temperature 0.9 --max_new_tokens 32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("token_logprobs"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace lmforge
