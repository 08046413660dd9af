// pytorch_model.bin: the zip written by torch.save (since torch 1.6). `<archive>/data.pkl` is a
// pickle of the state dict whose tensors refer, by persistent id, to raw storages stored as
// `<archive>/data/<key>`. The file is mmap'd; storages written uncompressed (STORE, which is
// what torch.save always does) are views straight into the mapping, so a 24 GB checkpoint does
// not need 24 GB of heap; compressed records (a re-zipped file) are decompressed into owned
// buffers. Tensors are views into their storage.
#include <zip.h>

#include <cstring>
#include <new>
#include <optional>
#include <unordered_map>

#include "io/checkpoint_builder.h"
#include "io/io_util.h"
#include "io/pickle.h"
#include "io/zip_index.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {

namespace {

using io::fail;
using io::printable;

// data.pkl holds only names and small tuples; a gigabyte of pickle is not a state dict.
constexpr uint64_t kMaxPickleBytes = uint64_t{1} << 30;

struct ZipDiscard {
  void operator()(zip_t* z) const { zip_discard(z); }  // read-only: discard, never write back
};
using ZipPtr = std::unique_ptr<zip_t, ZipDiscard>;

struct ZipFileClose {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

ZipPtr open_zip(const std::filesystem::path& file, const std::string& where) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) fail(where, "file not found");
  if (!std::filesystem::is_regular_file(file, ec)) fail(where, "not a regular file");
  int err = 0;
  zip_t* z = zip_open(file.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err);
  if (z == nullptr) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, err);
    std::string msg = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    fail(where, "not a readable zip archive (" + printable(msg) + "); only torch.save's zip format is supported");
  }
  return ZipPtr(z);
}

// torch.save puts every record under one top-level folder named after the file ("archive/",
// "pytorch_model/", ...); the folder holding data.pkl is that prefix.
std::string find_prefix(zip_t* z, const std::string& where) {
  const zip_int64_t n = zip_get_num_entries(z, 0);
  std::optional<std::string> prefix;
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* name = zip_get_name(z, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
    if (name == nullptr) continue;
    std::string_view s(name);
    constexpr std::string_view kPkl = "/data.pkl";
    if (s.size() <= kPkl.size() || s.substr(s.size() - kPkl.size()) != kPkl) continue;
    if (s.find('/') != s.size() - kPkl.size()) continue;  // only "<prefix>/data.pkl", one level deep
    if (prefix) fail(where, "zip holds more than one data.pkl");
    prefix = std::string(s.substr(0, s.size() - kPkl.size() + 1));
  }
  if (!prefix) fail(where, "zip has no <archive>/data.pkl record; not a torch.save file");
  return *prefix;
}

std::optional<zip_uint64_t> locate(zip_t* z, const std::string& name) {
  const zip_int64_t idx = zip_name_locate(z, name.c_str(), ZIP_FL_ENC_RAW);
  if (idx < 0) return std::nullopt;
  return static_cast<zip_uint64_t>(idx);
}

uint64_t entry_size(zip_t* z, zip_uint64_t idx, const std::string& where, const std::string& label) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(z, idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
    fail(where, label + ": cannot stat zip record: " + printable(zip_strerror(z)));
  return st.size;
}

// Reads exactly `n` bytes of a record (decompressing if needed), then reads once more so libzip
// reaches the end of the record and verifies its CRC; a record longer than declared is an error.
void read_entry(zip_t* z, zip_uint64_t idx, std::byte* dst, uint64_t n, const std::string& where, const std::string& label) {
  std::unique_ptr<zip_file_t, ZipFileClose> f(zip_fopen_index(z, idx, 0));
  if (!f) fail(where, label + ": cannot open zip record: " + printable(zip_strerror(z)));
  uint64_t got = 0;
  while (got < n) {
    const zip_int64_t r = zip_fread(f.get(), dst + got, n - got);
    if (r < 0) fail(where, label + ": cannot read zip record: " + printable(zip_file_strerror(f.get())));
    if (r == 0) break;
    got += static_cast<uint64_t>(r);
  }
  if (got != n) fail(where, label + ": zip record is truncated (" + std::to_string(got) + " of " + std::to_string(n) + " bytes)");
  char extra;
  const zip_int64_t r = zip_fread(f.get(), &extra, 1);
  if (r < 0) fail(where, label + ": cannot read zip record: " + printable(zip_file_strerror(f.get())));
  if (r > 0) fail(where, label + ": zip record is longer than its recorded size");
}

