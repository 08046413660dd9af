// Forward-pass parity with HF transformers: logits of every fixture model (safetensors and .bin,
// fp32/fp16/bf16 storage, sharded, GPT-2 and GPT-J), left-padded batches, and the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <utility>
#include <vector>

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

// Padding runs through no layer (the real tokens of a batch are packed together): a left-padded,
// a right-padded and a late-starting row next to an unpadded one, fed in three forward calls (the
// first all padding), give every real position the logits of its row run alone, and every
// padding position logits 0.
TEST_P(ForwardParity, PaddedRowsMatchUnpaddedRows) {
  auto model = Model::load(model_dir(GetParam()));
  const int V = model->vocab_size();
  const auto ids = model_cases(GetParam(), "logits").front().at("input_ids").get<std::vector<int32_t>>();
  const int T = static_cast<int>(ids.size());
  ASSERT_GE(T, 4);
  const int first = T / 2;
  // Columns 0-1: padding in every row. Then, per row, the index into ids of column 2 + t (-1 = pad):
  // row 0 unpadded; row 1 two pads, then ids[0..T-2); row 2 ids[0..T-3), then three pads; row 3
  // pads up to t = first, then ids[0..T-first).
  const int C = T + 2;
  std::vector<std::vector<int>> real_from(4, std::vector<int>(C, -1));
  for (int t = 0; t < T; ++t) {
    real_from[0][t + 2] = t;
    if (t >= 2) real_from[1][t + 2] = t - 2;
    if (t < T - 3) real_from[2][t + 2] = t;
    if (t >= first) real_from[3][t + 2] = t - first;
  }
  auto session = model->start(4, C);
  float max_abs = 0.f, worst = 0.f;
  for (auto [c0, c1] : {std::pair{0, 2}, std::pair{2, 2 + first}, std::pair{2 + first, C}}) {
    const int n = c1 - c0;
    std::vector<int32_t> tokens, positions;
    std::vector<uint8_t> mask;
    for (int r = 0; r < 4; ++r)
      for (int c = c0; c < c1; ++c) {
        const int i = real_from[r][c];
        tokens.push_back(i >= 0 ? ids[i] : 0);
        positions.push_back(i >= 0 ? i : 1);
        mask.push_back(i >= 0);
      }
    std::vector<float> logits(static_cast<size_t>(4) * n * V, 1.0f);
    session->forward(n, tokens.data(), positions.data(), mask.data(), logits.data(), true);
    for (int r = 0; r < 4; ++r) {
      std::vector<int32_t> alone;  // the row's real tokens so far, unpadded
      for (int c = 0; c < c1; ++c)
        if (real_from[r][c] >= 0) alone.push_back(ids[real_from[r][c]]);
      const auto expected = alone.empty() ? std::vector<float>{} : model->logits(alone);
      for (int c = c0; c < c1; ++c) {
        const float* got = logits.data() + (static_cast<size_t>(r) * n + (c - c0)) * V;
        const int i = real_from[r][c];
        for (int v = 0; v < V; ++v) {
          if (i < 0) {
            ASSERT_EQ(got[v], 0.0f) << "row " << r << ", padding column " << c;
            continue;
          }
          const float want = expected[static_cast<size_t>(i) * V + v];
          max_abs = std::max(max_abs, std::fabs(want));
          worst = std::max(worst, std::fabs(want - got[v]));
        }
      }
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
