// write_random_checkpoint (used by `lmforge init` and bench/make_random_checkpoint): the folder
// against HF-written fixtures of the same shape (config.json keys, safetensors headers), the
// tensor list against the loader's own plan, initialisation statistics, HF's sharding rule,
// stored dtypes, loading, and what a failure or an existing folder leaves behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/model.h"
#include "lmforge/model/random_checkpoint.h"
#include "lmforge/model/weights.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::model_dir;
using test::read_file;
using test::TempDir;
using test::ThrowsError;
using test::write_file;

json read_json(const fs::path& p) { return json::parse(read_file(p)); }

// The parsed JSON header of a safetensors file.
json safetensors_header(const fs::path& file) {
  const std::string bytes = read_file(file);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return json::parse(bytes.substr(8, n));
}

// Every key HF wrote must be there with HF's value (transformers_version aside; we may add keys
// of the published configs, such as n_ctx or task_specific_params).
void expect_superset_of_hf(const json& ours, const json& hf, const std::string& what) {
  for (auto it = hf.begin(); it != hf.end(); ++it) {
    if (it.key() == "transformers_version") continue;
    ASSERT_TRUE(ours.contains(it.key())) << what << " lacks " << it.key();
    EXPECT_EQ(ours[it.key()], it.value()) << what << " key " << it.key();
  }
}

