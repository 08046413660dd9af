// Parity with HF transformers 4.43.4: every generate / dist / topn / batch case of every fixture
// model (tests/data/README.md). Expected values come only from the fixtures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <ostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/generate/generate.h"
#include "lmforge/model/model.h"

namespace lmforge::test {
namespace {

using Ids = std::vector<int32_t>;
using nlohmann::json;

struct ParityCase {
  std::string model;
  std::string arch;
  json c;
};

// gtest prints parameters of failing tests; show the case id instead of raw bytes.
void PrintTo(const ParityCase& p, std::ostream* os) { *os << p.c.at("id").get<std::string>(); }

std::string& discovery_error() {
  static std::string e;
  return e;
}

std::vector<ParityCase> all_cases() {
  std::vector<ParityCase> out;
  try {
    for (const std::string arch : {"gpt2", "gptj"})
      for (const auto& model : model_names(arch))
        for (auto& c : model_cases(model)) {
          const std::string kind = c.at("kind");
          if (kind == "generate" || kind == "dist" || kind == "topn" || kind == "batch")
            out.push_back({model, arch, std::move(c)});
        }
  } catch (const std::exception& e) {
    discovery_error() = e.what();  // reported by FixtureDiscovery below instead of aborting at startup
  }
  return out;
}

// "gpt2-tiny/generate/7" -> "gpt2_tiny_generate_7"
std::string case_name(const ::testing::TestParamInfo<ParityCase>& info) {
  std::string id = info.param.c.at("id");
  for (char& ch : id)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return id;
}

// One Model per fixture folder, loaded on first use. Null when loading failed (message kept).
const Model* model_for(const ParityCase& p, std::string* error) {
  static std::map<std::string, std::unique_ptr<Model>> models;
  static std::map<std::string, std::string> errors;
  if (!models.count(p.model)) {
    try {
      models[p.model] = Model::load(model_dir(p.model));
    } catch (const std::exception& e) {
      models[p.model] = nullptr;
      errors[p.model] = e.what();
    }
  }
  *error = errors[p.model];
  return models[p.model].get();
}

// The HF generate() keyword arguments of a case as our config (HF defaults for the rest).
GenerationConfig config_from_args(const json& args) {
  GenerationConfig c;
  for (const auto& [k, v] : args.items()) {
    if (k == "max_new_tokens") c.max_new_tokens = v.get<int>();
    else if (k == "max_length") c.max_length = v.get<int>();
    else if (k == "min_length") c.min_length = v.get<int>();
    else if (k == "min_new_tokens") c.min_new_tokens = v.get<int>();
    else if (k == "do_sample") c.do_sample = v.get<bool>();
    else if (k == "num_beams") c.num_beams = v.get<int>();
    else if (k == "num_return_sequences") c.num_return_sequences = v.get<int>();
    else if (k == "length_penalty") c.length_penalty = v.get<float>();
    else if (k == "early_stopping")
      c.early_stopping = v.is_string() ? EarlyStopping::Never : (v.get<bool>() ? EarlyStopping::True : EarlyStopping::False);
    else if (k == "temperature") c.temperature = v.get<float>();
    else if (k == "top_k") c.top_k = v.get<int>();
    else if (k == "top_p") c.top_p = v.get<float>();
    else if (k == "repetition_penalty") c.repetition_penalty = v.get<float>();
    else if (k == "no_repeat_ngram_size") c.no_repeat_ngram_size = v.get<int>();
    else if (k == "pad_token_id") c.pad_token_id = v.get<int32_t>();
    else if (k == "eos_token_id") c.eos_token_id = v.is_array() ? v.get<Ids>() : Ids{v.get<int32_t>()};
    else if (k == "padding_side" || k == "top_n") continue;  // left padding is what we do; top_n is the table size
    else ADD_FAILURE() << "unhandled fixture argument " << k;
  }
  return c;
}

std::vector<float> softmax(const float* l, int n) {
  const float m = *std::max_element(l, l + n);
  double z = 0;
  for (int i = 0; i < n; ++i) z += std::exp(static_cast<double>(l[i]) - m);
  std::vector<float> p(n);
  for (int i = 0; i < n; ++i) p[i] = static_cast<float>(std::exp(static_cast<double>(l[i]) - m) / z);
  return p;
}

void expect_sequences(const GenerationOutput& out, const json& expected) {
  const auto want = expected.at("sequences").get<std::vector<Ids>>();
  ASSERT_EQ(out.sequences.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out.sequences[i], want[i]) << "row " << i;
  if (expected.contains("sequences_scores")) {
    const auto scores = expected.at("sequences_scores").get<std::vector<double>>();
    ASSERT_EQ(out.sequences_scores.size(), scores.size());
    for (size_t i = 0; i < scores.size(); ++i) EXPECT_NEAR(out.sequences_scores[i], scores[i], 1e-4) << "row " << i;
  }
}

void check_generate(const Model& m, const json& c) {
  const auto out = generate(m, {c.at("input_ids").get<Ids>()}, config_from_args(c.at("args")));
  expect_sequences(out, c.at("output"));
}

void check_dist(const Model& m, const json& c) {
  const auto dist = next_token_distribution(m, c.at("input_ids").get<Ids>(), config_from_args(c.at("args")));
  const NpyArray want = read_npy(c.at("output").at("npy").get<std::string>());
  ASSERT_EQ(dist.size(), want.data.size());
  // Within 1e-6 plus 2e-6 of the probability: our logits differ from HF's in the last fp32 bits
  // (another summation order, which also differs between ISA levels), and a relative logit error
  // comes out as a relative error of the probability, scaled by 1 / temperature.
  double worst = 0;
  int nonzero = 0;
  for (size_t i = 0; i < dist.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(dist[i]) - want.data[i]) - 2e-6 * want.data[i]);
    nonzero += dist[i] != 0.0f;
  }
  EXPECT_LE(worst, 1e-6);
  EXPECT_EQ(nonzero, c.at("output").at("n_nonzero").get<int>());
}