std::vector<std::byte> read_small_entry(zip_t* z, zip_uint64_t idx, uint64_t max, const std::string& where,
                                        const std::string& label) {
  const uint64_t size = entry_size(z, idx, where, label);
  if (size > max) fail(where, label + " is " + std::to_string(size) + " bytes, too large");
  std::vector<std::byte> buf;
  try {
    buf.resize(size);
  } catch (const std::bad_alloc&) {
    fail(where, label + ": cannot allocate " + std::to_string(size) + " bytes");
  }
  read_entry(z, idx, buf.data(), size, where, label);
  return buf;
}

// The optional "byteorder" record (torch >= 1.12). Storages are raw native bytes, and every
// reader here assumes little-endian data.
void check_byteorder(zip_t* z, const std::string& prefix, const std::string& where) {
  auto idx = locate(z, prefix + "byteorder");
  if (!idx) return;  // older torch: always little-endian in practice
  auto bytes = read_small_entry(z, *idx, 16, where, "byteorder");
  std::string s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (s != "little") fail(where, "storages are '" + printable(s) + "'-endian; only little-endian is supported");
}

struct Storage {
  const std::byte* data;  // into the file mapping, or into a heap buffer the builder owns
  DType dtype;
  uint64_t numel;
};

// The archive opened twice over: by libzip (names, stat, decompression, CRC of small records)
// and as a read-only mapping with its central directory parsed by hand (where each record's
// bytes lie, which libzip does not expose).
struct Archive {
  zip_t* zip;
  std::shared_ptr<const io::MappedFile> map;
  std::vector<io::ZipEntry> entries;  // index i is libzip's index i
};

// Reads <prefix>data/<key> once; its size must match the pickle's element count exactly.
// A STORE record becomes a view into the mapping. Its CRC is deliberately not checked: that
// would read every byte of the checkpoint up front (24 GB for GPT-J-6B in fp32) and defeat the
// point of mapping it; the sizes and offsets are still validated against the central directory,
// the local header, libzip and the pickle. Compressed records are inflated by libzip into a
// heap buffer, which verifies their CRC.
Storage load_storage(const Archive& a, const std::string& prefix, const io::PickledTensor& t, const std::string& where,
                     CheckpointBuilder& b) {
  zip_t* z = a.zip;
  const std::string label = "storage 'data/" + printable(t.storage_key) + "' of tensor '" + printable(t.name) + "'";
  auto idx = locate(z, prefix + "data/" + t.storage_key);
  if (!idx) fail(where, label + " is missing from the archive");
  uint64_t expected = 0;
  if (!io::mul_ok(t.storage_numel, dtype_size(t.dtype), &expected)) fail(where, label + ": element count is too large");
  const uint64_t size = entry_size(z, *idx, where, label);
  if (size != expected)
    fail(where, label + " holds " + std::to_string(size) + " bytes but the pickle declares " + std::to_string(t.storage_numel) +
                    " " + dtype_name(t.dtype) + " elements (" + std::to_string(expected) + " bytes)");
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(z, *idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_COMP_METHOD) || !(st.valid & ZIP_STAT_COMP_SIZE))
    fail(where, label + ": cannot stat zip record: " + printable(zip_strerror(z)));
  // libzip and the hand-parsed central directory must describe the same record.
  if (*idx >= a.entries.size()) fail(where, label + ": zip record index is outside the central directory");
  const io::ZipEntry& e = a.entries[*idx];
  if (e.name != prefix + "data/" + t.storage_key || e.method != st.comp_method || e.size != size ||
      e.comp_size != st.comp_size)
    fail(where, label + ": central directory disagrees with libzip about this record");
  constexpr uint16_t kEncrypted = 1;
  if (e.method == io::kZipStore && !(e.flags & kEncrypted)) {
    if (e.comp_size != e.size) fail(where, label + ": stored record has different compressed and uncompressed sizes");
    // Checked: the local header is valid and [off, off + size) lies inside the file (which is
    // not empty, since it holds a central directory, so the mapping is not null).
    const uint64_t off = io::zip_entry_data_offset(a.map->data(), a.map->size(), e, where);
    return Storage{a.map->data() + off, t.dtype, t.storage_numel};
  }
  auto buf = io::AlignedBuffer::allocate(size, where);
  read_entry(z, *idx, buf->data(), size, where, label);
  b.own(buf);
  return Storage{buf->data(), t.dtype, t.storage_numel};
}

bool is_contiguous(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides) {
  int64_t expected = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    if (sizes[d] != 1 && strides[d] != expected) return false;  // stride of a size-1 dim is irrelevant
    expected *= sizes[d];  // no overflow: the caller checked the product of sizes
  }
  return true;
}

