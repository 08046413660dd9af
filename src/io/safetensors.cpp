// Safetensors: 8-byte little-endian header length N, N bytes of JSON, then the tensor data.
// Reading maps the file and hands out views into the mapping (zero copy); every number in the
// header is checked before it is used, because the header is untrusted input.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/checkpoint_builder.h"
#include "io/io_util.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {

namespace {

using nlohmann::json;
using io::fail;
using io::printable;

// The reference implementation (safetensors crate) refuses headers above 100 MB; so do we, so a
// hostile length cannot make us parse gigabytes of JSON.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;  // relative to the start of the data section
};

std::string tensor_tag(const std::string& name) { return "tensor '" + printable(name) + "'"; }

uint64_t read_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// A non-negative JSON integer. Floats, strings, booleans and negatives are rejected by name.
uint64_t json_uint(const json& v, const std::string& where, const std::string& what) {
  if (!v.is_number_integer()) fail(where, what + " must be an integer, got " + printable(v.dump(), 60));
  if (!v.is_number_unsigned()) fail(where, what + " is negative (" + v.dump() + ")");
  return v.get<uint64_t>();
}

std::vector<int64_t> parse_shape(const json& v, const std::string& where, const std::string& tag) {
  if (!v.is_array()) fail(where, tag + ": 'shape' must be an array");
  std::vector<int64_t> shape;
  for (size_t i = 0; i < v.size(); ++i) {
    uint64_t d = json_uint(v[i], where, tag + ": shape[" + std::to_string(i) + "]");
    if (d > static_cast<uint64_t>(INT64_MAX)) fail(where, tag + ": shape[" + std::to_string(i) + "] is too large");
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// One header entry: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, checked
// against itself (byte size) but not yet against the file or the other entries.
Entry parse_entry(const std::string& name, const json& v, const std::string& where) {
  const std::string tag = tensor_tag(name);
  if (!v.is_object()) fail(where, tag + ": header entry must be an object");
  auto need = [&](const char* key) -> const json& {
    auto it = v.find(key);
    if (it == v.end()) fail(where, tag + ": missing '" + key + "'");
    return *it;
  };
  Entry e;
  e.name = name;
  const json& dt = need("dtype");
  if (!dt.is_string()) fail(where, tag + ": 'dtype' must be a string");
  e.dtype = parse_dtype(dt.get<std::string>(), where + ": " + tag);
  e.shape = parse_shape(need("shape"), where, tag);
  const json& off = need("data_offsets");
  if (!off.is_array() || off.size() != 2) fail(where, tag + ": 'data_offsets' must be [begin, end]");
  e.begin = json_uint(off[0], where, tag + ": data_offsets[0]");
  e.end = json_uint(off[1], where, tag + ": data_offsets[1]");
  if (e.begin > e.end)
    fail(where, tag + ": data_offsets begin " + std::to_string(e.begin) + " > end " + std::to_string(e.end));
  uint64_t numel = 0, nbytes = 0;
  if (!io::checked_numel(e.shape, &numel) || !io::mul_ok(numel, dtype_size(e.dtype), &nbytes))
    fail(where, tag + ": shape " + shape_str(e.shape) + " is too large");
  if (nbytes != e.end - e.begin)
    fail(where, tag + ": shape " + shape_str(e.shape) + " of " + dtype_name(e.dtype) + " needs " +
                    std::to_string(nbytes) + " bytes but data_offsets span " + std::to_string(e.end - e.begin));
  return e;
}

// "__metadata__" is a string -> string map by the format's definition.
void check_metadata(const json& v, const std::string& where) {
  if (!v.is_object()) fail(where, "'__metadata__' must be an object");
  for (auto it = v.begin(); it != v.end(); ++it)
    if (!it.value().is_string()) fail(where, "'__metadata__' value '" + printable(it.key()) + "' must be a string");
}

// Every tensor must lie inside the data section and no two may share bytes (a writer bug or a
// crafted file; either way the weights would be garbage).
void check_ranges(std::vector<Entry>& entries, uint64_t data_size, const std::string& where) {
  for (const auto& e : entries)
    if (e.end > data_size)
      fail(where, tensor_tag(e.name) + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                      "] are beyond the " + std::to_string(data_size) + " bytes of tensor data");
  std::vector<const Entry*> order;
  for (const auto& e : entries)
    if (e.end > e.begin) order.push_back(&e);  // empty tensors occupy no bytes
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      fail(where, tensor_tag(order[i - 1]->name) + " and " + tensor_tag(order[i]->name) + " have overlapping data_offsets");
}

json parse_header(const std::byte* begin, uint64_t len, const std::string& where) {
  const char* p = reinterpret_cast<const char*>(begin);
  json header;
  try {
    header = json::parse(p, p + len);
  } catch (const json::exception& ex) {
    fail(where, std::string("header is not valid JSON: ") + printable(ex.what()));
  }
  if (!header.is_object()) fail(where, "header must be a JSON object");
  return header;
}

}  // namespace

Checkpoint Checkpoint::open_safetensors(const std::filesystem::path& file) {
  const std::string where = file.string();
  auto map = io::MappedFile::open(file);
  const uint64_t size = map->size();
  if (size < 8) fail(where, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  const uint64_t header_len = read_le64(map->data());
  if (header_len > size - 8)
    fail(where, "header length " + std::to_string(header_len) + " is beyond the file size " + std::to_string(size));
  if (header_len > kMaxHeaderBytes) fail(where, "header length " + std::to_string(header_len) + " exceeds 100 MB");
  json header = parse_header(map->data() + 8, header_len, where);

  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      check_metadata(it.value(), where);
    else
      entries.push_back(parse_entry(it.key(), it.value(), where));
  }
  const uint64_t data_start = 8 + header_len;
  check_ranges(entries, size - data_start, where);

  CheckpointBuilder b;
  for (auto& e : entries) {
    TensorView v;
    v.dtype = e.dtype;
    v.shape = std::move(e.shape);
    v.data = map->data() + data_start + e.begin;
    v.nbytes = e.end - e.begin;
    v.source = where;
    b.add(where, e.name, std::move(v));
  }
  b.own_mapping(map);
  b.describe(io::short_name(file));
  return b.take();
}

// ---- writer ----------------------------------------------------------------------------------

namespace {

// write(2) until done: it may write less than asked (signals, pipes, quotas).
bool write_all(int fd, const void* data, size_t n) {
  auto p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Builds the padded header and validates the inputs; returns the tensors in name order.
std::string build_header(const std::vector<const TensorToWrite*>& sorted, const std::map<std::string, std::string>& metadata,
                         const std::string& where) {
  // Key order as the safetensors library writes it (__metadata__, then the tensors by name, each
  // dtype / shape / data_offsets), so a file we write is byte-identical to HF's for the same tensors.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorToWrite* t : sorted) {
    const std::string tag = tensor_tag(t->name);
    uint64_t numel = 0, nbytes = 0;
    if (!io::checked_numel(t->shape, &numel) || !io::mul_ok(numel, dtype_size(t->dtype), &nbytes))
      fail(where, tag + ": invalid shape " + shape_str(t->shape));
    if (nbytes > 0 && t->data == nullptr) fail(where, tag + ": no data");
    header[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& ex) {  // e.g. a name that is not valid UTF-8
    fail(where, std::string("cannot encode header: ") + printable(ex.what()));
  }
  // Pad with spaces so the data section starts 8-byte aligned (the 8-byte prefix keeps it so).
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// Flushes the directory entry of a rename to disk; best effort (not all filesystems allow it).
void fsync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_safetensors(const std::filesystem::path& file, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string where = file.string();
  std::vector<const TensorToWrite*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i]->name.empty() || sorted[i]->name == "__metadata__")
      fail(where, "invalid tensor name '" + printable(sorted[i]->name) + "'");
    if (i > 0 && sorted[i]->name == sorted[i - 1]->name) fail(where, "duplicate " + tensor_tag(sorted[i]->name));
  }
  const std::string header = build_header(sorted, metadata, where);

  // Write everything to <file>.tmp, fsync, then rename: readers see the old file or the whole
  // new one, never a torn write.
  const std::filesystem::path tmp = file.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(where, std::string("cannot create ") + tmp.string() + ": " + std::strerror(errno));
  // Any failure: report errno, close, and remove the partial temp file.
  auto abort_write = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(where, std::string(what) + " " + tmp.string() + ": " + std::strerror(e));
  };
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((uint64_t{header.size()} >> (8 * i)) & 0xff);
  if (!write_all(fd, len, 8) || !write_all(fd, header.data(), header.size())) abort_write("cannot write");
  for (const TensorToWrite* t : sorted) {
    uint64_t numel = 0;
    io::checked_numel(t->shape, &numel);  // validated in build_header
    if (!write_all(fd, t->data, numel * dtype_size(t->dtype))) abort_write("cannot write");
  }
  if (::fsync(fd) != 0) abort_write("cannot fsync");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail(where, "cannot close " + tmp.string() + ": " + std::strerror(e));
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail(where, std::string("cannot rename from ") + tmp.string() + ": " + std::strerror(e));
  }
  fsync_dir(file.parent_path());
}

}  // namespace lmforge
