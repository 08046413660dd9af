#pragma once
// A minimal, read-only ZIP central directory reader over bytes already in memory (a file
// mapping). libzip reads the records of a pytorch_model.bin, but it does not tell where a
// record's bytes lie in the file; torch.save stores storages uncompressed (STORE), so knowing
// that offset lets the .bin reader point tensors straight into an mmap of the file instead of
// copying gigabytes onto the heap. Every number is untrusted: each one is bounds-checked against
// the size of the file, and any inconsistency is one lmforge::Error naming `where`.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lmforge::io {

struct ZipEntry {
  std::string name;         // raw bytes as stored in the central directory
  uint16_t flags = 0;       // general purpose bit flag (bit 0: encrypted)
  uint16_t method = 0;      // 0 = STORE, 8 = DEFLATE, ...
  uint64_t comp_size = 0;   // bytes of (possibly compressed) data in the file
  uint64_t size = 0;        // uncompressed bytes
  uint64_t local_offset = 0;  // offset of the local file header
};

constexpr uint16_t kZipStore = 0;

// The entries of the central directory, in order (the same order as libzip's indices), with
// ZIP64 records and extra fields applied. Throws lmforge::Error("<where>: ...") when the end of
// central directory record is missing or anything points outside [0, size).
std::vector<ZipEntry> read_zip_central_directory(const std::byte* data, uint64_t size, const std::string& where);

// Offset in the file of the first byte of `e`'s data, from its local file header. Checks the
// header's signature, that it names the same record as the central directory, and that the
// header and all `e.comp_size` data bytes lie inside the file.
uint64_t zip_entry_data_offset(const std::byte* data, uint64_t size, const ZipEntry& e, const std::string& where);

// Applies a central directory extra field block (a sequence of {id, len, payload}) to `e`:
// for the ZIP64 block (id 0x0001), each of e.size, e.comp_size, e.local_offset that holds
// 0xFFFFFFFF is replaced, in that order, by the next 8-byte value. Missing values, or a block
// running past `len`, throw lmforge::Error naming `where` and `label`. Other blocks are skipped.
void apply_zip64_extra(const std::byte* extra, size_t len, ZipEntry& e, const std::string& where, const std::string& label);

}  // namespace lmforge::io
