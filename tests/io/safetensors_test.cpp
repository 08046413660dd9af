// Safetensors reader (hostile inputs included) and writer.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {
namespace {

using test::safetensors_bytes;
using test::TempDir;
using test::ThrowsError;
using test::write_file;

// Writes `bytes` as <tmp>/bad.safetensors and expects open_safetensors to fail naming the file
// and mentioning every needle.
::testing::AssertionResult RejectsFile(const std::string& bytes, std::vector<std::string> needles) {
  TempDir dir;
  const auto p = dir / "bad.safetensors";
  write_file(p, bytes);
  needles.push_back(p.string());
  return ThrowsError([&] { Checkpoint::open_safetensors(p); }, needles);
}

// Header of one F32 tensor "w" with the given shape/offsets, plus `extra` entries.
std::string one_tensor_header(const std::string& shape, const std::string& offsets, const std::string& dtype = "F32",
                              const std::string& extra = "") {
  return R"({"w":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}" + extra + "}";
}

TEST(SafetensorsRead, MinimalValidFile) {
  TempDir dir;
  const auto p = dir / "ok.safetensors";
  const std::string data = test::float_bytes({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}) + "\x01\x02";
  write_file(p, safetensors_bytes(
                    R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                    R"("b":{"dtype":"U8","shape":[2],"data_offsets":[24,26]},"e":{"dtype":"F16","shape":[0,4],"data_offsets":[26,26]}})",
                    data));
  auto ck = Checkpoint::open_safetensors(p);
  ASSERT_EQ(ck.tensors().size(), 3u);
  const auto& w = ck.get("w");
  EXPECT_EQ(w.dtype, DType::F32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w.nbytes, 24u);
  EXPECT_EQ(to_float32(w), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(w.source, p.string());
  EXPECT_EQ(static_cast<uint8_t>(ck.get("b").data[1]), 2);
  EXPECT_EQ(ck.get("e").numel(), 0);
  EXPECT_EQ(ck.description(), p.parent_path().filename().string() + "/ok.safetensors");
  EXPECT_TRUE(ThrowsError([&] { ck.get("nope"); }, {"nope", "ok.safetensors"}));
}

TEST(SafetensorsRead, MissingFile) {
  TempDir dir;
  const auto p = dir / "absent.safetensors";
  EXPECT_TRUE(ThrowsError([&] { Checkpoint::open_safetensors(p); }, {p.string(), "not found"}));
}

TEST(SafetensorsRead, ShorterThanEightBytes) {
  EXPECT_TRUE(RejectsFile("", {"shorter than"}));
  EXPECT_TRUE(RejectsFile(std::string("\x02\x00\x00\x00\x00", 5), {"shorter than"}));
}

TEST(SafetensorsRead, HeaderLengthBeyondFile) {
  EXPECT_TRUE(RejectsFile(test::le64(1000) + "{}", {"header length 1000", "beyond"}));
  // Lengths near 2^64 must not wrap around in 8 + length.
  EXPECT_TRUE(RejectsFile(test::le64(~uint64_t{0}) + "{}", {"beyond"}));
  EXPECT_TRUE(RejectsFile(test::le64(~uint64_t{0} - 7) + "{}", {"beyond"}));
}

TEST(SafetensorsRead, HeaderNotJsonOrNotObject) {
  EXPECT_TRUE(RejectsFile(safetensors_bytes("{\"w\": [1,", ""), {"not valid JSON"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes("\xff\xfe garbage", ""), {"not valid JSON"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes("[1, 2, 3]", ""), {"JSON object"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes("\"w\"", ""), {"JSON object"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(R"({"w": 3})", ""), {"tensor 'w'", "object"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(R"({"__metadata__": [1]})", ""), {"__metadata__"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(R"({"__metadata__": {"format": 1}})", ""), {"__metadata__", "format"}));
}

TEST(SafetensorsRead, UnknownDtype) {
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[1]", "[0,1]", "F8_E4M3"), "x"), {"tensor 'w'", "unknown dtype 'F8_E4M3'"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[1]", "[0,4]", "float32"), "xxxx"), {"unknown dtype"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", "xxxx"), {"tensor 'w'", "dtype"}));
}

TEST(SafetensorsRead, ShapeSizeMismatch) {
  // 2x3 F32 needs 24 bytes, offsets span 20.
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2,3]", "[0,20]"), std::string(24, '\0')),
                          {"tensor 'w'", "needs 24 bytes", "span 20"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2,3]", "[0,24]", "F16"), std::string(24, '\0')), {"needs 12 bytes"}));
}

TEST(SafetensorsRead, ShapeProductOverflow) {
  // 2^40 * 2^40 overflows 64 bits; must be an error, not a wrapped small size.
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[1099511627776,1099511627776]", "[0,0]"), ""), {"too large"}));
  // 2^62 elements of F32 overflow only in the byte count.
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[4611686018427387904]", "[0,0]"), ""), {"too large"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[18446744073709551615]", "[0,0]"), ""), {"shape[0]"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[1e30]", "[0,0]"), ""), {"shape[0]", "integer"}));
}

TEST(SafetensorsRead, NegativeDims) {
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[-2,3]", "[0,24]"), std::string(24, '\0')), {"tensor 'w'", "shape[0]", "negative"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2,-3]", "[0,24]"), std::string(24, '\0')), {"shape[1]", "negative"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("3", "[0,12]"), std::string(12, '\0')), {"'shape' must be an array"}));
}

TEST(SafetensorsRead, OffsetsOutOfRange) {
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2]", "[4,12]"), std::string(8, '\0')), {"tensor 'w'", "beyond the 8 bytes"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[0]", "[9,9]"), std::string(8, '\0')), {"beyond"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2]", "[-8,0]"), std::string(8, '\0')), {"data_offsets[0]", "negative"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2]", "[0]"), std::string(8, '\0')), {"data_offsets"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2]", "[0,\"8\"]"), std::string(8, '\0')), {"data_offsets[1]"}));
  EXPECT_TRUE(RejectsFile(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1]}})", "xxxx"), {"missing 'data_offsets'"}));
}

