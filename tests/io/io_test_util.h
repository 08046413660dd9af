#pragma once
// Helpers for the io tests: temp folders, raw file writing, hand-made safetensors / torch zips
// (so corrupt inputs can be crafted byte by byte), and an assertion for lmforge::Error messages.
#include <gtest/gtest.h>
#include <zip.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "lmforge/error.h"

namespace lmforge::test {

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lmforge-io-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file with the given header text (not padded, not validated) and data bytes.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// f() must throw lmforge::Error with a one-line message containing every needle (file names,
// tensor names, the reason). Any other outcome is a failure that prints the message.
template <typename F>
::testing::AssertionResult ThrowsError(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const lmforge::Error& e) {
    const std::string m = e.what();
    if (m.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "message is not one line: " << m;
    for (const auto& n : needles)
      if (m.find(n) == std::string::npos) return ::testing::AssertionFailure() << "message '" << m << "' lacks '" << n << "'";
    return ::testing::AssertionSuccess() << m;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-lmforge exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

// Emits pickle opcodes by hand, the way torch.save (protocol 2) lays out a state dict.
class PickleWriter {
 public:
  PickleWriter& raw(const std::string& bytes) {
    out_ += bytes;
    return *this;
  }
  PickleWriter& op(char c) {
    out_ += c;
    return *this;
  }
  PickleWriter& proto(int v = 2) { return op('\x80').op(static_cast<char>(v)); }
  PickleWriter& mark() { return op('('); }
  PickleWriter& str(const std::string& s) {  // BINUNICODE
    op('X');
    for (int i = 0; i < 4; ++i) out_ += static_cast<char>((s.size() >> (8 * i)) & 0xff);
    out_ += s;
    return *this;
  }
  PickleWriter& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').op(static_cast<char>(v));                           // BININT1
    if (v >= 0 && v < 65536) return op('M').op(static_cast<char>(v & 0xff)).op(static_cast<char>(v >> 8));  // BININT2
    if (v >= INT32_MIN && v <= INT32_MAX) {                                                      // BININT
      op('J');
      for (int i = 0; i < 4; ++i) out_ += static_cast<char>((static_cast<uint32_t>(v) >> (8 * i)) & 0xff);
      return *this;
    }
    op('\x8a').op(8);  // LONG1, 8 bytes
    for (int i = 0; i < 8; ++i) out_ += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
    return *this;
  }
  PickleWriter& global(const std::string& module, const std::string& name) { return op('c').raw(module + "\n" + name + "\n"); }
  PickleWriter& tuple_of(const std::vector<int64_t>& v) {
    mark();
    for (auto x : v) integer(x);
    return op('t');
  }
  PickleWriter& put(int i) { return op('q').op(static_cast<char>(i)); }
  PickleWriter& get(int i) { return op('h').op(static_cast<char>(i)); }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

struct PickledEntry {
  std::string name;
  std::string storage_type;  // "FloatStorage", ...
  std::string key;           // zip record data/<key>
  int64_t storage_numel;
  int64_t offset;
  std::vector<int64_t> sizes, strides;
};

// A state dict pickle: {name: _rebuild_tensor_v2(persistent storage, offset, sizes, strides, False, OrderedDict())}.
inline std::string state_dict_pickle(const std::vector<PickledEntry>& entries) {
  PickleWriter w;
  w.proto().op('}').mark();
  for (const auto& e : entries) {
    w.str(e.name).global("torch._utils", "_rebuild_tensor_v2").mark();
    w.mark().str("storage").global("torch", e.storage_type).str(e.key).str("cpu").integer(e.storage_numel).op('t').op('Q');
    w.integer(e.offset).tuple_of(e.sizes).tuple_of(e.strides).op('\x89');
    w.global("collections", "OrderedDict").op(')').op('R');
    w.op('t').op('R');
  }
  w.op('u').op('.');
  return w.bytes();
}

// A torch.save-style zip: <prefix>/data.pkl, <prefix>/data/<key> for each storage, plus any
// extra records (e.g. "byteorder"). `compress` deflates the storages instead of storing them.
inline void write_torch_zip(const std::filesystem::path& file, const std::string& pkl,
                            const std::map<std::string, std::string>& storages,
                            const std::map<std::string, std::string>& extra = {}, bool compress = false,
                            const std::string& prefix = "archive") {
  int err = 0;
  zip_t* z = zip_open(file.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (z == nullptr) throw std::runtime_error("zip_open failed");
  // libzip reads the buffers at zip_close, so keep them alive in this list until then.
  std::vector<std::pair<std::string, std::string>> records;
  records.emplace_back(prefix + "/data.pkl", pkl);
  for (const auto& [k, v] : storages) records.emplace_back(prefix + "/data/" + k, v);
  for (const auto& [k, v] : extra) records.emplace_back(prefix + "/" + k, v);
  for (const auto& [name, data] : records) {
    zip_source_t* src = zip_source_buffer(z, data.data(), data.size(), 0);
    zip_int64_t idx = zip_file_add(z, name.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) throw std::runtime_error("zip_file_add failed");
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  if (zip_close(z) != 0) throw std::runtime_error("zip_close failed");
}

// Little-endian bytes of a float array.
inline std::string float_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

}  // namespace lmforge::test
