// eval::tune (seed 001's tune_hyperparameters) on the tiny GPT-2 fixture: grid order, every
// setting's perplexity recomputed independently through generate() + eval's perplexity API, the
// best setting, reproducibility, validation, and the YAML read back by synth's config loader.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error_of.h"
#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/eval/perplexity.h"
#include "lmforge/eval/tune.h"
#include "lmforge/generate/generate.h"
#include "lmforge/model/model.h"
#include "lmforge/synth/synth_config.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::eval {
namespace {

class Tune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load(test::model_dir("gpt2-tiny")).release();
    tok_ = new Tokenizer(Tokenizer::from_dir(test::model_dir("gpt2-tiny")));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tok_;
  }

  static TuneOptions options(int samples, int max_new_tokens = 12, uint64_t seed = 7) {
    TuneOptions o;
    o.generation.eos_token_id = {50256};
    o.generation.max_new_tokens = max_new_tokens;
    o.generation.seed = seed;
    o.samples_per_setting = samples;
    return o;
  }
  static std::vector<int32_t> prompt() { return tok_->encode("The news today is"); }

  static Model* model_;
  static Tokenizer* tok_;
};
Model* Tune::model_ = nullptr;
Tokenizer* Tune::tok_ = nullptr;

TEST(TuneGrid, CartesianProductTopKOuterTemperatureInner) {
  const TuneGrid grid{{0, 25}, {0.8f, 0.9f, 0.95f}, {0.7f, 1.0f}};
  const auto s = grid_settings(grid);
  ASSERT_EQ(s.size(), 12u);
  size_t i = 0;
  for (int k : grid.top_k)
    for (float p : grid.top_p)
      for (float t : grid.temperature) {
        EXPECT_EQ(s[i].top_k, k) << i;
        EXPECT_EQ(s[i].top_p, p) << i;
        EXPECT_EQ(s[i].temperature, t) << i;
        ++i;
      }
  // The seed's loop order, spelled out for the first settings.
  EXPECT_EQ(s[1].top_k, 0);
  EXPECT_EQ(s[1].top_p, 0.8f);
  EXPECT_EQ(s[1].temperature, 1.0f);
  EXPECT_EQ(s[2].top_p, 0.9f);
  EXPECT_EQ(s[6].top_k, 25);
}

TEST(TuneGrid, DefaultIsTheSeedsSearchSpace) {
  const TuneGrid g;
  EXPECT_EQ(g.top_k, (std::vector<int>{0, 25, 50}));
  EXPECT_EQ(g.top_p, (std::vector<float>{0.8f, 0.9f, 0.95f}));
  EXPECT_EQ(g.temperature, (std::vector<float>{0.7f, 0.8f, 1.0f}));
  EXPECT_EQ(grid_settings(g).size(), 27u);
}

TEST(TuneFormat, FloatsRoundTripAndStayFloats) {
  EXPECT_EQ(format_float(0.95f), "0.95");
  EXPECT_EQ(format_float(0.7f), "0.7");
  EXPECT_EQ(format_float(1.0f), "1.0");
  EXPECT_EQ(format_float(2.0f), "2.0");
  EXPECT_EQ(format_float(1e-7f), "1e-07");
}

