// The HF fixture checkpoints: every model loads from safetensors and from .bin (single or
// sharded) with the names/shapes of tests/data/README.md and identical values; folder-level
// choice of files and sharding errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {
namespace {

using test::TempDir;
using test::ThrowsError;
namespace fs = std::filesystem;

nlohmann::json manifest_entry(const std::string& name) {
  std::ifstream in(test::data_dir() / "manifest.json");
  const auto manifest = nlohmann::json::parse(in);  // named: a range-for over a temporary's member dangles
  for (const auto& m : manifest.at("models"))
    if (m.at("name") == name) return m;
  throw std::runtime_error("no manifest entry " + name);
}

using Shapes = std::map<std::string, std::vector<int64_t>>;

// Every tensor HF's state_dict() holds for the model, with HF's shapes (GPT-2 Conv1D weights are
// [in, out]; GPT-J Linear weights [out, in]); lm_head.weight included.
Shapes expected_state_dict(const nlohmann::json& m) {
  const auto& c = m.at("config");
  const int64_t V = c.at("vocab_size"), P = c.at("n_positions"), E = c.at("n_embd"), L = c.at("n_layer"), I = 4 * E;
  Shapes s;
  s["transformer.wte.weight"] = {V, E};
  s["transformer.ln_f.weight"] = {E};
  s["transformer.ln_f.bias"] = {E};
  s["lm_head.weight"] = {V, E};
  for (int64_t l = 0; l < L; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    s[h + "ln_1.weight"] = {E};
    s[h + "ln_1.bias"] = {E};
    if (m.at("arch") == "gpt2") {
      s[h + "attn.c_attn.weight"] = {E, 3 * E};
      s[h + "attn.c_attn.bias"] = {3 * E};
      s[h + "attn.c_proj.weight"] = {E, E};
      s[h + "attn.c_proj.bias"] = {E};
      s[h + "ln_2.weight"] = {E};
      s[h + "ln_2.bias"] = {E};
      s[h + "mlp.c_fc.weight"] = {E, I};
      s[h + "mlp.c_fc.bias"] = {I};
      s[h + "mlp.c_proj.weight"] = {I, E};
      s[h + "mlp.c_proj.bias"] = {E};
    } else {
      for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"}) s[h + "attn." + p + ".weight"] = {E, E};
      s[h + "mlp.fc_in.weight"] = {I, E};
      s[h + "mlp.fc_in.bias"] = {I};
      s[h + "mlp.fc_out.weight"] = {E, I};
      s[h + "mlp.fc_out.bias"] = {E};
    }
  }
  if (m.at("arch") == "gpt2") {
    s["transformer.wpe.weight"] = {P, E};
  } else {
    s["lm_head.bias"] = {V};
  }
  return s;
}

Shapes shapes_of(const Checkpoint& ck) {
  Shapes s;
  for (const auto& [name, t] : ck.tensors()) s[name] = t.shape;
  return s;
}

DType stored_dtype(const nlohmann::json& m) {
  const std::string s = m.at("stored_dtype");
  return s == "float16" ? DType::F16 : s == "bfloat16" ? DType::BF16 : DType::F32;
}

struct Loaded {
  Checkpoint st, bin;
};

Loaded load_both(const nlohmann::json& m) {
  const fs::path dir = test::model_dir(m.at("name"));
  if (m.at("sharded"))
    return {Checkpoint::open_sharded_index(dir / "model.safetensors.index.json"),
            Checkpoint::open_sharded_index(dir / "pytorch_model.bin.index.json")};
  return {Checkpoint::open_safetensors(dir / "model.safetensors"), Checkpoint::open_torch_bin(dir / "pytorch_model.bin")};
}

class FixtureModel : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureModel, NamesAndShapesMatchHf) {
  const auto m = manifest_entry(GetParam());
  auto [st, bin] = load_both(m);
  Shapes all = expected_state_dict(m);
  // The .bin is the full state dict; safetensors drops a tied head (every GPT-2 fixture is tied).
  EXPECT_EQ(shapes_of(bin), all);
  if (m.at("arch") == "gpt2") all.erase("lm_head.weight");
  EXPECT_EQ(shapes_of(st), all);
  EXPECT_EQ(st.tensors().size(), m.at("n_safetensors_tensors").get<size_t>());
  for (const auto& [name, t] : st.tensors()) EXPECT_EQ(t.dtype, stored_dtype(m)) << name;
  for (const auto& [name, t] : bin.tensors()) EXPECT_EQ(t.dtype, stored_dtype(m)) << name;
}

