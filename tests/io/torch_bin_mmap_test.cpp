// pytorch_model.bin storages are views into an mmap of the file: the hand-written ZIP central
// directory reader (io/zip_index.h) against libzip, the pointers against /proc/self/maps, values
// against the heap (compressed) path, ZIP64 archives built byte by byte, and corrupt
// directories / headers / truncations ending in one clear lmforge::Error.
#include <gtest/gtest.h>
#include <zip.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include <sys/stat.h>

#include "common/fixtures.h"
#include "io/io_test_util.h"
#include "io/zip_index.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::float_bytes;
using test::state_dict_pickle;
using test::TempDir;
using test::ThrowsError;
using test::write_torch_zip;

// Every pytorch_model*.bin among the fixtures (single files and shards).
std::vector<fs::path> fixture_bins() {
  std::vector<fs::path> out;
  for (const auto& dir : fs::directory_iterator(test::data_dir() / "models"))
    for (const auto& f : fs::directory_iterator(dir.path()))
      if (f.path().extension() == ".bin") out.push_back(f.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::byte> to_bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

struct Range {
  uintptr_t begin, end;
};

// Where `file` is mapped into this process right now, from /proc/self/maps.
std::vector<Range> mapped_ranges(const fs::path& file) {
  const std::string want = fs::canonical(file).string();
  std::ifstream in("/proc/self/maps");
  std::vector<Range> out;
  std::string line;
  while (std::getline(in, line)) {
    unsigned long b = 0, e = 0;
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %*s %*s %*s %*s %n", &b, &e, &path_at) < 2 || path_at == 0) continue;
    if (line.substr(static_cast<size_t>(path_at)) == want) out.push_back({b, e});
  }
  return out;
}

bool inside_any(const TensorView& t, const std::vector<Range>& ranges) {
  const auto p = reinterpret_cast<uintptr_t>(t.data);
  for (const auto& r : ranges)
    if (p >= r.begin && p + t.nbytes <= r.end) return true;
  return false;
}

// All records of a zip by name, read with libzip.
std::map<std::string, std::string> zip_records(const fs::path& file) {
  int err = 0;
  zip_t* z = zip_open(file.c_str(), ZIP_RDONLY, &err);
  if (z == nullptr) throw std::runtime_error("zip_open " + file.string());
  std::map<std::string, std::string> out;
  for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); ++i) {
    zip_stat_t st;
    zip_stat_index(z, static_cast<zip_uint64_t>(i), 0, &st);
    std::string buf(st.size, '\0');
    zip_file_t* f = zip_fopen_index(z, static_cast<zip_uint64_t>(i), 0);
    if (st.size > 0 && zip_fread(f, buf.data(), st.size) != static_cast<zip_int64_t>(st.size)) throw std::runtime_error("zip_fread");
    zip_fclose(f);
    out[st.name] = buf;
  }
  zip_discard(z);
  return out;
}

std::string bytes_of(const TensorView& t) { return std::string(reinterpret_cast<const char*>(t.data), t.nbytes); }

// ---- the central directory reader against libzip ------------------------------------------

TEST(ZipIndex, MatchesLibzipOnEveryFixture) {
  const auto bins = fixture_bins();
  ASSERT_GE(bins.size(), 7u);
  for (const auto& file : bins) {
    SCOPED_TRACE(file.string());
    const auto bytes = to_bytes(test::read_file(file));
    const auto entries = io::read_zip_central_directory(bytes.data(), bytes.size(), file.string());
    int err = 0;
    zip_t* z = zip_open(file.c_str(), ZIP_RDONLY, &err);
    ASSERT_NE(z, nullptr);
    ASSERT_EQ(entries.size(), static_cast<size_t>(zip_get_num_entries(z, 0)));
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      EXPECT_EQ(e.name, zip_get_name(z, i, ZIP_FL_ENC_RAW));
      zip_stat_t st;
      ASSERT_EQ(zip_stat_index(z, i, 0, &st), 0);
      EXPECT_EQ(e.size, st.size);
      EXPECT_EQ(e.comp_size, st.comp_size);
      EXPECT_EQ(e.method, st.comp_method);
      ASSERT_EQ(e.method, io::kZipStore) << e.name;  // torch.save never compresses
      const uint64_t off = io::zip_entry_data_offset(bytes.data(), bytes.size(), e, file.string());
      if (e.name.find("/data/") != std::string::npos) {
        EXPECT_EQ(off % 64, 0u) << e.name;  // torch.save aligns storages
      }
      std::string via_libzip(st.size, '\0');
      zip_file_t* f = zip_fopen_index(z, i, 0);
      ASSERT_NE(f, nullptr);
      if (st.size > 0) {
        ASSERT_EQ(zip_fread(f, via_libzip.data(), st.size), static_cast<zip_int64_t>(st.size));
      }
      zip_fclose(f);
      EXPECT_EQ(std::memcmp(bytes.data() + off, via_libzip.data(), st.size), 0) << e.name;
    }
    zip_discard(z);
  }
}