// Every sample: the text generate() gives for that setting (decoded as the seed does), and its
// perplexity from eval's API; the setting's number is the mean over samples, the pooled number the
// corpus (token-weighted) perplexity of the same texts.
TEST_F(Tune, EverySettingIsItsSamplesPerplexity) {
  const TuneGrid grid{{0, 5}, {0.9f}, {0.7f, 1.3f}};
  const TuneOptions opt = options(3);
  std::vector<size_t> seen;
  const TuneReport report = tune(*model_, *tok_, prompt(), grid, opt, [&](size_t i, size_t total, const TuneResult&) {
    EXPECT_EQ(total, 4u);
    seen.push_back(i);
  });
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 3}));
  ASSERT_EQ(report.results.size(), 4u);
  const auto settings = grid_settings(grid);
  for (size_t i = 0; i < settings.size(); ++i) {
    const TuneResult& r = report.results[i];
    EXPECT_EQ(r.setting.top_k, settings[i].top_k);
    EXPECT_EQ(r.setting.temperature, settings[i].temperature);
    ASSERT_EQ(r.samples.size(), 3u);

    GenerationConfig g = opt.generation;
    g.do_sample = true;
    g.top_k = settings[i].top_k;
    g.top_p = settings[i].top_p;
    g.temperature = settings[i].temperature;
    g.num_return_sequences = 3;
    const GenerationOutput out = generate(*model_, {prompt()}, g);
    ASSERT_EQ(out.sequences.size(), 3u);

    std::vector<std::string> texts;
    double ppl_sum = 0;
    for (size_t s = 0; s < 3; ++s) {
      const std::string want_text = tok_->decode(out.sequences[s], true);
      EXPECT_EQ(r.samples[s].text, want_text) << i << "/" << s;
      const std::vector<int32_t> generated(out.sequences[s].begin() + out.prompt_length, out.sequences[s].end());
      EXPECT_EQ(r.samples[s].continuation, tok_->decode(generated, true));
      EXPECT_EQ(r.samples[s].text.rfind("The news today is", 0), 0u);
      const PerplexityResult want = text_perplexity(*model_, *tok_, want_text);
      EXPECT_DOUBLE_EQ(r.samples[s].perplexity, want.perplexity);
      EXPECT_EQ(r.samples[s].tokens, want.tokens);
      texts.push_back(want_text);
      ppl_sum += want.perplexity;
    }
    EXPECT_EQ(r.scored, 3);
    EXPECT_NEAR(r.perplexity, ppl_sum / 3, 1e-12 * r.perplexity);
    const CorpusPerplexity corpus = corpus_perplexity(*model_, *tok_, texts);
    EXPECT_NEAR(r.perplexity, corpus.mean_row_perplexity, 1e-12 * r.perplexity);
    EXPECT_NEAR(r.pooled_perplexity, corpus.perplexity, 1e-12 * r.perplexity);
  }
}

TEST_F(Tune, BestIsTheMinimumEarliestOnTies) {
  const TuneReport report = tune(*model_, *tok_, prompt(), {{0, 3}, {0.5f, 1.0f}, {0.6f, 1.5f}}, options(2));
  ASSERT_TRUE(report.best);
  size_t want = 0;
  for (size_t i = 1; i < report.results.size(); ++i)
    if (report.results[i].perplexity < report.results[want].perplexity) want = i;
  EXPECT_EQ(*report.best, want);
  for (const auto& r : report.results) EXPECT_GE(r.perplexity, report.results[*report.best].perplexity);

  // Repeated values: identical settings give identical samples (same seed), a tie the first wins.
  const TuneReport tie = tune(*model_, *tok_, prompt(), {{4, 4}, {0.9f}, {0.8f}}, options(2));
  ASSERT_EQ(tie.results.size(), 2u);
  EXPECT_EQ(tie.results[0].perplexity, tie.results[1].perplexity);
  EXPECT_EQ(tie.best, std::optional<size_t>(0));
}

TEST_F(Tune, SameSeedSameTableAndSettingsIndependentOfTheGrid) {
  const TuneGrid grid{{0, 10}, {0.8f, 0.95f}, {0.9f}};
  const TuneReport a = tune(*model_, *tok_, prompt(), grid, options(2));
  const TuneReport b = tune(*model_, *tok_, prompt(), grid, options(2));
  ASSERT_EQ(a.results.size(), b.results.size());
  for (size_t i = 0; i < a.results.size(); ++i) {
    EXPECT_EQ(a.results[i].perplexity, b.results[i].perplexity) << i;
    for (size_t s = 0; s < a.results[i].samples.size(); ++s) {
      EXPECT_EQ(a.results[i].samples[s].sequence, b.results[i].samples[s].sequence);
      EXPECT_EQ(a.results[i].samples[s].text, b.results[i].samples[s].text);
    }
  }
  EXPECT_EQ(a.best, b.best);

  // The last setting alone gives the same samples as inside the grid (one seed per setting).
  const TuneReport alone = tune(*model_, *tok_, prompt(), {{10}, {0.95f}, {0.9f}}, options(2));
  EXPECT_EQ(alone.results[0].samples[0].sequence, a.results[3].samples[0].sequence);
  EXPECT_EQ(alone.results[0].perplexity, a.results[3].perplexity);

  // Another seed samples something else.
  const TuneReport other = tune(*model_, *tok_, prompt(), grid, options(2, 12, 8));
  bool differs = false;
  for (size_t i = 0; i < a.results.size(); ++i) differs |= other.results[i].samples[0].text != a.results[i].samples[0].text;
  EXPECT_TRUE(differs);
}