// Gathers a strided view into a dense row-major copy, walking the index like an odometer.
void copy_strided(const std::byte* src, std::byte* dst, size_t es, const io::PickledTensor& t, uint64_t numel) {
  const size_t nd = t.sizes.size();
  std::vector<int64_t> idx(nd, 0);
  uint64_t el = t.offset;
  for (uint64_t n = 0; n < numel; ++n) {
    std::memcpy(dst + n * es, src + el * es, es);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < t.sizes[d]) {
        el += static_cast<uint64_t>(t.strides[d]);
        break;
      }
      el -= static_cast<uint64_t>(t.strides[d]) * static_cast<uint64_t>(t.sizes[d] - 1);
      idx[d] = 0;
    }
  }
}

// The view of one tensor into its storage. Every element it can touch must lie inside the
// storage; non-contiguous views (rare in state dicts) become contiguous copies.
TensorView make_view(const io::PickledTensor& t, const Storage& s, const std::string& where, CheckpointBuilder& b) {
  const std::string tag = "tensor '" + printable(t.name) + "'";
  const size_t es = dtype_size(t.dtype);
  uint64_t numel = 0, nbytes = 0;
  if (!io::checked_numel(t.sizes, &numel) || !io::mul_ok(numel, es, &nbytes)) fail(where, tag + ": size is too large");
  TensorView v;
  v.dtype = t.dtype;
  v.shape = t.sizes;
  v.source = where;
  v.nbytes = nbytes;
  if (numel == 0) {
    if (t.offset > s.numel) fail(where, tag + ": storage offset is beyond its storage");
    v.data = s.data + t.offset * es;
    return v;
  }
  // Largest element index the view reaches: offset + sum((size-1) * stride).
  uint64_t last = t.offset;
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    uint64_t span = 0;
    if (!io::mul_ok(static_cast<uint64_t>(t.sizes[d] - 1), static_cast<uint64_t>(t.strides[d]), &span) ||
        !io::add_ok(last, span, &last))
      fail(where, tag + ": strides are too large");
  }
  if (last >= s.numel)
    fail(where, tag + ": offset " + std::to_string(t.offset) + " with its size/stride needs element " + std::to_string(last) +
                    " but its storage has " + std::to_string(s.numel));
  if (is_contiguous(t.sizes, t.strides)) {
    v.data = s.data + t.offset * es;
    return v;
  }
  // A gathered copy is never larger than the storage it reads (stride-0 "expanded" views could
  // otherwise ask for terabytes from a few bytes of file); state dicts never hold such views.
  if (numel > s.numel)
    fail(where, tag + ": non-contiguous view has more elements (" + std::to_string(numel) + ") than its storage (" +
                    std::to_string(s.numel) + ")");
  auto copy = io::AlignedBuffer::allocate(nbytes, where);
  copy_strided(s.data, copy->data(), es, t, numel);
  v.data = copy->data();
  b.own(copy);
  return v;
}

}  // namespace

Checkpoint Checkpoint::open_torch_bin(const std::filesystem::path& file) {
  const std::string where = file.string();
  ZipPtr zip = open_zip(file, where);
  Archive archive{zip.get(), io::MappedFile::open(file), {}};
  archive.entries = io::read_zip_central_directory(archive.map->data(), archive.map->size(), where);
  const zip_int64_t n_entries = zip_get_num_entries(zip.get(), 0);
  if (n_entries < 0 || static_cast<uint64_t>(n_entries) != archive.entries.size())
    fail(where, "zip: central directory holds " + std::to_string(archive.entries.size()) + " records but libzip reads " +
                    std::to_string(n_entries));
  const std::string prefix = find_prefix(zip.get(), where);
  check_byteorder(zip.get(), prefix, where);
  auto pkl_idx = locate(zip.get(), prefix + "data.pkl");
  if (!pkl_idx) fail(where, "cannot locate data.pkl");
  const auto pkl = read_small_entry(zip.get(), *pkl_idx, kMaxPickleBytes, where, "data.pkl");
  const auto tensors = io::parse_torch_pickle(pkl, where);

  CheckpointBuilder b;
  b.own_mapping(archive.map);  // views point into it; registered so Checkpoint::release can drop its pages
  std::unordered_map<std::string, Storage> storages;  // key -> bytes; tied weights share one
  for (const auto& t : tensors) {
    auto it = storages.find(t.storage_key);
    if (it == storages.end()) {
      it = storages.emplace(t.storage_key, load_storage(archive, prefix, t, where, b)).first;
    } else if (it->second.dtype != t.dtype || it->second.numel != t.storage_numel) {
      fail(where, "storage 'data/" + printable(t.storage_key) + "' is declared with two different types or sizes");
    }
    b.add(where, t.name, make_view(t, it->second, where, b));
  }
  b.describe(io::short_name(file));
  return b.take();
}

}  // namespace lmforge