TEST_P(FixtureModel, SafetensorsAndBinHoldIdenticalValues) {
  const auto m = manifest_entry(GetParam());
  auto [st, bin] = load_both(m);
  size_t compared = 0;
  for (const auto& [name, t] : st.tensors()) {
    ASSERT_TRUE(bin.has(name)) << name;
    const auto& b = bin.get(name);
    ASSERT_EQ(b.dtype, t.dtype) << name;
    ASSERT_EQ(b.shape, t.shape) << name;
    ASSERT_EQ(b.nbytes, t.nbytes) << name;
    ASSERT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * dtype_size(t.dtype)) << name;
    EXPECT_EQ(std::memcmp(b.data, t.data, t.nbytes), 0) << name;
    const auto fs_ = to_float32(t), fb = to_float32(b);
    ASSERT_EQ(fs_, fb) << name;
    for (float v : fs_) ASSERT_TRUE(std::isfinite(v)) << name;
    ++compared;
  }
  EXPECT_EQ(compared, st.tensors().size());
}

TEST_P(FixtureModel, TiedHeadSharesTheEmbeddingStorage) {
  const auto m = manifest_entry(GetParam());
  if (m.at("arch") != "gpt2") GTEST_SKIP() << "GPT-J heads are untied";
  auto [st, bin] = load_both(m);
  EXPECT_FALSE(st.has("lm_head.weight"));
  const auto& head = bin.get("lm_head.weight");
  const auto& wte = bin.get("transformer.wte.weight");
  EXPECT_EQ(head.data, wte.data);  // one storage in the zip, read once
  EXPECT_EQ(to_float32(head), to_float32(st.get("transformer.wte.weight")));
}

// F16 / BF16 fixtures: HF's outputs come from exact upcasts, so converting back must give the
// stored bits, and the .bin (same stored dtype) upcasts to the same floats (previous test).
TEST_P(FixtureModel, HalfPrecisionUpcastsAreExact) {
  const auto m = manifest_entry(GetParam());
  const DType dt = stored_dtype(m);
  if (dt == DType::F32) GTEST_SKIP() << "stored in float32";
  auto [st, bin] = load_both(m);
  for (const auto& [name, t] : st.tensors()) {
    const auto f = to_float32(t);
    for (size_t i = 0; i < f.size(); ++i) {
      uint16_t stored;
      std::memcpy(&stored, t.data + 2 * i, 2);
      ASSERT_EQ(dt == DType::F16 ? float_to_fp16(f[i]) : float_to_bf16(f[i]), stored) << name << "[" << i << "]";
    }
  }
}

TEST_P(FixtureModel, FolderOpenPrefersSafetensors) {
  const auto m = manifest_entry(GetParam());
  auto ck = Checkpoint::open(test::model_dir(m.at("name")));
  auto [st, bin] = load_both(m);
  EXPECT_EQ(shapes_of(ck), shapes_of(st));
  EXPECT_NE(ck.description().find("safetensors"), std::string::npos) << ck.description();
  EXPECT_NE(ck.description().find(m.at("name").get<std::string>()), std::string::npos) << ck.description();
}