// ---- the reader's views point into the file mapping -------------------------------------------

TEST(TorchBinMmap, StoragesAreViewsIntoTheFileMapping) {
  for (const auto& file : fixture_bins()) {
    SCOPED_TRACE(file.string());
    {
      auto ck = Checkpoint::open_torch_bin(file);
      const auto ranges = mapped_ranges(file);
      ASSERT_FALSE(ranges.empty()) << "the .bin is not mapped";
      ASSERT_FALSE(ck.tensors().empty());
      for (const auto& [name, t] : ck.tensors()) {
        EXPECT_TRUE(inside_any(t, ranges)) << name << " is not a view into the mapping";
        EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype), 0u) << name;
      }
    }
    EXPECT_TRUE(mapped_ranges(file).empty()) << "mapping outlives its checkpoint";
  }
  // Sharded .bin: the views of every shard stay mapped while the merged checkpoint lives.
  const auto dir = test::model_dir("gpt2-sharded");
  auto ck = Checkpoint::open_sharded_index(dir / "pytorch_model.bin.index.json");
  std::vector<Range> ranges = mapped_ranges(dir / "pytorch_model-00001-of-00002.bin");
  const auto second = mapped_ranges(dir / "pytorch_model-00002-of-00002.bin");
  ranges.insert(ranges.end(), second.begin(), second.end());
  for (const auto& [name, t] : ck.tensors()) EXPECT_TRUE(inside_any(t, ranges)) << name;
}

TEST(TorchBinMmap, SameValuesAsTheDecompressingPath) {
  TempDir dir;
  for (const auto& file : fixture_bins()) {
    SCOPED_TRACE(file.string());
    // The same records, deflated: libzip inflates every storage into a heap buffer.
    const auto records = zip_records(file);
    std::string prefix, pkl;
    for (const auto& [name, data] : records)
      if (name.size() > 9 && name.substr(name.size() - 9) == "/data.pkl") prefix = name.substr(0, name.size() - 9), pkl = data;
    ASSERT_FALSE(prefix.empty());
    std::map<std::string, std::string> storages, extra;
    for (const auto& [name, data] : records) {
      if (name.rfind(prefix + "/data/", 0) == 0)
        storages[name.substr(prefix.size() + 6)] = data;
      else if (name != prefix + "/data.pkl")
        extra[name.substr(prefix.size() + 1)] = data;
    }
    const auto deflated = dir / "deflated.bin";
    write_torch_zip(deflated, pkl, storages, extra, /*compress=*/true, prefix);
    auto mapped = Checkpoint::open_torch_bin(file);
    auto heap = Checkpoint::open_torch_bin(deflated);
    const auto heap_ranges = mapped_ranges(deflated);
    ASSERT_EQ(mapped.tensors().size(), heap.tensors().size());
    for (const auto& [name, t] : heap.tensors()) {
      ASSERT_TRUE(mapped.has(name)) << name;
      const auto& m = mapped.get(name);
      EXPECT_EQ(m.dtype, t.dtype) << name;
      EXPECT_EQ(m.shape, t.shape) << name;
      EXPECT_EQ(bytes_of(m), bytes_of(t)) << name;
      EXPECT_FALSE(t.nbytes > 0 && inside_any(t, heap_ranges)) << name << ": a deflated storage cannot be a view";
    }
  }
}

