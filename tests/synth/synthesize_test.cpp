// Prompt files, post-processing, batched generation and the output formats of synth.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/model/model.h"
#include "lmforge/synth/synthesize.h"

namespace lmforge::synth {
namespace {

const Tokenizer& gpt2_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_dir(test::model_dir("gpt2-tiny"));
  return tok;
}

std::vector<int32_t> ids(const std::string& text) { return gpt2_tokenizer().encode(text); }

std::vector<int32_t> operator+(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

constexpr int32_t kEos = 50256;
constexpr int32_t kDot = 13;
const std::vector<int32_t> kStops = {kEos, kDot};

Postprocessed run(const std::string& prompt, const std::vector<int32_t>& generated, SynthConfig cfg = {}) {
  return postprocess(gpt2_tokenizer(), ids(cfg.prefix + prompt), generated, kStops, cfg);
}

// ---- post-processing ----------------------------------------------------------------------------

TEST(Postprocess, StripsThePrefixAndStopsAtTheSuffixToken) {
  const auto p = run("Farmers", ids(" pleased with figures") + std::vector<int32_t>{kDot, kEos, kEos});
  EXPECT_EQ(p.text, "Farmers pleased with figures.") << "the seed's output keeps the '.'";
  EXPECT_EQ(p.tokens, 3);
  EXPECT_EQ(p.stop, StopReason::Suffix);
}

TEST(Postprocess, KeepSuffixFalseDropsIt) {
  SynthConfig cfg;
  cfg.keep_suffix = false;
  EXPECT_EQ(run("Farmers", ids(" pleased") + std::vector<int32_t>{kDot}, cfg).text, "Farmers pleased");
}

TEST(Postprocess, EosAndLength) {
  const auto eos = run("Farmers", ids(" pleased") + std::vector<int32_t>{kEos, kEos});
  EXPECT_EQ(eos.text, "Farmers pleased");
  EXPECT_EQ(eos.tokens, 1);
  EXPECT_EQ(eos.stop, StopReason::Eos);
  const auto length = run("Farmers", ids(" pleased with figures "));
  EXPECT_EQ(length.text, "Farmers pleased with figures");
  EXPECT_EQ(length.stop, StopReason::Length);
  EXPECT_EQ(length.tokens, static_cast<int>(ids(" pleased with figures ").size()));
}

TEST(Postprocess, SuffixInsideALongerTokenEndsTheRow) {
  const auto generated = ids(" pleased.\" more words");
  const auto p = run("Farmers", generated);
  EXPECT_EQ(p.text, "Farmers pleased.");
  EXPECT_EQ(p.tokens, 1);
  EXPECT_EQ(p.stop, StopReason::Suffix);
}

TEST(Postprocess, TheFirstMinLengthTokensNeverEndARow) {
  SynthConfig cfg;
  const auto generated = ids("wait... then stop.\" now");  // wait | ... | then | stop | ." | now
  EXPECT_EQ(run("", generated, cfg).text, "wait.");
  cfg.min_length = 2;
  const auto p = run("", generated, cfg);
  EXPECT_EQ(p.text, "wait... then stop.");
  EXPECT_EQ(p.tokens, 4);
  EXPECT_EQ(p.stop, StopReason::Suffix);
}

TEST(Postprocess, NoPromptGivesTheGeneratedTextAlone) {
  const auto generated = ids("council meets");
  const auto p = run("", generated + std::vector<int32_t>{kDot});
  EXPECT_EQ(p.text, "council meets.");
  EXPECT_EQ(p.tokens, static_cast<int>(generated.size()));
}

// ---- generation ---------------------------------------------------------------------------------

struct TinyModel {
  std::unique_ptr<Model> model = Model::load(test::model_dir("gpt2-tiny"));
  SynthConfig cfg;
  GenerationConfig gen;
  TinyModel(int num_samples, int batch_size, int min_length) {
    cfg.model = test::model_dir("gpt2-tiny").string();
    cfg.num_samples = num_samples;
    cfg.batch_size = batch_size;
    cfg.min_length = min_length;
    cfg.max_length_buffer = 6;
    gen = generation_config(cfg, model->config(), kDot);
  }
  std::vector<SynthRow> rows(const std::vector<std::string>& prompts, std::vector<size_t>* progress = nullptr) {
    return generate_rows(*model, gpt2_tokenizer(), cfg, gen, prompts, [&](const Progress& p) {
      if (progress) progress->push_back(p.done);
    });
  }
};

TEST(GenerateRows, PromptsTimesSamplesInBatches) {
  TinyModel tiny(3, 4, 2);
  std::vector<size_t> progress;
  const auto rows = tiny.rows({"Community", "Farmers"}, &progress);
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(progress, (std::vector<size_t>{4, 6}));
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].prompt_index, i / 3);
    EXPECT_EQ(rows[i].text.rfind(rows[i].prompt, 0), 0u) << rows[i].text;
    EXPECT_LE(rows[i].tokens, 8);
    if (rows[i].stop != StopReason::Length) {
      EXPECT_GE(rows[i].tokens, 2) << "min_length";
    }
  }
  EXPECT_EQ(tiny.rows({"Community", "Farmers"})[5].text, rows[5].text) << "seeded";
}

