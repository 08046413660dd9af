// Forward-pass parity with HF transformers: logits of every fixture model (safetensors and .bin,
// fp32/fp16/bf16 storage, sharded, GPT-2 and GPT-J), left-padded batches, and the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/model/model.h"

namespace lmforge {
namespace {

using test::model_cases;
using test::model_dir;
using test::read_npy;

class ForwardParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardParity, LogitsMatchHF) {
  auto model = Model::load(model_dir(GetParam()));
  const int V = model->vocab_size();
  int checked = 0;
  for (const auto& c : model_cases(GetParam(), "logits")) {
    const auto ids = c.at("input_ids").get<std::vector<int32_t>>();
    const auto positions = c.at("args").at("positions").get<std::vector<int>>();
    const auto expected = read_npy(c.at("output").at("npy").get<std::string>());
    const float tol = 1e-4f * c.at("output").at("max_abs_logit").get<float>();
    const auto logits = model->logits(ids);
    ASSERT_EQ(expected.shape, (std::vector<int64_t>{static_cast<int64_t>(positions.size()), V}));
    float worst = 0.f;
    for (size_t p = 0; p < positions.size(); ++p)
      for (int v = 0; v < V; ++v)
        worst = std::max(worst, std::fabs(logits[static_cast<size_t>(positions[p]) * V + v] - expected.data[p * V + v]));
    EXPECT_LE(worst, tol) << c.at("id");
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// The same folder with only its pytorch_model.bin file(s): the restricted pickle loader path.
TEST_P(ForwardParity, LogitsFromTorchBinMatchHF) {
  namespace fs = std::filesystem;
  const fs::path src = model_dir(GetParam());
  const fs::path dir = fs::temp_directory_path() / ("lmforge-bin-only-" + GetParam());
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string name = e.path().filename().string();
    if (name == "config.json" || name.starts_with("pytorch_model")) fs::copy_file(e.path(), dir / name);
  }
  auto model = Model::load(dir);
  const int V = model->vocab_size();
  const auto c = model_cases(GetParam(), "logits").front();
  const auto positions = c.at("args").at("positions").get<std::vector<int>>();
  const auto expected = read_npy(c.at("output").at("npy").get<std::string>());
  const auto logits = model->logits(c.at("input_ids").get<std::vector<int32_t>>());
  const float tol = 1e-4f * c.at("output").at("max_abs_logit").get<float>();
  for (size_t p = 0; p < positions.size(); ++p)
    for (int v = 0; v < V; ++v)
      ASSERT_NEAR(logits[static_cast<size_t>(positions[p]) * V + v], expected.data[p * V + v], tol) << c.at("id");
  fs::remove_all(dir);
}

// The padded first step of a greedy batch: HF's mask and position ids, last-position logits.
TEST_P(ForwardParity, LeftPaddedBatchMatchesHF) {
  auto model = Model::load(model_dir(GetParam()));
  const int V = model->vocab_size();
  int checked = 0;
  for (const auto& c : model_cases(GetParam(), "batch")) {
    const auto& out = c.at("output");
    if (!out.contains("last_logits_npy")) continue;
    const auto mask = out.at("attention_mask").get<std::vector<std::vector<uint8_t>>>();
    const auto pos = out.at("position_ids").get<std::vector<std::vector<int32_t>>>();
    const auto prompts = c.at("input_ids").get<std::vector<std::vector<int32_t>>>();
    const int rows = static_cast<int>(prompts.size()), T = static_cast<int>(mask[0].size());
    const int pad = c.at("args").at("pad_token_id").get<int>();
    std::vector<int32_t> tokens, positions;
    std::vector<uint8_t> flat_mask;
    for (int r = 0; r < rows; ++r) {
      const int npad = T - static_cast<int>(prompts[r].size());
      for (int t = 0; t < T; ++t) {
        tokens.push_back(t < npad ? pad : prompts[r][t - npad]);
        positions.push_back(pos[r][t]);
        flat_mask.push_back(mask[r][t]);
      }
    }
    auto session = model->start(rows, T);
    std::vector<float> logits(static_cast<size_t>(rows) * V);
    session->forward(T, tokens.data(), positions.data(), flat_mask.data(), logits.data());
    const auto expected = read_npy(out.at("last_logits_npy").get<std::string>());
    float max_abs = 0.f, worst = 0.f;
    for (size_t i = 0; i < expected.data.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(expected.data[i]));
      worst = std::max(worst, std::fabs(expected.data[i] - logits[i]));
    }
    EXPECT_LE(worst, 1e-4f * max_abs) << c.at("id");
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// Mean shifted cross-entropy from our logits against HF's model(ids, labels=ids).loss.
TEST_P(ForwardParity, LossMatchesHF) {
  auto model = Model::load(model_dir(GetParam()));
  const int V = model->vocab_size();
  for (const auto& c : model_cases(GetParam(), "ppl")) {
    if (!c.contains("input_ids")) continue;
    const auto ids = c.at("input_ids").get<std::vector<int32_t>>();
    const auto logits = model->logits(ids);
    double total = 0.0;
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      const float* row = logits.data() + t * V;
      double mx = row[0];
      for (int v = 1; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      double sum = 0.0;
      for (int v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
      total += mx + std::log(sum) - row[ids[t + 1]];
    }
    const double loss = total / (ids.size() - 1);
    const double expected = c.at("output").at("loss").get<double>();
    EXPECT_NEAR(loss, expected, 1e-5 * std::fabs(expected)) << c.at("id");
  }
}

// Decoding one token at a time through the KV cache gives the same logits as one full forward.
TEST_P(ForwardParity, IncrementalDecodeMatchesFullForward) {
  auto model = Model::load(model_dir(GetParam()));
  const int V = model->vocab_size();
  const auto c = model_cases(GetParam(), "logits").front();
  const auto ids = c.at("input_ids").get<std::vector<int32_t>>();
  const auto full = model->logits(ids);
  auto session = model->start(1, static_cast<int>(ids.size()));
  std::vector<float> step(V);
  float max_abs = 0.f, worst = 0.f;
  for (size_t t = 0; t < ids.size(); ++t) {
    const int32_t pos = static_cast<int32_t>(t);
    const uint8_t one = 1;
    session->forward(1, &ids[t], &pos, &one, step.data());
    for (int v = 0; v < V; ++v) {
      max_abs = std::max(max_abs, std::fabs(full[t * V + v]));
      worst = std::max(worst, std::fabs(full[t * V + v] - step[v]));
    }
  }
  EXPECT_LE(worst, 1e-5f * max_abs);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ForwardParity, ::testing::ValuesIn(test::model_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n) if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(ModelErrors, ContextOverflowIsAClearError) {
  auto model = Model::load(model_dir("gpt2-switches"));
  EXPECT_THROW(model->start(1, model->max_positions() + 1), Error);
  std::vector<int32_t> too_long(model->max_positions() + 1, 1);
  try {
    model->logits(too_long);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_positions"), std::string::npos) << e.what();
  }
}

TEST(ModelErrors, TokenIdOutsideVocabulary) {
  auto model = Model::load(model_dir("gpt2-switches"));
  EXPECT_THROW(model->logits({1, model->vocab_size()}), Error);
  EXPECT_THROW(model->logits({-1}), Error);
}

TEST(ModelErrors, MissingFolder) {
  EXPECT_THROW(Model::load("/nonexistent/model"), Error);
}

}  // namespace
}  // namespace lmforge