TEST(SafetensorsRead, BeginAfterEnd) {
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[1]", "[8,4]"), std::string(8, '\0')), {"tensor 'w'", "begin 8 > end 4"}));
}

TEST(SafetensorsRead, OverlappingOffsets) {
  const std::string extra = R"(,"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})";
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2]", "[0,8]", "F32", extra), std::string(12, '\0')),
                          {"tensor 'v'", "tensor 'w'", "overlapping"}));
  // Identical ranges overlap too; touching ranges and empty tensors do not.
  const std::string same = R"(,"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  EXPECT_TRUE(RejectsFile(safetensors_bytes(one_tensor_header("[2]", "[0,8]", "F32", same), std::string(8, '\0')), {"overlapping"}));
  TempDir dir;
  write_file(dir / "ok.safetensors",
             safetensors_bytes(one_tensor_header("[2]", "[0,8]", "F32",
                                                 R"(,"v":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]})"),
                               std::string(12, '\0')));
  EXPECT_EQ(Checkpoint::open_safetensors(dir / "ok.safetensors").tensors().size(), 3u);
}

TEST(SafetensorsRead, HostileNamesStayOnOneLine) {
  const std::string h = R"({"line1\nline2":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})";
  EXPECT_TRUE(RejectsFile(safetensors_bytes(h, std::string(4, '\0')), {"line1\\x0aline2"}));
}

TEST(SafetensorsRead, TruncatedRealCheckpoint) {
  const auto src = test::model_dir("gpt2-tiny") / "model.safetensors";
  const std::string bytes = test::read_file(src);
  EXPECT_TRUE(RejectsFile(bytes.substr(0, bytes.size() / 2), {"beyond"}));
  EXPECT_TRUE(RejectsFile(bytes.substr(0, 100), {"header length"}));
  EXPECT_TRUE(RejectsFile(bytes.substr(0, bytes.size() - 1), {"beyond"}));
}

