// pytorch_model.bin reader: hand-made torch.save zips, hostile pickles, storage bounds.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {
namespace {

using test::float_bytes;
using test::PickledEntry;
using test::PickleWriter;
using test::state_dict_pickle;
using test::TempDir;
using test::ThrowsError;
using test::write_torch_zip;

std::vector<float> iota(int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  return v;
}

// Writes a zip with `pkl` and storages into a temp dir and expects open_torch_bin to fail with
// the file's path and every needle in the message.
::testing::AssertionResult RejectsBin(const std::string& pkl, const std::map<std::string, std::string>& storages,
                                      std::vector<std::string> needles, const std::map<std::string, std::string>& extra = {}) {
  TempDir dir;
  const auto p = dir / "pytorch_model.bin";
  write_torch_zip(p, pkl, storages, extra);
  needles.push_back(p.string());
  return ThrowsError([&] { Checkpoint::open_torch_bin(p); }, needles);
}

TEST(TorchBin, ReadsOffsetsAndTiedStorages) {
  TempDir dir;
  const auto p = dir / "pytorch_model.bin";
  // "emb" and "head" share storage 0 (tied weights); "bias" is a view at offset 2 of storage 1.
  const std::string pkl = state_dict_pickle({
      {"emb", "FloatStorage", "0", 6, 0, {2, 3}, {3, 1}},
      {"head", "FloatStorage", "0", 6, 0, {2, 3}, {3, 1}},
      {"bias", "FloatStorage", "1", 5, 2, {3}, {1}},
  });
  write_torch_zip(p, pkl, {{"0", float_bytes(iota(6))}, {"1", float_bytes({9, 8, 7, 6, 5})}}, {{"version", "3\n"}});
  auto ck = Checkpoint::open_torch_bin(p);
  ASSERT_EQ(ck.tensors().size(), 3u);
  EXPECT_EQ(ck.get("emb").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(to_float32(ck.get("emb")), iota(6));
  EXPECT_EQ(ck.get("head").data, ck.get("emb").data);  // one storage, read once
  EXPECT_EQ(to_float32(ck.get("bias")), (std::vector<float>{7, 6, 5}));
  EXPECT_EQ(ck.get("bias").source, p.string());
  EXPECT_EQ(ck.description(), p.parent_path().filename().string() + "/pytorch_model.bin");
}

TEST(TorchBin, NonContiguousViewsAreMaterialised) {
  TempDir dir;
  const auto p = dir / "t.bin";
  // A transposed view of a 2x3 storage [[0,1,2],[3,4,5]] -> [[0,3],[1,4],[2,5]], and a column.
  const std::string pkl = state_dict_pickle({
      {"t", "FloatStorage", "0", 6, 0, {3, 2}, {1, 3}},
      {"col", "FloatStorage", "0", 6, 1, {2}, {3}},
      {"bcast", "FloatStorage", "0", 6, 4, {2, 2}, {0, 1}},
  });
  write_torch_zip(p, pkl, {{"0", float_bytes(iota(6))}});
  auto ck = Checkpoint::open_torch_bin(p);
  EXPECT_EQ(to_float32(ck.get("t")), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(to_float32(ck.get("col")), (std::vector<float>{1, 4}));
  EXPECT_EQ(to_float32(ck.get("bcast")), (std::vector<float>{4, 5, 4, 5}));
}

TEST(TorchBin, StorageTypesAndCompressedRecords) {
  TempDir dir;
  const auto p = dir / "d.bin";
  const uint16_t half[2] = {float_to_fp16(1.5f), float_to_fp16(-2.f)};
  const uint16_t bf[2] = {float_to_bf16(0.25f), float_to_bf16(3.f)};
  const int64_t longs[2] = {5, -7};
  const std::string pkl = state_dict_pickle({
      {"h", "HalfStorage", "h", 2, 0, {2}, {1}},
      {"b", "BFloat16Storage", "b", 2, 0, {2}, {1}},
      {"l", "LongStorage", "l", 2, 0, {2}, {1}},
      {"s", "DoubleStorage", "s", 1, 0, {}, {}},  // a 0-d scalar
      {"z", "BoolStorage", "z", 0, 0, {0}, {1}},
  });
  const double d = 0.125;
  write_torch_zip(p, pkl,
                  {{"h", std::string(reinterpret_cast<const char*>(half), 4)},
                   {"b", std::string(reinterpret_cast<const char*>(bf), 4)},
                   {"l", std::string(reinterpret_cast<const char*>(longs), 16)},
                   {"s", std::string(reinterpret_cast<const char*>(&d), 8)},
                   {"z", ""}},
                  {{"byteorder", "little"}}, /*compress=*/true);
  auto ck = Checkpoint::open_torch_bin(p);
  EXPECT_EQ(ck.get("h").dtype, DType::F16);
  EXPECT_EQ(to_float32(ck.get("h")), (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(ck.get("b").dtype, DType::BF16);
  EXPECT_EQ(to_float32(ck.get("b")), (std::vector<float>{0.25f, 3.f}));
  EXPECT_EQ(ck.get("l").dtype, DType::I64);
  int64_t l1;
  std::memcpy(&l1, ck.get("l").data + 8, 8);
  EXPECT_EQ(l1, -7);
  EXPECT_TRUE(ck.get("s").shape.empty());
  EXPECT_EQ(to_float32(ck.get("s")), (std::vector<float>{0.125f}));
  EXPECT_EQ(ck.get("z").dtype, DType::BOOL);
  EXPECT_EQ(ck.get("z").numel(), 0);
}

// What model.state_dict() itself pickles (OrderedDict + _metadata via BUILD) and
// nn.Parameter's _rebuild_parameter, with memo reuse (BINPUT/BINGET) as torch writes it.
TEST(TorchBin, OrderedDictMetadataAndParameters) {
  PickleWriter w;
  w.proto().global("collections", "OrderedDict").put(0).op(')').op('R').put(1).mark();
  w.str("p").global("torch._utils", "_rebuild_parameter").mark();
  w.global("torch._utils", "_rebuild_tensor_v2").mark();
  w.mark().str("storage").global("torch", "FloatStorage").str("0").str("cuda:0").integer(4).op('t').op('Q');
  w.integer(1).tuple_of({3}).tuple_of({1}).op('\x89').get(0).op(')').op('R').op('t').op('R');
  w.op('\x88').get(0).op(')').op('R').op('t').op('R');
  w.op('u');
  // BUILD({'_metadata': OrderedDict({'': {'version': 1}})})
  w.op('}').str("_metadata").get(0).op(')').op('R').str("").op('}').str("version").integer(1).op('s').op('s').op('s').op('b');
  w.op('.');
  TempDir dir;
  const auto p = dir / "sd.bin";
  write_torch_zip(p, w.bytes(), {{"0", float_bytes({1, 2, 3, 4})}});
  auto ck = Checkpoint::open_torch_bin(p);
  ASSERT_EQ(ck.tensors().size(), 1u);
  EXPECT_EQ(to_float32(ck.get("p")), (std::vector<float>{2, 3, 4}));
}

TEST(TorchBin, DisallowedGlobalIsRefusedAndNothingRuns) {
  TempDir dir;
  const auto marker = dir / "pwned";
  // The classic exploit: os.system("touch <marker>") via GLOBAL 'posix system' + REDUCE.
  PickleWriter w;
  w.proto().global("posix", "system").str("touch " + marker.string()).op('\x85').op('R').op('.');
  EXPECT_TRUE(RejectsBin(w.bytes(), {}, {"pickle references disallowed global 'posix.system'"}));
  EXPECT_FALSE(std::filesystem::exists(marker));

  // Smuggled inside an otherwise valid state dict, and via STACK_GLOBAL (protocol 4).
  std::string sd = state_dict_pickle({{"w", "FloatStorage", "0", 1, 0, {1}, {1}}});
  sd.insert(3, PickleWriter().global("builtins", "eval").op('0').bytes());
  EXPECT_TRUE(RejectsBin(sd, {{"0", float_bytes({1})}}, {"disallowed global 'builtins.eval'"}));
  PickleWriter sg;
  sg.proto(4).op('\x8c').op(2).raw("os").op('\x8c').op(6).raw("system").op('\x93').op('.');
  EXPECT_TRUE(RejectsBin(sg.bytes(), {}, {"disallowed global 'os.system'"}));
  // Near-misses of allowed names are refused too.
  for (auto [mod, name] : std::vector<std::pair<std::string, std::string>>{
           {"torch", "load"}, {"torch", "UntypedStorage"}, {"torch._utils", "_rebuild_qtensor"}, {"collections", "defaultdict"}}) {
    PickleWriter g;
    g.proto().global(mod, name).op('.');
    EXPECT_TRUE(RejectsBin(g.bytes(), {}, {"disallowed global '" + mod + "." + name + "'"}));
  }
}

TEST(TorchBin, StorageProblems) {
  const auto one = state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {4}, {1}}});
  EXPECT_TRUE(RejectsBin(one, {}, {"tensor 'w'", "data/0", "missing"}));
  EXPECT_TRUE(RejectsBin(one, {{"0", float_bytes({1, 2, 3})}}, {"data/0", "holds 12 bytes", "4 F32 elements"}));
  // The view reaches past its storage: offset 2 + 4 elements of a 4-element storage.
  const auto off = state_dict_pickle({{"w", "FloatStorage", "0", 4, 2, {4}, {1}}});
  EXPECT_TRUE(RejectsBin(off, {{"0", float_bytes({1, 2, 3, 4})}}, {"tensor 'w'", "storage has 4"}));
  const auto strided = state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {2, 2}, {3, 1}}});
  EXPECT_TRUE(RejectsBin(strided, {{"0", float_bytes({1, 2, 3, 4})}}, {"tensor 'w'", "needs element 4"}));
  // Element counts whose byte size overflows 64 bits.
  const auto huge = state_dict_pickle({{"w", "FloatStorage", "0", INT64_MAX, 0, {4}, {1}}});
  EXPECT_TRUE(RejectsBin(huge, {{"0", float_bytes({1, 2, 3, 4})}}, {"too large"}));
  const auto huge_view = state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {1LL << 40, 1LL << 40}, {1, 1}}});
  EXPECT_TRUE(RejectsBin(huge_view, {{"0", float_bytes({1, 2, 3, 4})}}, {"tensor 'w'", "too large"}));
  const auto expanded = state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {1 << 20, 1 << 20}, {0, 0}}});
  EXPECT_TRUE(RejectsBin(expanded, {{"0", float_bytes({1, 2, 3, 4})}}, {"tensor 'w'", "more elements"}));
  const auto neg = state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {-4}, {1}}});
  EXPECT_TRUE(RejectsBin(neg, {{"0", float_bytes({1, 2, 3, 4})}}, {"negative tensor size"}));
  // One key declared with two storage types.
  const auto mixed = state_dict_pickle({{"a", "FloatStorage", "0", 4, 0, {4}, {1}}, {"b", "IntStorage", "0", 4, 0, {4}, {1}}});
  EXPECT_TRUE(RejectsBin(mixed, {{"0", float_bytes({1, 2, 3, 4})}}, {"data/0", "two different"}));
  EXPECT_TRUE(RejectsBin(one, {{"0", float_bytes({1, 2, 3, 4})}}, {"big", "little-endian"}, {{"byteorder", "big"}}));
}