TEST(TorchBinMmap, ReleasedTensorsReadBackTheSameBytes) {
  for (const auto& file : fixture_bins()) {
    SCOPED_TRACE(file.string());
    auto ck = Checkpoint::open_torch_bin(file);
    for (const auto& [name, t] : ck.tensors()) {
      const std::string before = bytes_of(t);
      ck.release(t);  // drops the pages; the next read faults them back from the file
      EXPECT_EQ(bytes_of(t), before) << name;
    }
  }
}

TEST(TorchBinMmap, StridedViewsOfMappedStoragesAreCopies) {
  TempDir dir;
  const auto p = dir / "t.bin";
  std::vector<float> v(6);
  for (int i = 0; i < 6; ++i) v[i] = static_cast<float>(i);
  write_torch_zip(p, state_dict_pickle({{"t", "FloatStorage", "0", 6, 0, {3, 2}, {1, 3}}, {"w", "FloatStorage", "0", 6, 1, {5}, {1}}}),
                  {{"0", float_bytes(v)}});
  auto ck = Checkpoint::open_torch_bin(p);
  const auto ranges = mapped_ranges(p);
  EXPECT_EQ(to_float32(ck.get("t")), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_FALSE(inside_any(ck.get("t"), ranges));
  EXPECT_EQ(to_float32(ck.get("w")), (std::vector<float>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(inside_any(ck.get("w"), ranges));
}

// ---- ZIP64 --------------------------------------------------------------------------------

void put16(std::string& s, uint64_t v) {
  for (int i = 0; i < 2; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put32(std::string& s, uint64_t v) {
  for (int i = 0; i < 4; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t crc32_of(const std::string& data) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

struct Record {
  std::string name, data;
  uint64_t hole = 0;  // > 0: the data is this many zero bytes, left as a hole in a sparse file
};

// An archive as pieces: bytes, each followed by a run of zeros (a hole when written to disk).
struct Zip64Layout {
  std::vector<std::pair<std::string, uint64_t>> parts;
  std::vector<uint64_t> local_offsets, data_offsets;

  std::string bytes() const {
    std::string s;
    for (const auto& [b, zeros] : parts) s += b + std::string(zeros, '\0');
    return s;
  }
  void write(const fs::path& file) const {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    for (const auto& [b, zeros] : parts) {
      out.write(b.data(), static_cast<std::streamsize>(b.size()));
      out.seekp(static_cast<std::streamoff>(zeros), std::ios::cur);
    }
    if (!out) throw std::runtime_error("cannot write " + file.string());
  }
};

// A STORE-only archive the way a large torch.save writes it: every size and offset in the
// central directory is 0xFFFFFFFF with the real value in a ZIP64 extra field, local headers
// carry both sizes in theirs, data is padded to 64 bytes with an extra field, and the end
// records are ZIP64 (record + locator) with a saturated classic EOCD. Hole records get CRC 0
// (never checked: their bytes are only mapped).
Zip64Layout zip64_archive(const std::vector<Record>& records) {
  Zip64Layout z;
  z.parts.emplace_back("", 0);
  uint64_t pos = 0;
  auto emit = [&](const std::string& b) {
    z.parts.back().first += b;
    pos += b.size();
  };
  const uint64_t sat32 = 0xFFFFFFFF;
  auto size_of = [](const Record& r) { return r.hole > 0 ? r.hole : r.data.size(); };
  auto crc_of = [](const Record& r) { return r.hole > 0 ? 0u : crc32_of(r.data); };
  for (const auto& r : records) {
    z.local_offsets.push_back(pos);
    const uint64_t base = pos + 30 + r.name.size() + 20;  // after the ZIP64 block
    const uint64_t pad = (64 - (base + 4) % 64) % 64;     // + a 4-byte padding block header
    std::string extra, h;
    put16(extra, 0x0001), put16(extra, 16), put64(extra, size_of(r)), put64(extra, size_of(r));
    put16(extra, 0x4246), put16(extra, pad), extra += std::string(pad, 'Z');
    put32(h, 0x04034b50), put16(h, 45), put16(h, 0), put16(h, 0), put16(h, 0), put16(h, 0x21);
    put32(h, crc_of(r)), put32(h, sat32), put32(h, sat32), put16(h, r.name.size()), put16(h, extra.size());
    emit(h + r.name + extra);
    z.data_offsets.push_back(pos);
    if (r.hole > 0) {
      z.parts.back().second = r.hole;
      z.parts.emplace_back("", 0);
      pos += r.hole;
    } else {
      emit(r.data);
    }
  }
  const uint64_t cd_offset = pos;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    std::string extra, h;
    put16(extra, 0x0001), put16(extra, 24), put64(extra, size_of(r)), put64(extra, size_of(r)), put64(extra, z.local_offsets[i]);
    put32(h, 0x02014b50), put16(h, 45), put16(h, 45), put16(h, 0), put16(h, 0), put16(h, 0), put16(h, 0x21);
    put32(h, crc_of(r)), put32(h, sat32), put32(h, sat32), put16(h, r.name.size()), put16(h, extra.size());
    put16(h, 0), put16(h, 0), put16(h, 0), put32(h, 0), put32(h, sat32);
    emit(h + r.name + extra);
  }
  const uint64_t cd_size = pos - cd_offset, eocd64 = pos;
  std::string t;
  put32(t, 0x06064b50), put64(t, 44), put16(t, 45), put16(t, 45), put32(t, 0), put32(t, 0);
  put64(t, records.size()), put64(t, records.size()), put64(t, cd_size), put64(t, cd_offset);
  put32(t, 0x07064b50), put32(t, 0), put64(t, eocd64), put32(t, 1);
  put32(t, 0x06054b50), put16(t, 0), put16(t, 0), put16(t, 0xFFFF), put16(t, 0xFFFF);
  put32(t, sat32), put32(t, sat32), put16(t, 0);
  emit(t);
  return z;
}

std::vector<Record> small_torch_records() {
  std::vector<float> a(6), b(3);
  for (int i = 0; i < 6; ++i) a[i] = 0.5f * static_cast<float>(i);
  for (int i = 0; i < 3; ++i) b[i] = -1.f - static_cast<float>(i);
  const std::string pkl = state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, {2, 3}, {3, 1}}, {"b", "FloatStorage", "1", 3, 0, {3}, {1}}});
  return {{"archive/data.pkl", pkl}, {"archive/byteorder", "little"}, {"archive/data/0", float_bytes(a)},
          {"archive/data/1", float_bytes(b)}, {"archive/version", "3\n"}};
}

TEST(ZipIndex, ReadsZip64Archives) {
  const auto recs = small_torch_records();
  const auto z = zip64_archive(recs);
  const auto bytes = to_bytes(z.bytes());
  const auto entries = io::read_zip_central_directory(bytes.data(), bytes.size(), "z64");
  ASSERT_EQ(entries.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(entries[i].name, recs[i].name);
    EXPECT_EQ(entries[i].size, recs[i].data.size());
    EXPECT_EQ(entries[i].comp_size, recs[i].data.size());
    EXPECT_EQ(entries[i].local_offset, z.local_offsets[i]);
    EXPECT_EQ(io::zip_entry_data_offset(bytes.data(), bytes.size(), entries[i], "z64"), z.data_offsets[i]);
    EXPECT_EQ(z.data_offsets[i] % 64, 0u);
  }
}

TEST(TorchBinMmap, OpensZip64Archives) {
  TempDir dir;
  const auto p = dir / "pytorch_model.bin";
  test::write_file(p, zip64_archive(small_torch_records()).bytes());
  auto ck = Checkpoint::open_torch_bin(p);  // libzip must accept it too: both readers agree
  ASSERT_EQ(ck.tensors().size(), 2u);
  EXPECT_EQ(to_float32(ck.get("w")), (std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f}));
  EXPECT_EQ(to_float32(ck.get("b")), (std::vector<float>{-1, -2, -3}));
  const auto ranges = mapped_ranges(p);
  EXPECT_TRUE(inside_any(ck.get("w"), ranges));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ck.get("w").data) % 64, 0u);
}