ShapeOverrides small_gpt2() {
  ShapeOverrides o;
  o.n_layer = 2, o.n_head = 4, o.n_embd = 32, o.n_positions = 64, o.vocab_size = 1000;
  return o;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

TEST(RandomCheckpoint, SameLayoutAsHfForTheSameShapeBf16) {
  TempDir tmp;
  const ModelConfig c = random_checkpoint_config("gpt2", small_gpt2());
  RandomCheckpointOptions o;
  o.dtype = DType::BF16;
  const auto sum = write_random_checkpoint(tmp / "m", c, o);
  const fs::path hf = model_dir("gpt2-bf16");  // HF save_pretrained of this shape, stored in bf16
  EXPECT_EQ(files_in(tmp / "m"), (std::vector<std::string>{"config.json", "generation_config.json", "model.safetensors"}));
  EXPECT_EQ(files_in(tmp.path()), std::vector<std::string>{"m"});  // no staging folder left
  expect_superset_of_hf(read_json(tmp / "m" / "config.json"), read_json(hf / "config.json"), "config.json");
  expect_superset_of_hf(read_json(tmp / "m" / "generation_config.json"), read_json(hf / "generation_config.json"),
                        "generation_config.json");
  // Same tensors, dtypes, shapes and byte offsets as the file HF wrote.
  EXPECT_EQ(safetensors_header(tmp / "m" / "model.safetensors"), safetensors_header(hf / "model.safetensors"));
  EXPECT_EQ(sum.weight_files, std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(sum.tensor_bytes, 2u * static_cast<uint64_t>(sum.parameters));
}

TEST(RandomCheckpoint, GptjSameLayoutAsHfAndLoads) {
  TempDir tmp;
  ShapeOverrides ov;
  ov.n_layer = 2, ov.n_head = 4, ov.n_embd = 64, ov.n_positions = 128, ov.vocab_size = 1000, ov.rotary_dim = 8;
  const ModelConfig c = random_checkpoint_config("gpt-j-6b", ov);
  write_random_checkpoint(tmp / "j", c, {});
  const fs::path hf = model_dir("gptj-tiny");
  expect_superset_of_hf(read_json(tmp / "j" / "config.json"), read_json(hf / "config.json"), "config.json");
  EXPECT_EQ(safetensors_header(tmp / "j" / "model.safetensors"), safetensors_header(hf / "model.safetensors"));
  auto m = Model::load(tmp / "j");
  for (float v : m->logits({1, 2, 3})) ASSERT_TRUE(std::isfinite(v));
}

// Mean and standard deviation of a float32 tensor.
std::pair<double, double> stats(const TensorView& t) {
  const size_t n = t.nbytes / 4;
  double s = 0, s2 = 0;
  for (size_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, t.data + 4 * i, 4);
    s += v, s2 += double(v) * v;
  }
  const double mean = s / n;
  return {mean, std::sqrt(s2 / n - mean * mean)};
}

TEST(RandomCheckpoint, TensorsAreTheLoadersAndInitialisedAsHf) {
  TempDir tmp;
  ShapeOverrides ov = small_gpt2();
  ov.n_embd = 64;
  const ModelConfig c = random_checkpoint_config("gpt2", ov);
  write_random_checkpoint(tmp / "m", c, {});
  const Checkpoint ck = Checkpoint::open(tmp / "m");
  // Exactly the tensors (names, [in, out] Conv1D shapes) lmforge's loader expects.
  const ModelWeights w = allocate_weights(c);
  ASSERT_EQ(ck.tensors().size(), w.slices.size());
  for (const auto& s : w.slices) {
    ASSERT_TRUE(ck.has(s.hf_name)) << s.hf_name;
    EXPECT_EQ(ck.get(s.hf_name).shape, s.hf_shape) << s.hf_name;
    EXPECT_EQ(ck.get(s.hf_name).dtype, DType::F32);
  }
  // HF's _init_weights: N(0, 0.02), c_proj N(0, 0.02 / sqrt(2 n_layer)), LN gain 1, biases 0.
  auto [m, sd] = stats(ck.get("transformer.wte.weight"));  // 64000 values
  EXPECT_NEAR(m, 0.0, 0.0005);
  EXPECT_NEAR(sd, 0.02, 0.0005);
  std::tie(m, sd) = stats(ck.get("transformer.h.1.mlp.c_proj.weight"));
  EXPECT_NEAR(sd, 0.02 / 2.0, 0.0004);
  EXPECT_EQ(stats(ck.get("transformer.h.0.ln_1.weight")), std::make_pair(1.0, 0.0));
  EXPECT_EQ(stats(ck.get("transformer.h.0.attn.c_attn.bias")), std::make_pair(0.0, 0.0));
  // Distinct tensors get distinct values.
  const auto& a = ck.get("transformer.h.0.attn.c_proj.weight");
  const auto& b = ck.get("transformer.h.1.attn.c_proj.weight");
  EXPECT_NE(std::memcmp(a.data, b.data, a.nbytes), 0);
  EXPECT_TRUE(verify_random_checkpoint(tmp / "m", c, {}).find("forward") != std::string::npos);
}

TEST(RandomCheckpoint, SeedDeterminesTheBytesAndDtypesRoundTheSameValues) {
  TempDir tmp;
  const ModelConfig c = random_checkpoint_config("gpt2", small_gpt2());
  RandomCheckpointOptions o;
  write_random_checkpoint(tmp / "a", c, o);
  write_random_checkpoint(tmp / "b", c, o);
  o.seed = 7;
  write_random_checkpoint(tmp / "c", c, o);
  const std::string a = read_file(tmp / "a" / "model.safetensors");
  EXPECT_EQ(a, read_file(tmp / "b" / "model.safetensors"));
  EXPECT_NE(a, read_file(tmp / "c" / "model.safetensors"));
  // The fp16 file holds the fp32 file's values rounded to fp16 (io's round-to-nearest-even).
  o.seed = 42;
  o.dtype = DType::F16;
  write_random_checkpoint(tmp / "h", c, o);
  const Checkpoint f32 = Checkpoint::open(tmp / "a"), f16 = Checkpoint::open(tmp / "h");
  EXPECT_EQ(read_json(tmp / "h" / "config.json")["torch_dtype"], "float16");
  const TensorView& x = f32.get("transformer.wte.weight");
  const TensorView& y = f16.get("transformer.wte.weight");
  ASSERT_EQ(y.dtype, DType::F16);
  for (size_t i = 0; i < 1000; ++i) {
    float v;
    uint16_t h;
    std::memcpy(&v, x.data + 4 * i, 4);
    std::memcpy(&h, y.data + 2 * i, 2);
    ASSERT_EQ(h, float_to_fp16(v)) << i;
  }
}

// huggingface_hub's split_state_dict_into_shards, written out here from its documentation: in
// state-dict order, a tensor bigger than the limit alone in a shard (added at once), else a new
// shard when the next tensor would tip the current one over.
std::map<std::string, int> hf_split(const ModelWeights& w, uint64_t max_bytes, int* shards) {
  std::vector<std::vector<std::string>> list;
  std::vector<std::string> cur;
  uint64_t cur_size = 0;
  for (const auto& s : w.slices) {
    uint64_t size = 4;
    for (auto d : s.hf_shape) size *= d;
    if (size > max_bytes) {
      list.push_back({s.hf_name});
      continue;
    }
    if (cur_size + size > max_bytes) list.push_back(cur), cur.clear(), cur_size = 0;
    cur.push_back(s.hf_name);
    cur_size += size;
  }
  if (!cur.empty()) list.push_back(cur);
  std::map<std::string, int> where;
  for (size_t i = 0; i < list.size(); ++i)
    for (const auto& n : list[i]) where[n] = static_cast<int>(i) + 1;
  *shards = static_cast<int>(list.size());
  return where;
}

TEST(RandomCheckpoint, ShardsAsHuggingfaceHubAndLoadsTheSameValues) {
  TempDir tmp;
  const ModelConfig c = random_checkpoint_config("gpt2", small_gpt2());
  RandomCheckpointOptions o;
  o.max_shard_bytes = 60000;  // wte (128000 bytes) is over the limit: alone in its shard
  const auto sum = write_random_checkpoint(tmp / "s", c, o);
  int n = 0;
  const auto expected = hf_split(allocate_weights(c), o.max_shard_bytes, &n);
  ASSERT_GT(n, 2);
  ASSERT_EQ(sum.weight_files.size(), static_cast<size_t>(n));
  const json index = read_json(tmp / "s" / "model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"], sum.tensor_bytes);
  ASSERT_EQ(index["weight_map"].size(), expected.size());
  char name[64];
  for (const auto& [tensor, shard] : expected) {
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", shard, n);
    EXPECT_EQ(index["weight_map"][tensor], name) << tensor;
    EXPECT_TRUE(safetensors_header(tmp / "s" / name).contains(tensor)) << tensor;
  }
  EXPECT_FALSE(fs::exists(tmp / "s" / "model.safetensors"));
  // Sharding changes where the bytes are, not what they are.
  o.max_shard_bytes = 5'000'000'000;
  write_random_checkpoint(tmp / "one", c, o);
  const Checkpoint sharded = Checkpoint::open(tmp / "s"), single = Checkpoint::open(tmp / "one");
  for (const auto& [tensor, view] : single.tensors()) {
    const TensorView& t = sharded.get(tensor);
    ASSERT_EQ(t.nbytes, view.nbytes);
    EXPECT_EQ(std::memcmp(t.data, view.data, t.nbytes), 0) << tensor;
  }
  EXPECT_EQ(Model::load(tmp / "s")->logits({5, 6}), Model::load(tmp / "one")->logits({5, 6}));
}

