#pragma once
// Helpers shared by the readers in src/io: one-line error messages, overflow-checked arithmetic
// for sizes read from untrusted files, read-only file mappings and aligned owned buffers.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/error.h"

namespace lmforge::io {

// Makes an untrusted string (tensor name, pickle global, JSON snippet) safe to put in a one-line
// error message: control and non-ASCII bytes become \xNN, and very long strings are cut, so a
// hostile file can neither break the "one line" rule nor flood the terminal.
std::string printable(std::string_view s, size_t max_len = 200);

// Throws lmforge::Error("<where>: <what>"). `where` is normally a file path.
[[noreturn]] void fail(const std::string& where, const std::string& what);

// "dir/file" for descriptions: the last folder plus the file name, e.g. "gpt2/model.safetensors".
std::string short_name(const std::filesystem::path& file);

// Overflow-checked arithmetic: false when the exact result does not fit.
inline bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
inline bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

// Product of the dims, or false on overflow / a negative dim. Used before every allocation or
// bounds check that depends on a shape read from a file.
bool checked_numel(const std::vector<int64_t>& shape, uint64_t* out);

// A read-only private mapping of a whole file. Tensors of safetensors files point straight into
// it; the Checkpoint keeps the shared_ptr alive as long as any view may be used.
class MappedFile {
 public:
  // Throws lmforge::Error naming `file` when it is missing or cannot be mapped.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& file);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;  // nullptr for an empty file (mmap cannot map 0 bytes)
  size_t size_ = 0;
};

// Heap bytes aligned to 64 (a cache line, enough for any SIMD load), for storages decompressed
// from .bin archives and materialised copies of strided tensors.
class AlignedBuffer {
 public:
  // Throws lmforge::Error naming `where` when the allocation fails (sizes come from files).
  static std::shared_ptr<AlignedBuffer> allocate(size_t nbytes, const std::string& where);
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  AlignedBuffer() = default;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole small file (config.json, index.json). Throws lmforge::Error naming it.
std::string read_text_file(const std::filesystem::path& file, const std::string& what);

}  // namespace lmforge::io