// A real ZIP64 case: a 4 GiB + storage, so the record after it has a local header offset that
// only the ZIP64 extra field can hold. The file is sparse (the storage is a hole), and nothing
// reads the big storage: it is only mapped.
TEST(TorchBinMmap, RecordsBeyond4GiB) {
  TempDir dir;
  const uint64_t big = (uint64_t{1} << 32) + 256;  // bytes of storage "0"
  const auto space = fs::space(dir.path());
  if (space.available < 2 * big) GTEST_SKIP() << "not enough disk space for a 4 GiB sparse file";
  const std::string pkl = state_dict_pickle({{"big", "ByteStorage", "0", static_cast<int64_t>(big), 0, {static_cast<int64_t>(big)}, {1}},
                                             {"after", "FloatStorage", "1", 3, 0, {3}, {1}}});
  const auto z = zip64_archive({{"archive/data.pkl", pkl}, {"archive/data/0", "", big}, {"archive/data/1", float_bytes({1, 2, 3})}});
  ASSERT_GT(z.local_offsets[2], uint64_t{0xFFFFFFFF});
  const auto p = dir / "pytorch_model.bin";
  z.write(p);
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  if (static_cast<uint64_t>(st.st_blocks) * 512 > (uint64_t{1} << 30)) GTEST_SKIP() << "the filesystem does not keep holes";
  auto ck = Checkpoint::open_torch_bin(p);
  const auto& b = ck.get("big");
  const auto& a = ck.get("after");
  EXPECT_EQ(b.nbytes, big);
  EXPECT_EQ(to_float32(a), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(static_cast<uint64_t>(a.data - b.data), z.data_offsets[2] - z.data_offsets[1]);
  EXPECT_EQ(static_cast<uint8_t>(b.data[big - 1]), 0);  // the last byte of the hole, through the mapping
  const auto ranges = mapped_ranges(p);
  EXPECT_TRUE(inside_any(b, ranges));
  EXPECT_TRUE(inside_any(a, ranges));
}

std::string le_block(uint16_t id, const std::vector<uint64_t>& values, size_t extra_bytes = 0) {
  std::string s;
  put16(s, id), put16(s, values.size() * 8 + extra_bytes);
  for (auto v : values) put64(s, v);
  return s + std::string(extra_bytes, '\0');
}

io::ZipEntry entry_with(uint64_t size, uint64_t comp, uint64_t off) {
  io::ZipEntry e;
  e.name = "x";
  e.size = size, e.comp_size = comp, e.local_offset = off;
  return e;
}

TEST(ZipIndex, Zip64ExtraFieldParser) {
  const uint64_t S = 0xFFFFFFFF;
  auto apply = [](const std::string& extra, io::ZipEntry& e) {
    io::apply_zip64_extra(reinterpret_cast<const std::byte*>(extra.data()), extra.size(), e, "f.bin", "rec");
  };
  // All three saturated: uncompressed, compressed, offset, in that order.
  auto e = entry_with(S, S, S);
  apply(le_block(1, {5000000000, 4000000000, 7000000000}), e);
  EXPECT_EQ(e.size, 5000000000u);
  EXPECT_EQ(e.comp_size, 4000000000u);
  EXPECT_EQ(e.local_offset, 7000000000u);
  // Only the offset saturated: the block's first value is the offset; an unrelated block before
  // it (extended timestamp 0x5455) is skipped, and trailing values (a disk number) are ignored.
  e = entry_with(10, 10, S);
  apply(le_block(0x5455, {}, 5) + le_block(1, {1ull << 33}, 4), e);
  EXPECT_EQ(e.size, 10u);
  EXPECT_EQ(e.local_offset, 1ull << 33);
  // Only the compressed size saturated.
  e = entry_with(10, S, 20);
  apply(le_block(1, {123}), e);
  EXPECT_EQ(e.comp_size, 123u);
  EXPECT_EQ(e.local_offset, 20u);
  // Nothing saturated: the block is not needed and sizes stay.
  e = entry_with(1, 2, 3);
  apply(le_block(1, {99, 98}), e);
  EXPECT_EQ(e.size, 1u);
  EXPECT_EQ(e.comp_size, 2u);

  auto rejects = [&](const std::string& extra, io::ZipEntry e, const std::string& needle) {
    return ThrowsError([&] { apply(extra, e); }, {"f.bin", "rec", needle});
  };
  EXPECT_TRUE(rejects(le_block(1, {1, 2}), entry_with(S, S, S), "local header offset"));  // a value missing
  EXPECT_TRUE(rejects(le_block(1, {}), entry_with(S, 1, 1), "uncompressed size"));
  EXPECT_TRUE(rejects("", entry_with(1, 1, S), "no ZIP64 extra field"));
  EXPECT_TRUE(rejects(le_block(0x5455, {1}), entry_with(1, 1, S), "no ZIP64 extra field"));
  std::string overlong = le_block(1, {1, 2, 3});
  overlong[2] = static_cast<char>(200);  // declares 200 bytes, holds 24
  EXPECT_TRUE(rejects(overlong, entry_with(S, S, S), "runs past"));
  EXPECT_TRUE(rejects(std::string("\x01\x00\x08", 3), entry_with(S, 1, 1), "truncated extra field"));
}

// ---- corrupt archives --------------------------------------------------------------------

void set32(std::vector<std::byte>& b, uint64_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.at(at + i) = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}
void set16(std::vector<std::byte>& b, uint64_t at, uint16_t v) {
  for (int i = 0; i < 2; ++i) b.at(at + i) = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}
uint32_t get32(const std::vector<std::byte>& b, uint64_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b.at(at + i));
  return v;
}