TEST(GenerateRows, NoPromptsMeansOneEntryFromThePrefix) {
  TinyModel tiny(5, 2, 0);
  const auto rows = tiny.rows({});
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.prompt_index, 0u);
    EXPECT_EQ(r.prompt, "");
    EXPECT_EQ(r.text.find("|HEADLINE|"), std::string::npos);
  }
  // Batches of identical prompts must not repeat each other (each batch gets its own seed).
  EXPECT_FALSE(rows[0].text == rows[2].text && rows[1].text == rows[3].text);
}

TEST(GenerateRows, PromptPlusMaxLengthMustFitTheContext) {
  TinyModel tiny(1, 1, 0);
  tiny.cfg.max_length_buffer = 125;  // the tiny model has 128 positions; the prefix alone is 5 tokens
  try {
    tiny.rows({});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("min_length + max_length_buffer = 125 after a 5-token prompt needs 130"),
              std::string::npos)
        << e.what();
  }
}

TEST(GenerateRows, BeamSearchReturnsNumSamplesBeams) {
  TinyModel tiny(2, 4, 0);
  tiny.cfg.generation = {{"num_beams", 2}, {"do_sample", false}};
  tiny.gen = generation_config(tiny.cfg, tiny.model->config(), kDot);
  const auto rows = tiny.rows({"A", "B", "C"});
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[4].prompt, "C");
}

// ---- privacy and output -------------------------------------------------------------------------

std::vector<SynthRow> sample_rows() {
  std::vector<SynthRow> rows(3);
  rows[0] = {0, "Community", "Community experiences a café.", 4, StopReason::Suffix, {}, true};
  rows[1] = {0, "Community", "Community, \"quoted\" \xF0\x9F\x98\x80", 3, StopReason::Length, {}, true};
  rows[2] = {1, "Farmers", "Farmers pleased with figures.", 3, StopReason::Suffix, {}, true};
  return rows;
}

TEST(PrivacyFilter, DropOrFlag) {
  PrivacyGuard guard(8);
  guard.add_reference("farmers pleased with figures");
  auto dropped = sample_rows();
  apply_privacy_guard(guard, PrivacyMode::Drop, dropped);
  EXPECT_FALSE(dropped[2].kept);
  EXPECT_EQ(dropped[2].privacy.reason, CopyReason::ExactCopy);
  EXPECT_TRUE(dropped[0].kept);
  auto flagged = sample_rows();
  apply_privacy_guard(guard, PrivacyMode::Flag, flagged);
  EXPECT_TRUE(flagged[2].kept);
  const auto j = nlohmann::json::parse(render_rows(flagged, 2, OutputFormat::Json, PrivacyMode::Flag));
  EXPECT_EQ(j[0]["privacy"], (nlohmann::json{"", ""}));
  EXPECT_EQ(j[1]["privacy"], (nlohmann::json{"exact_copy"}));
  EXPECT_EQ(render_rows(dropped, 2, OutputFormat::Json, PrivacyMode::Drop).find("Farmers pleased"), std::string::npos);
}

TEST(RenderRows, JsonIsPythonJsonDumpsOfTheSeedLayout) {
  const std::string out = render_rows(sample_rows(), 2, OutputFormat::Json, PrivacyMode::Drop);
  EXPECT_EQ(out,
            "[{\"sentences\": [\"Community experiences a caf\\u00e9.\", \"Community, \\\"quoted\\\" \\ud83d\\ude00\"]}, "
            "{\"sentences\": [\"Farmers pleased with figures.\"]}]\n");
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j[0]["sentences"][0], "Community experiences a café.");
}

TEST(RenderRows, EveryPromptHasAnEntryEvenWhenEmpty) {
  auto rows = sample_rows();
  rows[2].kept = false;
  EXPECT_EQ(nlohmann::json::parse(render_rows(rows, 2, OutputFormat::Json, PrivacyMode::Drop))[1]["sentences"].size(), 0u);
}

TEST(RenderRows, JsonlAndCsv) {
  const std::string jsonl = render_rows(sample_rows(), 2, OutputFormat::Jsonl, PrivacyMode::Drop);
  std::istringstream in(jsonl);
  std::string line;
  std::getline(in, line);
  const auto first = nlohmann::json::parse(line);
  EXPECT_EQ(first["prompt"], "Community");
  EXPECT_EQ(first["tokens"], 4);
  EXPECT_EQ(first["stop"], "suffix");
  EXPECT_FALSE(first.contains("privacy"));

  const std::string csv = render_rows(sample_rows(), 2, OutputFormat::Csv, PrivacyMode::Flag);
  EXPECT_EQ(csv,
            "prompt,text,tokens,stop,privacy\n"
            "Community,Community experiences a café.,4,suffix,\n"
            "Community,\"Community, \"\"quoted\"\" \xF0\x9F\x98\x80\",3,length,\n"
            "Farmers,Farmers pleased with figures.,3,suffix,\n");
}

}  // namespace
}  // namespace lmforge::synth