void check_topn(const Model& m, const json& c) {
  std::vector<std::vector<float>> step_logits;
  GenerationCallbacks cb;
  cb.on_step_logits = [&](int, int, const float* l, int n) { step_logits.emplace_back(l, l + n); };
  const auto out = generate(m, {c.at("input_ids").get<Ids>()}, config_from_args(c.at("args")), cb);
  expect_sequences(out, c.at("output"));
  const auto& steps = c.at("output").at("steps");
  ASSERT_EQ(step_logits.size(), steps.size());
  for (size_t s = 0; s < steps.size(); ++s) {
    const auto ids = steps[s].at("ids").get<Ids>();
    const auto probs = steps[s].at("probs").get<std::vector<double>>();
    const auto p = softmax(step_logits[s].data(), static_cast<int>(step_logits[s].size()));
    std::vector<int32_t> order(p.size());
    for (size_t i = 0; i < p.size(); ++i) order[i] = static_cast<int32_t>(i);
    std::partial_sort(order.begin(), order.begin() + ids.size(), order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    for (size_t k = 0; k < ids.size(); ++k) {
      EXPECT_EQ(order[k], ids[k]) << "step " << s << " rank " << k;
      EXPECT_NEAR(p[ids[k]], probs[k], 1e-6) << "step " << s << " rank " << k;
    }
  }
}

void check_batch(const Model& m, const json& c) {
  const auto prompts = c.at("input_ids").get<std::vector<Ids>>();
  std::vector<std::vector<float>> first_logits(prompts.size());
  GenerationCallbacks cb;
  cb.on_step_logits = [&](int step, int row, const float* l, int n) {
    if (step == 0 && row < static_cast<int>(first_logits.size())) first_logits[row].assign(l, l + n);
  };
  const auto out = generate(m, prompts, config_from_args(c.at("args")), cb);
  expect_sequences(out, c.at("output"));
  if (c.at("output").contains("last_logits_npy")) {
    const NpyArray want = read_npy(c.at("output").at("last_logits_npy").get<std::string>());
    const size_t vocab = static_cast<size_t>(want.shape.at(1));
    for (size_t r = 0; r < prompts.size(); ++r) {
      ASSERT_EQ(first_logits[r].size(), vocab);
      double max_abs = 0, worst = 0;
      for (size_t v = 0; v < vocab; ++v) {
        max_abs = std::max(max_abs, std::abs(static_cast<double>(want.data[r * vocab + v])));
        worst = std::max(worst, std::abs(static_cast<double>(first_logits[r][v]) - want.data[r * vocab + v]));
      }
      EXPECT_LE(worst, 1e-4 * max_abs) << "row " << r;
    }
  }
}

class Parity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(Parity, MatchesHf) {
  const ParityCase& p = GetParam();
  std::string error;
  const Model* m = model_for(p, &error);
  if (!m) {
    if (p.arch == "gptj") GTEST_SKIP() << "Model::load rejects " << p.model << ": " << error;
    FAIL() << "Model::load(" << p.model << ") failed: " << error;
  }
  const std::string kind = p.c.at("kind");
  SCOPED_TRACE(p.c.at("id").get<std::string>() + " args " + p.c.at("args").dump());
  if (kind == "generate") check_generate(*m, p.c);
  else if (kind == "dist") check_dist(*m, p.c);
  else if (kind == "topn") check_topn(*m, p.c);
  else check_batch(*m, p.c);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::ValuesIn(all_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Parity);

TEST(FixtureDiscovery, FindsEveryModelsCases) {
  EXPECT_EQ(discovery_error(), "");
  // Each model in the manifest has generate/dist/topn/batch cases (tests/data/manifest.json).
  EXPECT_FALSE(all_cases().empty());
}

}  // namespace
}  // namespace lmforge::test