// Parses `b` and, for every record, resolves its data offset; the first error is returned as a
// thrown lmforge::Error like the reader's.
void parse_all(const std::vector<std::byte>& b, const std::string& where) {
  const auto entries = io::read_zip_central_directory(b.data(), b.size(), where);
  uint64_t sum = 0;
  for (const auto& e : entries) {
    const uint64_t off = io::zip_entry_data_offset(b.data(), b.size(), e, where);
    for (uint64_t i = 0; i < e.comp_size; ++i) sum += static_cast<uint8_t>(b[off + i]);  // touch: ASan checks bounds
  }
  (void)sum;
}

TEST(ZipIndex, CorruptDirectoriesAndHeadersAreOneClearError) {
  auto rejects = [](std::vector<std::byte> b, const std::string& needle) {
    return ThrowsError([&] { parse_all(b, "ckpt.bin"); }, {"ckpt.bin", needle});
  };
  // A small archive written by libzip has only the classic end record.
  {
    TempDir dir;
    write_torch_zip(dir / "c.bin", state_dict_pickle({{"w", "FloatStorage", "0", 2, 0, {2}, {1}}}), {{"0", float_bytes({1, 2})}});
    const auto classic = to_bytes(test::read_file(dir / "c.bin"));
    const uint64_t eocd = classic.size() - 22;
    ASSERT_EQ(get32(classic, eocd), 0x06054b50u);
    ASSERT_NE(get32(classic, eocd - 20), 0x07064b50u);
    parse_all(classic, "ckpt.bin");
    auto b = classic;
    set32(b, eocd + 16, static_cast<uint32_t>(classic.size()));  // central directory offset past EOF
    EXPECT_TRUE(rejects(b, "central directory"));
    b = classic;
    set32(b, eocd + 12, 0x7FFFFFFF);  // central directory size past EOF
    EXPECT_TRUE(rejects(b, "central directory"));
    b = classic;
    set16(b, eocd + 8, 2000), set16(b, eocd + 10, 2000);  // more records than the directory can hold
    EXPECT_TRUE(rejects(b, "records"));
    b = classic;
    set32(b, eocd + 16, 0xFFFFFFFF);  // saturated, but there is no ZIP64 record
    EXPECT_TRUE(rejects(b, "ZIP64"));
  }

  // A real torch.save file: ZIP64 end records (torch always writes them) after the classic one.
  const auto good = to_bytes(test::read_file(test::model_dir("gpt2-f16") / "pytorch_model.bin"));
  const uint64_t eocd = good.size() - 22;
  ASSERT_EQ(get32(good, eocd), 0x06054b50u);  // torch.save writes no archive comment
  const uint64_t cd = get32(good, eocd + 16);
  ASSERT_EQ(get32(good, cd), 0x02014b50u);
  parse_all(good, "ckpt.bin");
  auto b = good;
  set32(b, eocd + 16, static_cast<uint32_t>(cd + 1));  // the two end records disagree
  EXPECT_TRUE(rejects(b, "disagrees with its ZIP64 record"));
  b = good;
  set16(b, eocd + 10, 1);  // entries on this disk != total
  EXPECT_TRUE(rejects(b, "multi-disk"));
  b = good;
  set32(b, cd, 0x12345678);
  EXPECT_TRUE(rejects(b, "bad signature"));
  b = good;
  set16(b, cd + 28, 0xFFFF);  // the first name runs past the directory
  EXPECT_TRUE(rejects(b, "run past the end of the central directory"));
  b = good;
  set32(b, cd + 42, static_cast<uint32_t>(good.size() - 10));  // local header beyond EOF
  EXPECT_TRUE(rejects(b, "beyond the end of the file"));
  b = good;
  set32(b, cd + 42, 0xFFFFFFF0u - 1);  // near 4 GB, far beyond this file
  EXPECT_TRUE(rejects(b, "beyond the end of the file"));
  b = good;
  set32(b, cd + 42, 0xFFFFFFFF);  // saturated without a ZIP64 extra field
  EXPECT_TRUE(rejects(b, "ZIP64"));
  b = good;
  set32(b, cd + 42, 1);  // not a local header
  EXPECT_TRUE(rejects(b, "bad local header signature"));
  b = good;
  set32(b, cd + 20, 0x7FFFFFFF);  // the data would run past EOF
  EXPECT_TRUE(rejects(b, "run past the end of the file"));
  b = good;
  const auto entries = io::read_zip_central_directory(good.data(), good.size(), "x");
  set16(b, entries.back().local_offset + 28, 0xFFFF);  // the last local header's extra field runs past EOF
  EXPECT_TRUE(rejects(b, "local header runs past the end of the file"));
  b = good;
  set16(b, 26, 3);  // local header name differs from the central directory's
  EXPECT_TRUE(rejects(b, "different record"));
  b = good;
  set32(b, eocd, 0);  // no EOCD
  EXPECT_TRUE(rejects(b, "no end of central directory"));
  EXPECT_TRUE(rejects(std::vector<std::byte>(good.begin(), good.begin() + 21), "too short"));
  EXPECT_TRUE(rejects({}, "too short"));
  for (uint64_t cut : {uint64_t{1}, uint64_t{21}, uint64_t{22}, uint64_t{23}, good.size() - cd, good.size() / 2})
    EXPECT_TRUE(rejects(std::vector<std::byte>(good.begin(), good.end() - static_cast<long>(cut)), "ckpt.bin")) << cut;
  // Saturated classic fields are fine next to a ZIP64 record.
  b = good;
  set32(b, eocd + 16, 0xFFFFFFFF), set32(b, eocd + 12, 0xFFFFFFFF), set16(b, eocd + 8, 0xFFFF), set16(b, eocd + 10, 0xFFFF);
  parse_all(b, "ckpt.bin");

  // ZIP64 end records pointing nowhere.
  const auto z = to_bytes(zip64_archive(small_torch_records()).bytes());
  parse_all(z, "ckpt.bin");
  const uint64_t loc = z.size() - 22 - 20;
  ASSERT_EQ(get32(z, loc), 0x07064b50u);
  b = z;
  set32(b, loc + 8, static_cast<uint32_t>(z.size()));
  EXPECT_TRUE(rejects(b, "ZIP64 end of central directory offset"));
  b = z;
  set32(b, loc + 8, 0);  // points at a local header
  EXPECT_TRUE(rejects(b, "bad ZIP64 end of central directory signature"));
  b = z;
  const uint64_t rec = get32(z, loc + 8);
  set32(b, rec + 40, 0x7FFFFFFF);  // ZIP64 directory size past its end record
  EXPECT_TRUE(rejects(b, "central directory"));
  b = z;
  set32(b, rec + 48, static_cast<uint32_t>(z.size()));  // ZIP64 directory offset past EOF
  EXPECT_TRUE(rejects(b, "central directory"));
  b = z;
  set32(b, rec + 24, 1000), set32(b, rec + 32, 1000);  // more records than the directory can hold
  EXPECT_TRUE(rejects(b, "records"));
  // Same on the torch.save fixture's ZIP64 record.
  const uint64_t rec_real = get32(good, eocd - 20 + 8);
  ASSERT_EQ(get32(good, rec_real), 0x06064b50u);
  b = good;
  set32(b, rec_real + 48, static_cast<uint32_t>(good.size()));
  set32(b, eocd + 16, 0xFFFFFFFF);
  EXPECT_TRUE(rejects(b, "central directory"));
}