TEST_F(Tune, SequencesStopAtEos) {
  // EOS ends a row: the kept sequence has no padding after it and the text no special token.
  TuneOptions opt = options(4, 30);
  const TuneReport r = tune(*model_, *tok_, prompt(), {{0}, {1.0f}, {1.5f}}, opt);
  for (const auto& s : r.results[0].samples) {
    const auto eos = std::find(s.sequence.begin() + static_cast<long>(prompt().size()), s.sequence.end(), 50256);
    if (eos != s.sequence.end()) {
      EXPECT_EQ(eos + 1, s.sequence.end());
    }
    EXPECT_EQ(s.text.find("<|endoftext|>"), std::string::npos);
  }
}

TEST_F(Tune, TextsTooShortToScoreAreLeftOut) {
  // Prompt <|endoftext|> (dropped by decode) + one greedy token: a 1-token text, not scored.
  const std::vector<int32_t> eot{50256};
  TuneOptions opt = options(2, 1);
  const TuneReport r = tune(*model_, *tok_, eot, {{1}, {1.0f}, {1.0f}}, opt);
  ASSERT_EQ(r.results.size(), 1u);
  ASSERT_LT(tok_->encode(r.results[0].samples[0].text).size(), 2u) << r.results[0].samples[0].text;
  EXPECT_EQ(r.results[0].scored, 0);
  EXPECT_TRUE(std::isnan(r.results[0].perplexity));
  EXPECT_TRUE(std::isnan(r.results[0].samples[0].perplexity));
  EXPECT_EQ(r.results[0].samples[0].tokens, 0);
  EXPECT_FALSE(r.best);
}

using test::error_of;

TEST_F(Tune, BadGridIsRefusedBeforeGenerating) {
  int calls = 0;
  auto run = [&](const TuneGrid& g, int samples = 1, int max_new = 12) {
    return error_of([&] {
      tune(*model_, *tok_, prompt(), g, options(samples, max_new), [&](size_t, size_t, const TuneResult&) { ++calls; });
    });
  };
  EXPECT_NE(run({{}, {0.9f}, {1.0f}}).find("--top_k"), std::string::npos);
  EXPECT_NE(run({{0}, {}, {1.0f}}).find("--top_p"), std::string::npos);
  EXPECT_NE(run({{0}, {0.9f}, {}}).find("--temperature"), std::string::npos);
  EXPECT_NE(run({{0, -1}, {0.9f}, {1.0f}}).find("--top_k"), std::string::npos);
  EXPECT_NE(run({{0}, {0.9f, 0.0f}, {1.0f}}).find("--top_p"), std::string::npos);
  EXPECT_NE(run({{0}, {1.5f}, {1.0f}}).find("--top_p"), std::string::npos);
  EXPECT_NE(run({{0}, {0.9f}, {1.0f, 0.0f}}).find("--temperature"), std::string::npos);
  EXPECT_NE(run({{0}, {0.9f}, {-0.5f}}).find("--temperature"), std::string::npos);
  EXPECT_NE(run({{0}, {0.9f}, {1.0f}}, 0).find("--samples_per_setting"), std::string::npos);
  EXPECT_NE(run({{0}, {0.9f}, {1.0f}}, 1, 500).find("context"), std::string::npos);
  EXPECT_NE(error_of([&] { tune(*model_, *tok_, {}, TuneGrid{}, options(1)); }).find("--prompt"), std::string::npos);
  EXPECT_EQ(calls, 0);

  // The same checks without a model (the CLI runs them before loading it).
  EXPECT_NO_THROW(check_grid(TuneGrid{}, 1));
  EXPECT_NE(error_of([] { check_grid({{0}, {0.9f, 1.01f}, {1.0f}}, 1); }).find("--top_p must be in (0, 1]"), std::string::npos);
  EXPECT_NE(error_of([] { check_grid({{0}, {0.9f}, {1.0f}}, 0); }).find("--samples_per_setting"), std::string::npos);
  EXPECT_NE(error_of([] { check_grid({{0}, {0.9f}, {}}, 1); }).find("--temperature"), std::string::npos);
}

