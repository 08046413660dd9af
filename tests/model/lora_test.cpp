// LoRA adapters at inference and on disk, against the PEFT fixtures (tests/data/lora/README.md):
// unmerged logits, merged weights and logits, PEFT's adapter_config.json / safetensors layout, the
// targets peft's defaults and suffix rule pick, and every bad adapter folder.
#include "lmforge/model/lora.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "common/error_of.h"
#include "common/fixtures.h"
#include "common/lora_fixture.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"
#include "model/ragged_batch.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_dir;
using test::error_of;
using test::read_npy;

using test::lora_case;
using test::lora_dir;

fs::path base_dir(const json& c) { return data_dir() / c["model"].get<std::string>(); }
fs::path adapter_dir(const json& c) { return lora_dir() / c["adapter_dir"].get<std::string>(); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("lmforge_lora_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                        "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Rows `positions` of logits [T, V] against the fixture array `rows` [n, V].
void expect_logits(const std::vector<float>& logits, const json& positions, const test::NpyArray& want, float tol,
                   const std::string& what) {
  const size_t V = static_cast<size_t>(want.shape[1]);
  float worst = 0;
  for (size_t i = 0; i < positions.size(); ++i) {
    const size_t p = positions[i].get<size_t>();
    for (size_t v = 0; v < V; ++v) worst = std::max(worst, std::abs(logits[p * V + v] - want.data[i * V + v]));
  }
  EXPECT_LE(worst, tol) << what;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::vector<int32_t> prompt_of(const json& c) { return c["prompt_ids"].get<std::vector<int32_t>>(); }

class LoraInference : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraInference, UnmergedAdapterGivesPeftsLogits) {
  const json c = lora_case(GetParam());
  const auto base = Model::load(base_dir(c));
  auto adapter = std::make_shared<LoraAdapter>(load_lora_adapter(adapter_dir(c), base->config()));
  const auto tuned = base->with_adapter(adapter);
  const float tol = 1e-4f * c["output"]["max_abs_logit"].get<float>();
  const auto want = read_npy(lora_dir() / c["output"]["arrays"]["logits_lora"].get<std::string>());
  expect_logits(tuned->logits(prompt_of(c)), c["logit_positions"], want, tol, "unmerged");
  // The base it shares is untouched (same weights object, no adapter).
  EXPECT_EQ(&tuned->weights(), &base->weights());
  EXPECT_EQ(base->adapter(), nullptr);
  if (c["output"]["arrays"].contains("logits_base")) {
    const auto plain = read_npy(lora_dir() / c["output"]["arrays"]["logits_base"].get<std::string>());
    expect_logits(base->logits(prompt_of(c)), c["logit_positions"], plain, tol, "base");
  }
  EXPECT_NE(error_of([&] { tuned->with_adapter(adapter); }).find("already has a LoRA adapter"), std::string::npos);
}

// Runs `ids` through ragged_forward, `chunk` tokens per step, beside `other` fed one token per step;
// all-position logits of `ids`.
std::vector<float> ragged_logits(const Model& m, const std::vector<int32_t>& ids, int chunk,
                                 const std::vector<int32_t>& other) {
  const ModelConfig& cfg = m.config();
  BlockPool pool(cfg.n_layer, cfg.n_embd, 4, 128);
  PagedRow a, b;
  a.blocks = *pool.take(pool.blocks_for(static_cast<int>(ids.size())));
  b.blocks = *pool.take(pool.blocks_for(static_cast<int>(other.size())));
  const int V = m.vocab_size(), n = static_cast<int>(ids.size());
  std::vector<float> logits(static_cast<size_t>(n) * V), other_logits(static_cast<size_t>(V));
  std::vector<int32_t> pos(std::max(n, static_cast<int>(other.size())));
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<uint8_t> mask(pos.size(), 1);
  RaggedScratch scratch;
  for (int fed = 0, step = 0; fed < n; ++step) {
    const int k = std::min(chunk, n - fed);
    std::vector<RaggedSegment> segs = {{&a, k, ids.data() + fed, pos.data() + fed, mask.data(),
                                        logits.data() + static_cast<size_t>(fed) * V, true}};
    if (step < static_cast<int>(other.size()))
      segs.push_back({&b, 1, other.data() + step, pos.data() + step, mask.data(), other_logits.data(), false});
    ragged_forward(m, pool, segs, scratch);
    fed += k;
  }
  return logits;
}

// The continuous batcher's step (model/ragged_batch.h) with an adapter: PEFT's logits, and the same
// bits alone or chunked beside another sequence (the adapter's products are row-invariant too).
TEST_P(LoraInference, RaggedStepWithAdapterGivesPeftsLogitsInAnyBatch) {
  const json c = lora_case(GetParam());
  const auto base = Model::load(base_dir(c));
  const auto tuned = base->with_adapter(std::make_shared<LoraAdapter>(load_lora_adapter(adapter_dir(c), base->config())));
  const auto ids = prompt_of(c);
  const auto alone = ragged_logits(*tuned, ids, 1 << 20, {});
  const auto crowd = ragged_logits(*tuned, ids, 3, {7, 1, 4, 4, 2});
  const float tol = 1e-4f * c["output"]["max_abs_logit"].get<float>();
  const auto want = read_npy(lora_dir() / c["output"]["arrays"]["logits_lora"].get<std::string>());
  expect_logits(alone, c["logit_positions"], want, tol, "ragged");
  ASSERT_EQ(alone.size(), crowd.size());
  EXPECT_EQ(std::memcmp(alone.data(), crowd.data(), alone.size() * sizeof(float)), 0);
}

TEST_P(LoraInference, BatchedGenerationRowsMatchSingleRows) {
  // The adapter's extra products run on the batch like the base's: a row's logits do not depend on
  // its neighbour (to float rounding: prefill of 10 and of 20 rows take different GEMM paths).
  const json c = lora_case(GetParam());
  const auto base = Model::load(base_dir(c));
  const auto tuned = base->with_adapter(std::make_shared<LoraAdapter>(load_lora_adapter(adapter_dir(c), base->config())));
  const auto ids = prompt_of(c);
  const int T = static_cast<int>(ids.size()), V = base->config().vocab_size;
  auto s = tuned->start(2, T);
  std::vector<int32_t> tokens(ids), pos(2 * T);
  tokens.insert(tokens.end(), ids.rbegin(), ids.rend());
  for (int i = 0; i < 2 * T; ++i) pos[i] = i % T;
  std::vector<uint8_t> mask(2 * T, 1);
  std::vector<float> logits(static_cast<size_t>(2) * T * V);
  s->forward(T, tokens.data(), pos.data(), mask.data(), logits.data(), true);
  const auto single = tuned->logits(ids);
  ASSERT_EQ(single.size(), static_cast<size_t>(T) * V);
  EXPECT_LE(max_diff(std::vector<float>(logits.begin(), logits.begin() + static_cast<size_t>(T) * V), single),
            1e-5f * c["output"]["max_abs_logit"].get<float>());
}

TEST_P(LoraInference, MergeEqualsThePeftMergedFolder) {
  const json c = lora_case(GetParam());
  const fs::path dir = base_dir(c);
  const ModelConfig cfg = load_model_config(dir / "config.json");
  ModelWeights w = allocate_weights(cfg);
  load_weights(Checkpoint::open(dir), cfg, w);
  merge_lora(load_lora_adapter(adapter_dir(c), cfg), w);
  // Every tensor equals the merged folder's W + delta (Conv1D's delta transposed) to float rounding.
  ModelWeights ref = allocate_weights(cfg);
  load_weights(Checkpoint::open(lora_dir() / c["merged_dir"].get<std::string>()), cfg, ref);
  float worst = 0, biggest = 0;
  for (size_t i = 0; i < w.params.size(); ++i) {
    worst = std::max(worst, std::abs(w.params[i] - ref.params[i]));
    biggest = std::max(biggest, std::abs(ref.params[i]));
  }
  EXPECT_LE(worst, 1e-6f * biggest);
  // Saved as a plain HF folder, it reloads to the same logits as the unmerged adapter.
  TempDir tmp;
  save_pretrained(tmp.path, cfg, w);
  const auto merged = Model::load(tmp.path);
  const auto want = read_npy(lora_dir() / c["output"]["arrays"]["logits_lora"].get<std::string>());
  expect_logits(merged->logits(prompt_of(c)), c["logit_positions"], want,
                1e-4f * c["output"]["max_abs_logit"].get<float>(), "merged");
  if (c["output"]["arrays"].contains("logits_merged")) {
    const auto peft_merged = read_npy(lora_dir() / c["output"]["arrays"]["logits_merged"].get<std::string>());
    expect_logits(merged->logits(prompt_of(c)), c["logit_positions"], peft_merged,
                  1e-4f * c["output"]["max_abs_logit"].get<float>(), "merged vs peft merged");
  }
}

TEST_P(LoraInference, SavedAdapterIsPeftsFileByteForByte) {
  const json c = lora_case(GetParam());
  const ModelConfig cfg = load_model_config(base_dir(c) / "config.json");
  const LoraAdapter a = load_lora_adapter(adapter_dir(c), cfg);
  TempDir tmp;
  save_lora_adapter(tmp.path, a);
  EXPECT_EQ(read_file(tmp.path / "adapter_model.safetensors"), read_file(adapter_dir(c) / "adapter_model.safetensors"));
  EXPECT_EQ(json::parse(read_file(tmp.path / "adapter_config.json")),
            json::parse(read_file(adapter_dir(c) / "adapter_config.json")));
}

INSTANTIATE_TEST_SUITE_P(Arch, LoraInference, ::testing::Values("gpt2", "gptj"));

// ---- layout and targets ------------------------------------------------------------------------

ModelConfig config_of(const std::string& arch) { return load_model_config(base_dir(lora_case(arch)) / "config.json"); }

std::vector<std::string> module_names(const LoraAdapter& a) {
  std::vector<std::string> v;
  for (const auto& m : a.modules) v.push_back(m.name);
  return v;
}

TEST(LoraLayout, PeftDefaultTargetsAndSuffixRule) {
  const ModelConfig j = config_of("gptj"), g = config_of("gpt2");
  EXPECT_EQ(module_names(make_lora_adapter(j, {})),
            (std::vector<std::string>{"transformer.h.0.attn.q_proj", "transformer.h.0.attn.v_proj",
                                      "transformer.h.1.attn.q_proj", "transformer.h.1.attn.v_proj"}));
  const LoraAdapter ga = make_lora_adapter(g, {});
  EXPECT_EQ(module_names(ga), (std::vector<std::string>{"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"}));
  EXPECT_TRUE(ga.config.fan_in_fan_out);
  // "c_proj" is a suffix of both attn.c_proj and mlp.c_proj, as in peft; "mlp.c_proj" only of one.
  LoraConfig lc;
  lc.target_modules = {"c_proj"};
  EXPECT_EQ(make_lora_adapter(g, lc).modules.size(), 4u);
  lc.target_modules = {"mlp.c_proj"};
  const LoraAdapter mlp = make_lora_adapter(g, lc);
  ASSERT_EQ(mlp.modules.size(), 2u);
  EXPECT_EQ(mlp.modules[0].in, g.inner_dim());
  EXPECT_EQ(mlp.modules[0].rows, g.n_embd);
  // Fused q/k/v: k_proj adds to rows [E, 2E).
  lc.target_modules = {"k_proj"};
  lc.layers_to_transform = {1};
  const LoraAdapter k = make_lora_adapter(j, lc);
  ASSERT_EQ(k.modules.size(), 1u);
  EXPECT_EQ(k.modules[0].layer, 1);
  EXPECT_EQ(k.modules[0].row0, j.n_embd);
  EXPECT_EQ(k.params.size(), static_cast<size_t>(8) * j.n_embd * 2);
}

TEST(LoraLayout, InitIsKaimingUniformAForZeroB) {
  const ModelConfig j = config_of("gptj");
  LoraAdapter a = make_lora_adapter(j, {});
  init_lora_weights(a, 1);
  const float bound = 1.0f / std::sqrt(static_cast<float>(j.n_embd));
  for (const auto& m : a.modules) {
    float lo = 0, hi = 0;
    for (size_t i = 0; i < static_cast<size_t>(a.config.r) * m.in; ++i) {
      lo = std::min(lo, a.A(m)[i]);
      hi = std::max(hi, a.A(m)[i]);
    }
    EXPECT_GE(lo, -bound);
    EXPECT_LE(hi, bound);
    EXPECT_LT(lo, -0.8f * bound);  // spread over the whole interval
    EXPECT_GT(hi, 0.8f * bound);
    for (size_t i = 0; i < static_cast<size_t>(m.rows) * a.config.r; ++i) ASSERT_EQ(a.B(m)[i], 0.0f);
  }
  LoraAdapter b = make_lora_adapter(j, {});
  init_lora_weights(b, 1);
  EXPECT_EQ(a.params, b.params);
}

TEST(LoraLayout, BadConfigurationsNameTheProblem) {
  const ModelConfig j = config_of("gptj");
  LoraConfig lc;
  lc.target_modules = {"q_proj", "qproj"};
  const std::string e = error_of([&] { make_lora_adapter(j, lc); });
  EXPECT_NE(e.find("'qproj' matches no linear layer"), std::string::npos) << e;
  EXPECT_NE(e.find("q_proj, k_proj, v_proj, out_proj, fc_in, fc_out"), std::string::npos) << e;
  lc = {};
  lc.r = 0;
  EXPECT_NE(error_of([&] { make_lora_adapter(j, lc); }).find("r must be a positive integer, got 0"), std::string::npos);
  lc = {};
  lc.lora_alpha = 0;
  EXPECT_NE(error_of([&] { make_lora_adapter(j, lc); }).find("lora_alpha must be > 0"), std::string::npos);
  lc = {};
  lc.lora_dropout = 1;
  EXPECT_NE(error_of([&] { make_lora_adapter(j, lc); }).find("lora_dropout must be in [0, 1)"), std::string::npos);
  lc = {};
  lc.layers_to_transform = {5};
  EXPECT_NE(error_of([&] { make_lora_adapter(j, lc); }).find("layer 5 does not exist"), std::string::npos);
}

// ---- bad adapter folders -----------------------------------------------------------------------

// A copy of the gptj fixture adapter with its config edited by `edit`.
fs::path edited_adapter(const TempDir& tmp, const std::function<void(json&)>& edit) {
  const fs::path from = adapter_dir(lora_case("gptj"));
  fs::copy(from, tmp.path / "adapter", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  json j = json::parse(read_file(from / "adapter_config.json"));
  edit(j);
  std::ofstream(tmp.path / "adapter" / "adapter_config.json") << j.dump(2);
  return tmp.path / "adapter";
}

TEST(LoraLoad, RefusesAdaptersThatDoNotFitTheBase) {
  TempDir tmp;
  const ModelConfig gptj = config_of("gptj");
  // An adapter of another model: its tensors name modules this architecture does not have.
  std::string e = error_of([&] { load_lora_adapter(adapter_dir(lora_case("gpt2")), gptj); });
  EXPECT_NE(e.find("adapter_config.json: LoRA target_modules (c_attn) match no linear layer of this GPT-J model"),
            std::string::npos)
      << e;
  // A GPT-J adapter on a deeper GPT-J: tensors of layers it does not have are fine the other way
  // round only; a shallower base has no place for layer 1's tensors.
  ModelConfig shallow = gptj;
  shallow.n_layer = 1;
  e = error_of([&] { load_lora_adapter(adapter_dir(lora_case("gptj")), shallow); });
  EXPECT_NE(e.find("unexpected tensor 'base_model.model.transformer.h.1.attn.q_proj.lora_A.weight'"), std::string::npos)
      << e;
  // Same names, wrong shape: a base with another width.
  ModelConfig wide = gptj;
  wide.n_embd *= 2;
  e = error_of([&] { load_lora_adapter(adapter_dir(lora_case("gptj")), wide); });
  EXPECT_NE(e.find("tensor 'base_model.model.transformer.h.0.attn.q_proj.lora_A.weight' has shape [4, 64], the base "
                   "model needs [4, 128]"),
            std::string::npos)
      << e;
  // The config asks for a rank the tensors do not have.
  e = error_of([&] { load_lora_adapter(edited_adapter(tmp, [](json& j) { j["r"] = 8; }), gptj); });
  EXPECT_NE(e.find("has shape [4, 64], the base model needs [8, 64]"), std::string::npos) << e;
  // Targets without tensors.
  e = error_of([&] {
    load_lora_adapter(edited_adapter(tmp, [](json& j) { j["target_modules"] = {"q_proj", "v_proj", "k_proj"}; }), gptj);
  });
  EXPECT_NE(e.find("'base_model.model.transformer.h.0.attn.k_proj.lora_A.weight' is missing"), std::string::npos) << e;
}

TEST(LoraLoad, RefusesWhatLmforgeDoesNotImplement) {
  TempDir tmp;
  const ModelConfig j = config_of("gptj");
  auto err = [&](const std::function<void(json&)>& edit) {
    return error_of([&] { load_lora_adapter(edited_adapter(tmp, edit), j); });
  };
  EXPECT_NE(err([](json& c) { c["peft_type"] = "IA3"; }).find("peft_type is 'IA3'"), std::string::npos);
  EXPECT_NE(err([](json& c) { c["use_dora"] = true; }).find("use_dora"), std::string::npos);
  EXPECT_NE(err([](json& c) { c["bias"] = "all"; }).find("bias 'all'"), std::string::npos);
  EXPECT_NE(err([](json& c) { c["modules_to_save"] = {"lm_head"}; }).find("'modules_to_save' is not supported"),
            std::string::npos);
  EXPECT_NE(err([](json& c) { c["rank_pattern"] = {{"q_proj", 8}}; }).find("'rank_pattern'"), std::string::npos);
  EXPECT_NE(err([](json& c) { c["lora_alpha"] = "eight"; }).find("'lora_alpha' has the wrong type"), std::string::npos);
  EXPECT_NE(err([](json& c) { c["r"] = -1; }).find("r must be a positive integer"), std::string::npos);
  // Numbers that are not ints: one error, not a cast past int's range (found by fuzz_lora: r = 1.8e20).
  EXPECT_NE(err([](json& c) { c["r"] = 1.8446744073709552e20; }).find("key 'r' must be an integer"), std::string::npos);
  EXPECT_NE(err([](json& c) { c["r"] = 4.5; }).find("key 'r' must be an integer"), std::string::npos);
  EXPECT_NE(err([](json& c) { c["r"] = 3000000000u; }).find("key 'r' must be an integer"), std::string::npos);
  EXPECT_NE(err([](json& c) { c["layers_to_transform"] = {0, 1e30}; }).find("layers_to_transform[] must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_lora_adapter(tmp.path / "nowhere", j); }).find("is not a folder"), std::string::npos);
  fs::create_directories(tmp.path / "empty");
  EXPECT_NE(error_of([&] { load_lora_adapter(tmp.path / "empty", j); }).find("adapter_config.json: no such file"),
            std::string::npos);
  fs::remove(tmp.path / "adapter" / "adapter_model.safetensors");
  std::ofstream(tmp.path / "adapter" / "adapter_config.json") << read_file(adapter_dir(lora_case("gptj")) / "adapter_config.json");
  EXPECT_NE(error_of([&] { load_lora_adapter(tmp.path / "adapter", j); }).find("no adapter_model.safetensors"),
            std::string::npos);
}

TEST(LoraLoad, RegexTargetsAndLayersToTransformAsPeftReadsThem) {
  TempDir tmp;
  const ModelConfig j = config_of("gptj");
  // A string target_modules is a full-match regular expression.
  const LoraAdapter a = load_lora_adapter(
      edited_adapter(tmp, [](json& c) { c["target_modules"] = R"(.*\.(q_proj|v_proj))"; }), j);
  EXPECT_EQ(a.modules.size(), 4u);
  EXPECT_EQ(a.params, load_lora_adapter(adapter_dir(lora_case("gptj")), j).params);
}

TEST(LoraMerge, RefusesLowPrecisionMatrices) {
  const json c = lora_case("gptj");
  const ModelConfig cfg = load_model_config(base_dir(c) / "config.json");
  ModelWeights w = allocate_weights(cfg, MatrixTypes(kernels::WeightType::I8));
  load_weights(Checkpoint::open(base_dir(c)), cfg, w);
  EXPECT_NE(error_of([&] { merge_lora(load_lora_adapter(adapter_dir(c), cfg), w); }).find("not held in float32"),
            std::string::npos);
}

}  // namespace
}  // namespace lmforge