TEST(RandomCheckpoint, ExistingFolderKeepsOtherFilesAndLosesStaleWeights) {
  TempDir tmp;
  const ModelConfig c = random_checkpoint_config("gpt2", small_gpt2());
  RandomCheckpointOptions o;
  o.max_shard_bytes = 60000;
  write_random_checkpoint(tmp / "m", c, o);
  write_file(tmp / "m" / "notes.txt", "mine");
  o.max_shard_bytes = 5'000'000'000;
  o.tokenizer = model_dir("gpt2-tiny");
  o.before_publish = [](const fs::path& staging) { write_file(staging / "extra.json", "{}"); };
  write_random_checkpoint(tmp / "m", c, o);
  EXPECT_EQ(files_in(tmp / "m"), (std::vector<std::string>{"config.json", "extra.json", "generation_config.json",
                                                            "merges.txt", "model.safetensors", "notes.txt",
                                                            "vocab.json"}));
  EXPECT_EQ(read_file(tmp / "m" / "vocab.json"), read_file(model_dir("gpt2-tiny") / "vocab.json"));
  EXPECT_EQ(files_in(tmp.path()), std::vector<std::string>{"m"});
  EXPECT_NO_THROW(Model::load(tmp / "m"));
}

TEST(RandomCheckpoint, FailureLeavesNoFolder) {
  TempDir tmp;
  const ModelConfig c = random_checkpoint_config("gpt2", small_gpt2());
  RandomCheckpointOptions o;
  o.tokenizer = tmp / "no-tokenizer";
  EXPECT_TRUE(ThrowsError([&] { write_random_checkpoint(tmp / "m", c, o); }, {"--tokenizer", "no-tokenizer"}));
  o.tokenizer.clear();
  o.before_publish = [](const fs::path&) { throw Error("disk full (simulated)"); };
  EXPECT_TRUE(ThrowsError([&] { write_random_checkpoint(tmp / "m", c, o); }, {"simulated"}));
  EXPECT_TRUE(files_in(tmp.path()).empty());  // neither the folder nor the staging folder
  fs::create_directories(tmp / "old");
  write_file(tmp / "old" / "notes.txt", "mine");  // an existing folder is left as it was
  EXPECT_TRUE(ThrowsError([&] { write_random_checkpoint(tmp / "old", c, o); }, {"simulated"}));
  EXPECT_EQ(files_in(tmp / "old"), std::vector<std::string>{"notes.txt"});
  fs::remove_all(tmp / "old");
  write_file(tmp / "file", "x");
  EXPECT_TRUE(ThrowsError([&] { write_random_checkpoint(tmp / "file", c, {}); }, {"file", "not a folder"}));
}