INSTANTIATE_TEST_SUITE_P(AllModels, FixtureModel, ::testing::ValuesIn(test::model_names()),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

TEST(FixtureValues, MatchValuesReadIndependently) {
  // Values read from the safetensors files with Python's struct module, not with lmforge.
  auto tiny = Checkpoint::open_torch_bin(test::model_dir("gpt2-tiny") / "pytorch_model.bin");
  const auto wte = to_float32(tiny.get("transformer.wte.weight"));
  EXPECT_EQ(wte[0], 0.04099901020526886f);
  EXPECT_EQ(wte[1], -0.25964877009391785f);
  EXPECT_EQ(wte[804111], -0.19105538725852966f);
  auto gptj = Checkpoint::open_torch_bin(test::model_dir("gptj-tiny") / "pytorch_model.bin");
  const auto bias = to_float32(gptj.get("lm_head.bias"));
  EXPECT_EQ(bias[0], -0.06179219111800194f);
  EXPECT_EQ(bias[999], 0.18209290504455566f);
  auto bf = Checkpoint::open_torch_bin(test::model_dir("gpt2-bf16") / "pytorch_model.bin");
  const auto fc = to_float32(bf.get("transformer.h.1.mlp.c_fc.weight"));
  EXPECT_EQ(fc[0], bf16_to_float(0x3ef0));
  EXPECT_EQ(fc[5], bf16_to_float(0x3e9f));
  auto f16 = Checkpoint::open_torch_bin(test::model_dir("gpt2-f16") / "pytorch_model.bin");
  const auto lnf = to_float32(f16.get("transformer.ln_f.bias"));
  EXPECT_EQ(lnf[0], fp16_to_float(0xb0d1));
  EXPECT_EQ(lnf[31], fp16_to_float(0xb23b));
}

TEST(CheckpointLifetime, ViewsOutliveTheOriginalObject) {
  Checkpoint copy;
  {
    auto ck = Checkpoint::open(test::model_dir("gpt2-f16"));
    copy = ck;  // shares the mapping
  }
  Checkpoint moved = std::move(copy);
  EXPECT_EQ(to_float32(moved.get("transformer.ln_f.bias"))[0], fp16_to_float(0xb0d1));
}

// ---- folder selection ------------------------------------------------------------------------

void copy_files(const fs::path& from, const fs::path& to, const std::vector<std::string>& names) {
  for (const auto& n : names) fs::copy_file(from / n, to / n);
}

TEST(CheckpointOpen, MissingFolder) {
  TempDir dir;
  const auto p = dir / "no-such-model";
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(p); }, {p.string(), "not found"}));
  test::write_file(dir / "file", "x");
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir / "file"); }, {(dir / "file").string(), "not a folder"}));
}

TEST(CheckpointOpen, EmptyFolderListsWhatWasLookedFor) {
  TempDir dir;
  test::write_file(dir / "config.json", "{}");
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir.path()); },
                          {dir.path().string(), "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                           "pytorch_model.bin.index.json"}));
}

TEST(CheckpointOpen, FallsBackInHfOrder) {
  TempDir dir;
  const auto src = test::model_dir("gpt2-sharded");
  copy_files(src, dir.path(), {"pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"});
  auto ck = Checkpoint::open(dir.path());
  EXPECT_EQ(ck.description(), "2 shards of " + dir.path().filename().string() + "/pytorch_model.bin.index.json");
  EXPECT_TRUE(ck.has("lm_head.weight"));
  // A single .bin beats the sharded .bin ...
  fs::copy_file(test::model_dir("gpt2-f16") / "pytorch_model.bin", dir / "pytorch_model.bin");
  EXPECT_EQ(Checkpoint::open(dir.path()).description(), dir.path().filename().string() + "/pytorch_model.bin");
  // ... sharded safetensors beat any .bin ...
  copy_files(src, dir.path(), {"model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
  EXPECT_NE(Checkpoint::open(dir.path()).description().find("model.safetensors.index.json"), std::string::npos);
  // ... and a single safetensors file beats everything.
  fs::copy_file(test::model_dir("gpt2-f16") / "model.safetensors", dir / "model.safetensors");
  EXPECT_EQ(Checkpoint::open(dir.path()).description(), dir.path().filename().string() + "/model.safetensors");
}

// ---- sharding errors -------------------------------------------------------------------------

class ShardedCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& e : fs::directory_iterator(test::model_dir("gpt2-sharded")))
      if (e.path().extension() != ".jsonl" && e.is_regular_file()) fs::copy_file(e.path(), dir_ / e.path().filename().string());
  }
  void write_index(const std::string& file, const nlohmann::json& j) { test::write_file(dir_ / file, j.dump()); }
  nlohmann::json index(const std::string& file) { return nlohmann::json::parse(test::read_file(dir_ / file)); }
  TempDir dir_;
};