TEST(TorchBin, MalformedPickles) {
  const std::map<std::string, std::string> st = {{"0", float_bytes({1, 2, 3, 4})}};
  const auto good = state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {4}, {1}}});
  EXPECT_TRUE(RejectsBin(good.substr(0, good.size() - 1), st, {"data.pkl", "truncated"}));
  EXPECT_TRUE(RejectsBin(good.substr(0, good.size() / 2), st, {"truncated"}));
  EXPECT_TRUE(RejectsBin("", st, {"truncated"}));
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op('i').bytes(), st, {"unsupported pickle opcode 0x69"}));
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op('R').bytes(), st, {"stack underflow"}));
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().get(9).bytes(), st, {"memo entry 9"}));
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op(']').op('.').bytes(), st, {"expected a dict", "list"}));
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op('}').str("w").integer(3).op('s').op('.').bytes(), st, {"'w'", "not a tensor"}));
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op('}').op('t').bytes(), st, {"no MARK"}));
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op('}').mark().str("k").op('u').bytes(), st, {"odd number"}));
  // Pops never reach below a MARK.
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op('}').str("k").mark().integer(1).op('s').bytes(), st, {"stack underflow"}));
  // A persistent id that is not torch's storage tuple.
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().str("x").op('Q').bytes(), st, {"persistent id"}));
  // A length prefix far beyond the data.
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op('X').raw("\xff\xff\xff\xff").bytes(), st, {"truncated"}));
  // LONG1 wider than 64 bits.
  EXPECT_TRUE(RejectsBin(PickleWriter().proto().op('\x8a').op(9).raw(std::string(9, '\1')).bytes(), st, {"too large"}));
}