// Random corruptions of a real header must end in a clean lmforge::Error or a checkpoint whose
// views all lie inside the file; never a crash (run under ASan/UBSan to make this meaningful).
TEST(SafetensorsRead, RandomCorruptionsNeverCrash) {
  const std::string good = test::read_file(test::model_dir("gpt2-f16") / "model.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  std::mt19937 rng(7);
  TempDir dir;
  const auto p = dir / "fuzz.safetensors";
  int errors = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = rng() % (8 + header_len);  // the length prefix and the JSON
      bytes[pos] = static_cast<char>(rng() % 2 ? rng() % 256 : "0123456789[]{},:\"-"[rng() % 18]);
    }
    write_file(p, bytes);
    try {
      auto ck = Checkpoint::open_safetensors(p);
      for (const auto& [name, t] : ck.tensors()) ASSERT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * dtype_size(t.dtype));
    } catch (const Error& e) {
      ++errors;
      ASSERT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(SafetensorsWrite, RoundTrip) {
  TempDir dir;
  const auto p = dir / "out.safetensors";
  const std::vector<float> a = {1.5f, -2.f, 3.25f, 0.f, 7.f, -8.f};
  const std::vector<uint16_t> h = {float_to_fp16(0.5f), float_to_fp16(-1.f), float_to_fp16(2.f)};
  const std::vector<int64_t> ids = {1, -2, 1LL << 40};
  const uint8_t flag = 1;
  std::vector<TensorToWrite> in = {
      {"z.weight", DType::F32, {2, 3}, a.data()},
      {"a.half", DType::F16, {3}, h.data()},
      {"m.ids", DType::I64, {3}, ids.data()},
      {"scalar", DType::U8, {}, &flag},
      {"empty", DType::BF16, {0, 5}, nullptr},
  };
  write_safetensors(p, in, {{"format", "pt"}, {"note", "lmforge test"}});
  EXPECT_FALSE(std::filesystem::exists(p.string() + ".tmp"));

  auto ck = Checkpoint::open_safetensors(p);
  ASSERT_EQ(ck.tensors().size(), in.size());
  for (const auto& t : in) {
    const auto& v = ck.get(t.name);
    EXPECT_EQ(v.dtype, t.dtype) << t.name;
    EXPECT_EQ(v.shape, t.shape) << t.name;
    ASSERT_EQ(v.nbytes, static_cast<size_t>(v.numel()) * dtype_size(t.dtype));
    if (v.nbytes) {
      EXPECT_EQ(std::memcmp(v.data, t.data, v.nbytes), 0) << t.name;
    }
  }

  // Layout: header padded with spaces to a multiple of 8, tensors contiguous in name order.
  const std::string bytes = test::read_file(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = bytes.substr(8, n);
  const size_t json_end = header.find_last_not_of(' ') + 1;  // padding is spaces only, fewer than 8
  EXPECT_EQ(header[json_end - 1], '}');
  EXPECT_LT(n - json_end, 8u);
  auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"]["note"], "lmforge test");
  uint64_t expect_begin = 0;
  for (const char* name : {"a.half", "empty", "m.ids", "scalar", "z.weight"}) {
    auto off = j.at(name).at("data_offsets");
    EXPECT_EQ(off[0].get<uint64_t>(), expect_begin) << name;
    expect_begin = off[1].get<uint64_t>();
  }
  EXPECT_EQ(8 + n + expect_begin, bytes.size());
}

TEST(SafetensorsWrite, RealCheckpointRoundTripsByteForByte) {
  // Rewriting a HF file with our writer gives the same tensors and, as HF also sorts and pads,
  // the same data section.
  const auto src = test::model_dir("gpt2-bf16") / "model.safetensors";
  auto ck = Checkpoint::open_safetensors(src);
  std::vector<TensorToWrite> out;
  for (const auto& [name, t] : ck.tensors()) out.push_back({name, t.dtype, t.shape, t.data});
  TempDir dir;
  write_safetensors(dir / "copy.safetensors", out);
  auto back = Checkpoint::open_safetensors(dir / "copy.safetensors");
  ASSERT_EQ(back.tensors().size(), ck.tensors().size());
  for (const auto& [name, t] : ck.tensors()) {
    const auto& u = back.get(name);
    ASSERT_EQ(u.shape, t.shape);
    ASSERT_EQ(u.nbytes, t.nbytes);
    ASSERT_EQ(std::memcmp(u.data, t.data, t.nbytes), 0) << name;
  }
}

TEST(SafetensorsWrite, RejectsBadInputAndKeepsOldFile) {
  TempDir dir;
  const auto p = dir / "out.safetensors";
  const float x = 1.f;
  write_safetensors(p, {{"x", DType::F32, {1}, &x}});
  const std::string before = test::read_file(p);
  EXPECT_TRUE(ThrowsError([&] { write_safetensors(p, {{"x", DType::F32, {1}, &x}, {"x", DType::F32, {1}, &x}}); },
                          {p.string(), "duplicate"}));
  EXPECT_TRUE(ThrowsError([&] { write_safetensors(p, {{"y", DType::F32, {-1}, &x}}); }, {p.string(), "invalid shape"}));
  EXPECT_TRUE(ThrowsError([&] { write_safetensors(p, {{"y", DType::F32, {2}, nullptr}}); }, {p.string(), "no data"}));
  EXPECT_TRUE(ThrowsError([&] { write_safetensors(p, {{"__metadata__", DType::F32, {1}, &x}}); }, {p.string()}));
  EXPECT_EQ(test::read_file(p), before);
  EXPECT_TRUE(ThrowsError([&] { write_safetensors(dir / "no-such-dir" / "f.safetensors", {{"x", DType::F32, {1}, &x}}); },
                          {"no-such-dir"}));
}

}  // namespace
}  // namespace lmforge