TEST_F(ShardedCopy, MissingShard) {
  fs::remove(dir_ / "model-00002-of-00002.safetensors");
  const auto idx = dir_ / "model.safetensors.index.json";
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir_.path()); }, {idx.string(), "model-00002-of-00002.safetensors", "missing"}));
  fs::remove(dir_ / "pytorch_model-00001-of-00002.bin");
  const auto bidx = dir_ / "pytorch_model.bin.index.json";
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open_sharded_index(bidx); }, {bidx.string(), "pytorch_model-00001-of-00002.bin", "missing"}));
}

TEST_F(ShardedCopy, ListedTensorAbsentFromShard) {
  for (const char* file : {"model.safetensors.index.json", "pytorch_model.bin.index.json"}) {
    auto j = index(file);
    j["weight_map"]["transformer.h.9.ghost"] = j["weight_map"]["transformer.wte.weight"];
    write_index(file, j);
    EXPECT_TRUE(ThrowsError([&] { Checkpoint::open_sharded_index(dir_ / file); },
                            {(dir_ / file).string(), "transformer.h.9.ghost", "absent"}));
  }
}

TEST_F(ShardedCopy, TensorsComeFromTheShardTheIndexNames) {
  auto ck = Checkpoint::open_sharded_index(dir_ / "model.safetensors.index.json");
  EXPECT_EQ(ck.get("transformer.wte.weight").source, (dir_ / "model-00002-of-00002.safetensors").string());
  EXPECT_EQ(ck.get("transformer.wpe.weight").source, (dir_ / "model-00001-of-00002.safetensors").string());
  EXPECT_EQ(ck.tensors().size(), 28u);
}

TEST_F(ShardedCopy, MalformedIndex) {
  const auto idx = dir_ / "model.safetensors.index.json";
  test::write_file(idx, "{\"weight_map\": {");
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir_.path()); }, {idx.string(), "not valid JSON"}));
  write_index("model.safetensors.index.json", {{"metadata", {}}});
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir_.path()); }, {idx.string(), "weight_map"}));
  write_index("model.safetensors.index.json", {{"weight_map", {{"w", 3}}}});
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir_.path()); }, {idx.string(), "'w'"}));
  write_index("model.safetensors.index.json", {{"weight_map", nlohmann::json::object()}});
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir_.path()); }, {idx.string(), "empty"}));
  // Shards must live next to the index.
  write_index("model.safetensors.index.json", {{"weight_map", {{"w", "../model-00001-of-00002.safetensors"}}}});
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir_.path()); }, {idx.string(), "invalid shard"}));
  write_index("model.safetensors.index.json", {{"weight_map", {{"w", "weights.npz"}}}});
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir_.path()); }, {idx.string(), "neither"}));
}

TEST_F(ShardedCopy, CorruptShardIsNamed) {
  const auto shard = dir_ / "model-00001-of-00002.safetensors";
  const std::string bytes = test::read_file(shard);
  test::write_file(shard, bytes.substr(0, bytes.size() - 4));
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open(dir_.path()); }, {shard.string(), "beyond"}));
}

}  // namespace
}  // namespace lmforge
