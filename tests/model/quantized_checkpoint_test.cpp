// Folders written by `lmforge quantize`: int8 matrices with "<name>_scale" tensors, a mixed plan
// (some matrices in higher precision) and config.json's quantization_config; loading them back,
// with and without a dtype, and the bad inputs of such folders.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"
#include "lmforge/model/weights.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using kernels::WeightType;
using test::model_dir;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("lmforge_quant_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  return d;
}

// The fixture model quantized with `types` (and the matching quantization_config), saved to `dir`.
std::unique_ptr<Model> quantize_and_save(const std::string& fixture, const MatrixTypes& types,
                                         const QuantizationConfig& q, const fs::path& dir) {
  auto fp32 = Model::load(model_dir(fixture), WeightType::F32);
  ModelConfig cfg = fp32->config();
  cfg.quantization = q;
  auto quantized = Model::from_weights(cfg, convert_weights(cfg, fp32->weights(), types));
  save_pretrained(dir, cfg, quantized->weights());
  return quantized;
}

std::map<std::string, WeightType> slice_types(const Model& m) {
  std::map<std::string, WeightType> out;
  for (const auto& s : m.weights().slices) out[s.hf_name] = s.type;
  return out;
}

TEST(QuantizedCheckpoint, RoundTripKeepsThePlanAndTheWeights) {
  for (const std::string fixture : {"gpt2-tiny", "gptj-tiny"}) {
    const bool j = fixture == "gptj-tiny";
    QuantizationConfig q;
    q.scheme = "dynamic";
    MatrixTypes types(WeightType::I8_DYNAMIC);
    // One matrix in bf16 (GPT-J: the fused q/k/v, all three), one in fp32.
    const std::vector<std::string> bf16 = j ? std::vector<std::string>{"transformer.h.0.attn.q_proj", "transformer.h.0.attn.k_proj",
                                                                       "transformer.h.0.attn.v_proj"}
                                            : std::vector<std::string>{"transformer.h.0.attn.c_attn"};
    for (const auto& m : bf16) types.overrides[m] = WeightType::BF16, q.modules_in_higher_precision[m] = "bfloat16";
    const std::string f32 = j ? "transformer.h.1.mlp.fc_out" : "transformer.h.1.mlp.c_proj";
    types.overrides[f32] = WeightType::F32;
    q.modules_in_higher_precision[f32] = "float32";

    const fs::path dir = fresh_dir(fixture);
    const auto in_memory = quantize_and_save(fixture, types, q, dir);
    const Checkpoint ckpt = Checkpoint::open(dir);
    const std::string first = j ? "transformer.h.0.mlp.fc_in.weight" : "transformer.h.0.mlp.c_fc.weight";
    EXPECT_EQ(ckpt.get(first).dtype, DType::I8) << fixture;
    EXPECT_EQ(ckpt.get(first + "_scale").dtype, DType::F32) << fixture;
    EXPECT_EQ(ckpt.get(bf16.front() + ".weight").dtype, DType::BF16) << fixture;
    EXPECT_EQ(ckpt.get(f32 + ".weight").dtype, DType::F32) << fixture;

    const auto loaded = Model::load(dir);  // no dtype: the folder's own plan
    ASSERT_TRUE(loaded->config().quantization.has_value());
    EXPECT_EQ(loaded->config().quantization->modules_in_higher_precision, q.modules_in_higher_precision);
    EXPECT_EQ(slice_types(*loaded), slice_types(*in_memory)) << fixture;
    const std::vector<int32_t> ids = {1, 7, 42, 3, 99, 5};
    EXPECT_EQ(loaded->logits(ids), in_memory->logits(ids)) << fixture << ": the saved weights differ";
    fs::remove_all(dir);
  }
}

TEST(QuantizedCheckpoint, StaysCloseToFp32AndLoadsInAnyDtype) {
  const fs::path dir = fresh_dir("close");
  quantize_and_save("gpt2-tiny", MatrixTypes(WeightType::I8), QuantizationConfig{"weight_only", {}}, dir);
  const auto fp32 = Model::load(model_dir("gpt2-tiny"), WeightType::F32);
  const std::vector<int32_t> ids = {10, 20, 30, 40};
  const auto ref = fp32->logits(ids);
  float scale = 0;
  for (float v : ref) scale = std::max(scale, std::fabs(v));
  for (auto dtype : {std::optional<WeightType>{}, std::optional{WeightType::F32}, std::optional{WeightType::BF16},
                     std::optional{WeightType::I8_DYNAMIC}}) {
    const auto m = Model::load(dir, dtype);  // int8 tensors dequantized (or kept) as asked
    const auto got = m->logits(ids);
    float worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref[i]));
    EXPECT_LE(worst, 0.05f * scale) << (dtype ? kernels::to_string(*dtype) : "auto");
  }
  EXPECT_EQ(Model::load(dir)->weights().matrix_type, WeightType::I8);  // weight_only scheme
  fs::remove_all(dir);
}

