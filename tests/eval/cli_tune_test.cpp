// `lmforge tune` end to end through the binary: the table, the JSON report (every perplexity
// recomputed here through eval's perplexity API), reproducibility, the YAML read back by synth's
// loader and run by `lmforge synth`, and every bad input: one "error: ..." line, exit != 0.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"
#include "lmforge/eval/perplexity.h"
#include "lmforge/model/model.h"
#include "lmforge/synth/synth_config.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge {
namespace {

using test::run_cli;
namespace fs = std::filesystem;

class CliTune : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_cli_tune_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string model() { return test::model_dir("gpt2-tiny").string(); }
  // A small grid: 2 x 1 x 2 settings, 2 samples each, 10 new tokens.
  static std::string small(const std::string& extra = "", int seed = 11) {
    return "tune --model " + model() + " --prompt 'The news today is' --top_k 0,5 --top_p 0.9 --temperature 0.7,1.2 "
           "--samples_per_setting 2 --max_new_tokens 10 --threads 1 --seed " + std::to_string(seed) + " " + extra;
  }
  static void expect_one_error(const test::RunResult& r, const std::string& must_contain) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_LT(r.exit_code, 128) << "crashed (signal)";
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(must_contain), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "") << "printed before failing";
  }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
};

TEST_F(CliTune, JsonReportMatchesEvalPerplexityAndBestIsTheMinimum) {
  const auto r = run_cli(small("--json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("samples_per_setting"), 2);
  EXPECT_EQ(j.at("seed"), 11);
  const auto& settings = j.at("settings");
  ASSERT_EQ(settings.size(), 4u);
  const int want_k[] = {0, 0, 5, 5};
  const double want_t[] = {0.7, 1.2, 0.7, 1.2};

  const auto m = Model::load(model());
  const Tokenizer tok = Tokenizer::from_dir(model());
  size_t best = 0;
  for (size_t i = 0; i < settings.size(); ++i) {
    const auto& s = settings[i];
    EXPECT_EQ(s.at("top_k"), want_k[i]) << i;
    EXPECT_DOUBLE_EQ(s.at("top_p").get<double>(), 0.9) << i;
    EXPECT_DOUBLE_EQ(s.at("temperature").get<double>(), want_t[i]) << i;
    ASSERT_EQ(s.at("samples").size(), 2u);
    double sum = 0;
    for (const auto& x : s.at("samples")) {
      const std::string text = x.at("text");
      EXPECT_EQ(text.rfind("The news today is", 0), 0u) << text;
      EXPECT_EQ(text, tok.decode(x.at("ids").get<std::vector<int32_t>>(), true));
      const double ppl = eval::text_perplexity(*m, tok, text).perplexity;
      EXPECT_NEAR(x.at("perplexity").get<double>(), ppl, 1e-9 * ppl);
      sum += ppl;
    }
    EXPECT_NEAR(s.at("perplexity").get<double>(), sum / 2, 1e-9 * sum);
    if (s.at("perplexity").get<double>() < settings[best].at("perplexity").get<double>()) best = i;
  }
  EXPECT_EQ(j.at("best").at("index"), best);
  EXPECT_EQ(j.at("best").at("top_k"), settings[best].at("top_k"));
  EXPECT_EQ(j.at("best").at("temperature"), settings[best].at("temperature"));
  EXPECT_EQ(j.at("best").at("perplexity"), settings[best].at("perplexity"));
}

TEST_F(CliTune, TableAndYamlThatSynthAccepts) {
  const std::string out = (dir_ / "best.yml").string();
  const auto r = run_cli(small("--output " + out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<std::string> v;
  for (std::string l; std::getline(lines, l);) v.push_back(l);
  ASSERT_EQ(v.size(), 7u) << r.out;  // intro, header, 4 settings, best
  EXPECT_NE(v[1].find("perplexity"), std::string::npos);
  EXPECT_EQ(v[2].rfind("1/4", 0), 0u) << v[2];
  EXPECT_EQ(v[5].rfind("4/4", 0), 0u) << v[5];
  ASSERT_EQ(v[6].rfind("best: top_k=", 0), 0u) << v[6];

  // The JSON run (same seed) names the same best setting as the table and the YAML.
  const auto j = nlohmann::json::parse(run_cli(small("--json")).out).at("best");
  const std::string best_line = "best: top_k=" + std::to_string(j.at("top_k").get<int>()) + " top_p=0.9 temperature=" +
                                (j.at("temperature").get<double>() == 0.7 ? "0.7" : "1.2");
  EXPECT_EQ(v[6].rfind(best_line, 0), 0u) << v[6];

  synth::SynthConfig cfg;
  synth::load_synth_config(out, cfg);
  EXPECT_TRUE(fs::equivalent(cfg.model, model()));
  EXPECT_EQ(cfg.generation.at("do_sample"), true);
  EXPECT_EQ(cfg.generation.at("top_k"), j.at("top_k"));
  EXPECT_DOUBLE_EQ(cfg.generation.at("top_p").get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(cfg.generation.at("temperature").get<double>(), j.at("temperature").get<double>());
  EXPECT_EQ(files(), std::vector<std::string>{"best.yml"});  // no temp file left

  // And `lmforge synth` runs with it.
  const auto s = run_cli("synth --model_config " + out + " --num_samples 2 --max_length_buffer 5 --threads 1");
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("sentences"), std::string::npos) << s.out;
}

TEST_F(CliTune, SameSeedSameTable) {
  const auto a = run_cli(small());
  const auto b = run_cli(small());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  const auto c = run_cli(small("", 12));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(a.out, c.out);
}

TEST_F(CliTune, DefaultsAreTheSeedsGrid) {
  const auto r = run_cli("tune --model " + model() + " --prompt 'Hello' --max_new_tokens 3 --threads 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.at("settings").size(), 27u);
  EXPECT_EQ(j.at("samples_per_setting"), 1);
  EXPECT_EQ(j.at("settings")[0].at("top_k"), 0);
  EXPECT_DOUBLE_EQ(j.at("settings")[0].at("top_p").get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(j.at("settings")[0].at("temperature").get<double>(), 0.7);
  EXPECT_EQ(j.at("settings")[26].at("top_k"), 50);
  EXPECT_DOUBLE_EQ(j.at("settings")[26].at("top_p").get<double>(), 0.95);
  EXPECT_DOUBLE_EQ(j.at("settings")[26].at("temperature").get<double>(), 1.0);

  // Without a length flag: the seed's max_length=100, prompt included.
  const auto d = run_cli("tune --model " + model() + " --prompt 'Hello' --top_k 0 --top_p 0.9 --temperature 1 --threads 1 --json");
  ASSERT_EQ(d.exit_code, 0) << d.err;
  const auto dj = nlohmann::json::parse(d.out);
  EXPECT_EQ(dj.at("max_length"), 100);
  EXPECT_LE(dj.at("settings")[0].at("samples")[0].at("ids").size(), 100u);
}

TEST_F(CliTune, BadInputIsOneErrorLine) {
  const std::string base = "tune --model " + model() + " --prompt 'Hi there' --threads 1 ";  // errors come before generating
  const std::string out = (dir_ / "best.yml").string();
  std::ofstream(out) << "old\n";  // an existing output is left alone on any error
  const std::string o = " --output " + out;
  expect_one_error(run_cli(base + "--top_k ''" + o), "--top_k");
  expect_one_error(run_cli(base + "--top_p ''" + o), "--top_p");
  expect_one_error(run_cli(base + "--temperature ' '" + o), "--temperature");
  expect_one_error(run_cli(base + "--top_k 0,,5" + o), "--top_k");
  expect_one_error(run_cli(base + "--top_k 0,2.5" + o), "--top_k");
  expect_one_error(run_cli(base + "--top_p 0.9,x" + o), "--top_p");
  expect_one_error(run_cli(base + "--top_p 0" + o), "--top_p must be in (0, 1]");
  expect_one_error(run_cli(base + "--top_p 0.9,1.01" + o), "--top_p must be in (0, 1]");
  expect_one_error(run_cli(base + "--top_p=-0.5" + o), "--top_p");
  expect_one_error(run_cli(base + "--temperature 0" + o), "--temperature must be > 0");
  expect_one_error(run_cli(base + "--temperature=0.7,-1" + o), "--temperature must be > 0");
  expect_one_error(run_cli(base + "--temperature nan" + o), "--temperature");
  expect_one_error(run_cli(base + "--top_k=-1" + o), "--top_k must be >= 0");
  expect_one_error(run_cli(base + "--top_k 0,-3" + o), "--top_k must be >= 0");
  expect_one_error(run_cli(base + "--samples_per_setting 0" + o), "--samples_per_setting");
  expect_one_error(run_cli(base + "--samples_per_setting=-2" + o), "--samples_per_setting");
  expect_one_error(run_cli(base + "--max_length 10 --max_new_tokens 3" + o), "max_");
  expect_one_error(run_cli(base + "--max_new_tokens 1000" + o), "context");
  expect_one_error(run_cli("tune --model " + model() + " --prompt ''" + o), "--prompt");
  expect_one_error(run_cli("tune --prompt 'Hi'" + o), "--model");
  expect_one_error(run_cli("tune --model " + (dir_ / "no_such_model").string() + " --prompt 'Hi'" + o), "no_such_model");
  expect_one_error(run_cli(base + "--output " + (dir_ / "missing" / "best.yml").string()), "cannot write");
  expect_one_error(run_cli(base + "--output " + dir_.string()), "is a directory");
  std::ifstream in(out);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "old\n");
  EXPECT_EQ(files(), std::vector<std::string>{"best.yml"});  // nothing half-written
}

}  // namespace
}  // namespace lmforge