class TuneYaml : public ::testing::Test {
 protected:
  std::filesystem::path dir_ = std::filesystem::temp_directory_path() / ("lmforge_tune_yaml_" + std::to_string(::getpid()));
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
};

TEST_F(TuneYaml, SynthConfigLoaderReadsTheBestSetting) {
  const std::string model = std::filesystem::absolute(test::model_dir("gpt2-tiny")).string();
  const TuneSetting best{25, 0.8f, 0.7f};
  const std::string yaml = synth_yaml(best, model, "best of 27\nprompt: \"a: #b\"");
  EXPECT_EQ(yaml.rfind("# best of 27\n# prompt: \"a: #b\"\n", 0), 0u) << yaml;
  const auto file = dir_ / "best.yml";
  std::ofstream(file) << yaml;

  synth::SynthConfig cfg;
  synth::load_synth_config(file, cfg);
  EXPECT_EQ(cfg.model, model);
  EXPECT_EQ(cfg.generation.at("top_k"), 25);
  EXPECT_EQ(cfg.generation.at("do_sample"), true);
  EXPECT_DOUBLE_EQ(cfg.generation.at("top_p").get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(cfg.generation.at("temperature").get<double>(), 0.7);
  synth::validate(cfg);

  const auto m = Model::load(model);
  const GenerationConfig g = synth::generation_config(cfg, m->config(), std::nullopt);
  EXPECT_TRUE(g.do_sample);
  EXPECT_EQ(g.top_k, 25);
  EXPECT_EQ(g.top_p, 0.8f);
  EXPECT_EQ(g.temperature, 0.7f);
}

TEST_F(TuneYaml, OddPathsAndWholeNumbersSurvive) {
  const std::string path = (dir_ / "my model: #1 \"x\"").string();
  const auto file = dir_ / "best.yml";
  std::ofstream(file) << synth_yaml({0, 1.0f, 2.0f}, path);
  synth::SynthConfig cfg;
  synth::load_synth_config(file, cfg);
  EXPECT_EQ(cfg.model, path);
  EXPECT_EQ(cfg.generation.at("top_k"), 0);
  EXPECT_TRUE(cfg.generation.at("top_p").is_number_float());
  EXPECT_DOUBLE_EQ(cfg.generation.at("top_p").get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(cfg.generation.at("temperature").get<double>(), 2.0);
}

TEST_F(TuneYaml, APathThatIsNotUtf8IsOneError) {
  // Linux paths are bytes; YAML is UTF-8. One error naming it, not the JSON library's own exception.
  const std::string path = (dir_ / "model-\xff").string();
  const std::string err = test::error_of([&] { synth_yaml({0, 1.0f, 2.0f}, path); });
  EXPECT_NE(err.find("the model path is not valid UTF-8"), std::string::npos) << err;
  EXPECT_NE(test::error_of([&] { synth_yaml({0, 1.0f, 2.0f}, "m", "", "\xc3("); }).find("--prefix is not valid UTF-8"),
            std::string::npos);
}

}  // namespace
}  // namespace lmforge::eval