TEST(TorchBin, NotATorchZip) {
  TempDir dir;
  const auto missing = dir / "absent.bin";
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open_torch_bin(missing); }, {missing.string(), "not found"}));
  const auto garbage = dir / "garbage.bin";
  test::write_file(garbage, "\x80\x02}q\x00.this is a legacy pickle, not a zip");
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open_torch_bin(garbage); }, {garbage.string(), "zip"}));
  // A real zip whose records are not laid out as torch.save writes them.
  const auto nopkl = dir / "nopkl.bin";
  write_torch_zip(nopkl, "irrelevant", {}, {}, false, "a/b");
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open_torch_bin(nopkl); }, {nopkl.string(), "data.pkl"}));
  // A truncated real checkpoint: the zip's central directory is gone.
  const std::string real = test::read_file(test::model_dir("gpt2-f16") / "pytorch_model.bin");
  const auto cut = dir / "cut.bin";
  test::write_file(cut, real.substr(0, real.size() - 200));
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open_torch_bin(cut); }, {cut.string()}));
}

// All records of a zip, by name (to rebuild a real checkpoint with a mutated data.pkl).
std::map<std::string, std::string> read_zip_records(const std::filesystem::path& file) {
  int err = 0;
  zip_t* z = zip_open(file.c_str(), ZIP_RDONLY, &err);
  if (z == nullptr) throw std::runtime_error("zip_open");
  std::map<std::string, std::string> out;
  for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); ++i) {
    zip_stat_t st;
    zip_stat_index(z, i, 0, &st);
    std::string buf(st.size, '\0');
    zip_file_t* f = zip_fopen_index(z, i, 0);
    if (zip_fread(f, buf.data(), st.size) != static_cast<zip_int64_t>(st.size)) throw std::runtime_error("zip_fread");
    zip_fclose(f);
    out[st.name] = buf;
  }
  zip_discard(z);
  return out;
}

// Random byte corruptions of a real data.pkl end in a clean lmforge::Error or in a checkpoint
// whose views are consistent; never a crash, hang or foreign exception.
TEST(TorchBin, RandomPickleCorruptionsNeverCrash) {
  auto records = read_zip_records(test::model_dir("gpt2-f16") / "pytorch_model.bin");
  const std::string pkl = records.at("pytorch_model/data.pkl");
  std::map<std::string, std::string> storages;
  for (const auto& [name, data] : records)
    if (name.rfind("pytorch_model/data/", 0) == 0) storages[name.substr(19)] = data;
  ASSERT_FALSE(storages.empty());
  std::mt19937 rng(11);
  TempDir dir;
  const auto p = dir / "fuzz.bin";
  int errors = 0;
  for (int i = 0; i < 200; ++i) {
    std::string bad = pkl;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<char>(rng() % 256);
    write_torch_zip(p, bad, storages, {}, false, "pytorch_model");
    try {
      auto ck = Checkpoint::open_torch_bin(p);
      for (const auto& [name, t] : ck.tensors()) ASSERT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * dtype_size(t.dtype));
    } catch (const Error& e) {
      ++errors;
      ASSERT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 0);
}

}  // namespace
}  // namespace lmforge