TEST(TorchBinMmap, CorruptFilesAreOneClearError) {
  const std::string real = test::read_file(test::model_dir("gpt2-f16") / "pytorch_model.bin");
  TempDir dir;
  const auto p = dir / "pytorch_model.bin";
  auto check = [&](const std::string& bytes) {
    test::write_file(p, bytes);
    return ThrowsError([&] { Checkpoint::open_torch_bin(p); }, {p.string()});
  };
  EXPECT_TRUE(check(""));  // libzip takes an empty file for an empty archive; the index does not
  // Truncations at many points (the central directory is at the end).
  for (size_t cut : {size_t{1}, size_t{10}, size_t{22}, size_t{100}, size_t{2000}, real.size() / 2, real.size() - 10})
    EXPECT_TRUE(check(real.substr(0, real.size() - cut))) << cut;
  // The first storage's local header offset moved beyond EOF, in the central directory.
  auto bytes = to_bytes(real);
  const uint64_t cd = get32(bytes, bytes.size() - 22 + 16);
  uint64_t pos = cd;
  auto entries = io::read_zip_central_directory(bytes.data(), bytes.size(), "x");
  for (const auto& e : entries) {
    if (e.name.find("/data/") != std::string::npos) {
      set32(bytes, pos + 42, static_cast<uint32_t>(bytes.size() + 100));
      break;
    }
    pos += 46 + e.name.size() + (static_cast<uint8_t>(bytes[pos + 30]) | (static_cast<uint8_t>(bytes[pos + 31]) << 8)) +
           (static_cast<uint8_t>(bytes[pos + 32]) | (static_cast<uint8_t>(bytes[pos + 33]) << 8));
  }
  EXPECT_TRUE(check(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
}

// Random byte corruptions of the central directory, end records and local headers: the parser
// alone (no libzip in front of it) and the whole reader end in a clean lmforge::Error or in a
// consistent result; never a crash or an out-of-bounds read (run under ASan).
TEST(ZipIndex, RandomHeaderCorruptionsNeverCrash) {
  const auto good = to_bytes(test::read_file(test::model_dir("gpt2-f16") / "pytorch_model.bin"));
  const auto entries = io::read_zip_central_directory(good.data(), good.size(), "x");
  const uint64_t cd = get32(good, good.size() - 22 + 16);
  std::vector<uint64_t> local;
  for (const auto& e : entries) local.push_back(e.local_offset);
  const auto z64 = to_bytes(zip64_archive(small_torch_records()).bytes());
  std::mt19937 rng(7);
  TempDir dir;
  const auto p = dir / "fuzz.bin";
  int errors = 0, ok = 0;
  for (int i = 0; i < 600; ++i) {
    const bool zip64 = i % 3 == 2;
    auto b = zip64 ? z64 : good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      uint64_t at;
      if (zip64 || rng() % 2 == 0) {
        const uint64_t from = zip64 ? b.size() / 2 : cd;  // the directory and end records
        at = from + rng() % (b.size() - from);
      } else {
        at = local[rng() % local.size()] + rng() % 34;  // a local header
      }
      b[at] = static_cast<std::byte>(rng() % 256);
    }
    if (rng() % 8 == 0) b.resize(b.size() - 1 - rng() % 64);
    try {
      parse_all(b, p.string());
      ++ok;
    } catch (const Error& e) {
      ++errors;
      ASSERT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
    if (i % 6 == 0) {
      test::write_file(p, std::string(reinterpret_cast<const char*>(b.data()), b.size()));
      try {
        auto ck = Checkpoint::open_torch_bin(p);
        for (const auto& [name, t] : ck.tensors()) ASSERT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * dtype_size(t.dtype));
      } catch (const Error& e) {
        ASSERT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
        ASSERT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace lmforge