TEST(RandomCheckpoint, VerifyCatchesACorruptedValue) {
  TempDir tmp;
  const ModelConfig c = random_checkpoint_config("gpt2", small_gpt2());
  write_random_checkpoint(tmp / "m", c, {});
  const fs::path f = tmp / "m" / "model.safetensors";
  std::string bytes = read_file(f);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const json h = json::parse(bytes.substr(8, n));
  const size_t at = 8 + n + h["transformer.wpe.weight"]["data_offsets"][0].get<size_t>();
  bytes[at] ^= 0x40;
  write_file(f, bytes);
  EXPECT_TRUE(ThrowsError([&] { verify_random_checkpoint(tmp / "m", c, {}); }, {"transformer.wpe.weight"}));
}

TEST(RandomCheckpoint, PresetsAndFlagsChecked) {
  const ModelConfig j = random_checkpoint_config("gpt-j-6b");
  EXPECT_EQ(j.arch, Arch::GPTJ);
  EXPECT_EQ(j.n_embd, 4096);
  EXPECT_EQ(j.vocab_size, 50400);
  EXPECT_EQ(random_checkpoint_config("gpt2-xl").n_embd, 1600);  // HF's gpt2-xl
  EXPECT_EQ(random_checkpoint_config("gpt2-large").n_layer, 36);
  ShapeOverrides ov;
  ov.vocab_size = 300;
  EXPECT_EQ(random_checkpoint_config("gpt2", ov).eos_token_id, 299);
  EXPECT_TRUE(ThrowsError([] { random_checkpoint_config("gpt3"); }, {"--preset", "gpt3"}));
  ov = {};
  ov.rotary_dim = 16;
  EXPECT_TRUE(ThrowsError([&] { random_checkpoint_config("gpt2", ov); }, {"--rotary_dim"}));
  ov = {};
  ov.n_layer = 0;
  EXPECT_TRUE(ThrowsError([&] { random_checkpoint_config("gpt2", ov); }, {"--n_layer"}));
  ov = {};
  ov.n_head = 5;  // 768 % 5 != 0
  EXPECT_TRUE(ThrowsError([&] { random_checkpoint_config("gpt2", ov); }, {"n_head"}));

  EXPECT_EQ(parse_shard_size("5GB", "--max_shard_size"), 5'000'000'000u);
  EXPECT_EQ(parse_shard_size("2GiB", "--max_shard_size"), 2147483648u);
  EXPECT_EQ(parse_shard_size("500kb", "--max_shard_size"), 500'000u);
  EXPECT_EQ(parse_shard_size("123", "--max_shard_size"), 123u);
  EXPECT_TRUE(ThrowsError([] { parse_shard_size("5 parsecs", "--max_shard_size"); }, {"--max_shard_size", "parsecs"}));
  EXPECT_TRUE(ThrowsError([] { parse_shard_size("0", "--max_shard_size"); }, {"--max_shard_size"}));
  EXPECT_EQ(parse_stored_dtype("bf16", "--dtype"), DType::BF16);
  EXPECT_TRUE(ThrowsError([] { parse_stored_dtype("int4", "--dtype"); }, {"--dtype", "int4"}));
}

}  // namespace
}  // namespace lmforge