// Rewrites model.safetensors of `dir` with `edit` applied to its tensor list.
void rewrite(const fs::path& dir, const std::function<void(std::vector<TensorToWrite>&)>& edit) {
  const Checkpoint ckpt = Checkpoint::open(dir);
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, t] : ckpt.tensors()) tensors.push_back({name, t.dtype, t.shape, t.data});
  edit(tensors);
  write_safetensors(dir / "model.safetensors.new", tensors);
  fs::rename(dir / "model.safetensors.new", dir / "model.safetensors");
}

void expect_error(const fs::path& dir, const std::string& needle) {
  try {
    Model::load(dir);
    ADD_FAILURE() << "no error, expected one mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(QuantizedCheckpoint, MissingOrMisshapedScalesAreNamed) {
  const std::string w = "transformer.h.0.mlp.c_fc.weight";
  {
    const fs::path dir = fresh_dir("missing");
    quantize_and_save("gpt2-tiny", MatrixTypes(WeightType::I8), QuantizationConfig{"weight_only", {}}, dir);
    rewrite(dir, [&](auto& t) { std::erase_if(t, [&](const TensorToWrite& x) { return x.name == w + "_scale"; }); });
    expect_error(dir, "has no scales '" + w + "_scale'");
    fs::remove_all(dir);
  }
  {
    const fs::path dir = fresh_dir("shape");
    quantize_and_save("gpt2-tiny", MatrixTypes(WeightType::I8), QuantizationConfig{"weight_only", {}}, dir);
    rewrite(dir, [&](auto& t) {
      for (auto& x : t)
        if (x.name == w + "_scale") x.shape = {x.shape[0] / 2};
    });
    expect_error(dir, "scales '" + w + "_scale' have shape [32], expected [64]");
    fs::remove_all(dir);
  }
  {
    const fs::path dir = fresh_dir("negative");
    quantize_and_save("gpt2-tiny", MatrixTypes(WeightType::I8), QuantizationConfig{"weight_only", {}}, dir);
    std::vector<float> bad(64, -1.0f);
    rewrite(dir, [&](auto& t) {
      for (auto& x : t)
        if (x.name == w + "_scale") x.data = bad.data();
    });
    expect_error(dir, "non-positive or non-finite");
    fs::remove_all(dir);
  }
}

TEST(QuantizedCheckpoint, BadQuantizationConfigIsNamed) {
  const fs::path dir = fresh_dir("config");
  quantize_and_save("gpt2-tiny", MatrixTypes(WeightType::I8), QuantizationConfig{"weight_only", {}}, dir);
  auto edit_config = [&](const std::function<void(nlohmann::json&)>& f) {
    nlohmann::json c = nlohmann::json::parse(std::ifstream(dir / "config.json"));
    f(c["quantization_config"]);
    std::ofstream(dir / "config.json") << c.dump(2);
  };
  edit_config([](nlohmann::json& q) { q["modules_in_higher_precision"] = {{"transformer.h.9.mlp.c_fc", "float32"}}; });
  expect_error(dir, "'transformer.h.9.mlp.c_fc' is not a weight matrix");
  edit_config([](nlohmann::json& q) { q["modules_in_higher_precision"] = {{"transformer.h.0.mlp.c_fc", "int4"}}; });
  expect_error(dir, "must be bfloat16, float16 or float32");
  edit_config([](nlohmann::json& q) { q["quant_method"] = "gptq"; });
  expect_error(dir, "quant_method \"gptq\" is not supported");
  fs::remove_all(dir);
}

TEST(QuantizedCheckpoint, DtypeTheKernelsCannotTakeIsRefused) {
  // fc_out of this model has more inputs than the int8 x int8 kernels' int32 sums allow.
  ModelConfig c;
  c.n_layer = 1;
  c.n_embd = 4;
  c.n_head = 1;
  c.n_inner = kernels::kMaxInt8DynamicK + 8;
  c.vocab_size = 16;
  c.n_positions = 8;
  try {
    allocate_weights(c, MatrixTypes(WeightType::I8_DYNAMIC));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("int8_dynamic is not supported for this model: 'transformer.h.0.mlp.c_proj.weight'"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(allocate_weights(c, MatrixTypes(WeightType::I8)));  // weight-only has no such limit
}

TEST(QuantizedCheckpoint, GptjQkvMustShareOneType) {
  MatrixTypes t(WeightType::I8);
  t.overrides["transformer.h.0.attn.q_proj"] = WeightType::BF16;
  auto fp32 = Model::load(model_dir("gptj-tiny"), WeightType::F32);
  try {
    convert_weights(fp32->config(), fp32->weights(), t);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q_proj, k_proj and v_proj must share one dtype"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lmforge
