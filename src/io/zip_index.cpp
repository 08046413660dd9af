// ZIP central directory reader (APPNOTE.TXT sections 4.3.6-4.3.16), written for the subset
// torch.save produces: one disk, optional ZIP64 records. See zip_index.h.
#include "io/zip_index.h"

#include <algorithm>
#include <cstring>

#include "io/io_util.h"

namespace lmforge::io {

namespace {

constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kLocalSig = 0x04034b50;

constexpr uint64_t kEocdSize = 22;
constexpr uint64_t kMaxComment = 0xFFFF;
constexpr uint64_t kZip64LocatorSize = 20;
constexpr uint64_t kZip64EocdSize = 56;  // fixed part; a larger record may carry extensible data
constexpr uint64_t kCentralSize = 46;
constexpr uint64_t kLocalSize = 30;
constexpr uint32_t kSat32 = 0xFFFFFFFF;
constexpr uint16_t kSat16 = 0xFFFF;

uint16_t le16(const std::byte* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}
uint32_t le32(const std::byte* p) { return uint32_t{le16(p)} | (uint32_t{le16(p + 2)} << 16); }
uint64_t le64(const std::byte* p) { return uint64_t{le32(p)} | (uint64_t{le32(p + 4)} << 32); }

std::string num(uint64_t v) { return std::to_string(v); }
std::string hex16(uint16_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 12; shift >= 0; shift -= 4) s += digits[(v >> shift) & 15];
  return s;
}

// [off, off + len) lies inside a file of `size` bytes (no overflow).
bool inside(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

struct Directory {
  uint64_t entries;  // total number of records
  uint64_t offset;   // of the first central directory header
  uint64_t size;     // bytes of central directory
  uint64_t end;      // where the central directory must end at the latest (the EOCD or ZIP64 EOCD)
};

// The end of central directory record is the last 22+ bytes of the file; only its comment
// (at most 65535 bytes) may follow it, so it is searched for backwards over that window.
Directory find_directory(const std::byte* data, uint64_t size, const std::string& where) {
  if (size < kEocdSize) fail(where, "zip: file is " + num(size) + " bytes, too short for an end of central directory record");
  const uint64_t lowest = size - kEocdSize > kMaxComment ? size - kEocdSize - kMaxComment : 0;
  uint64_t eocd = size;  // not found
  for (uint64_t off = size - kEocdSize + 1; off-- > lowest;) {
    if (le32(data + off) != kEocdSig) continue;
    if (off + kEocdSize + le16(data + off + 20) > size) continue;  // comment would run past EOF: not it
    eocd = off;
    break;
  }
  if (eocd == size) fail(where, "zip: no end of central directory record (truncated or not a zip file)");
  const std::byte* e = data + eocd;
  if (le16(e + 4) != 0 || le16(e + 6) != 0) {
    // Saturated disk numbers are allowed with ZIP64 (their real values are in the ZIP64 record).
    if (!(le16(e + 4) == kSat16 && le16(e + 6) == kSat16)) fail(where, "zip: multi-disk archives are not supported");
  }
  Directory d{le16(e + 10), le32(e + 16), le32(e + 12), eocd};
  if (le16(e + 8) != le16(e + 10)) fail(where, "zip: multi-disk archives are not supported");

  // ZIP64: a 20-byte locator right before the EOCD points at the ZIP64 EOCD record.
  if (eocd >= kZip64LocatorSize && le32(data + eocd - kZip64LocatorSize) == kZip64LocatorSig) {
    const std::byte* loc = data + eocd - kZip64LocatorSize;
    const uint64_t rec = le64(loc + 8);
    if (le32(loc + 4) != 0 || le32(loc + 16) > 1) fail(where, "zip: multi-disk archives are not supported");
    if (!inside(rec, kZip64EocdSize, eocd - kZip64LocatorSize))
      fail(where, "zip: ZIP64 end of central directory offset " + num(rec) + " is outside the file");
    const std::byte* r = data + rec;
    if (le32(r) != kZip64EocdSig) fail(where, "zip: bad ZIP64 end of central directory signature at offset " + num(rec));
    if (le32(r + 16) != 0 || le32(r + 20) != 0 || le64(r + 24) != le64(r + 32))
      fail(where, "zip: multi-disk archives are not supported");
    const Directory z{le64(r + 32), le64(r + 48), le64(r + 40), rec};
    // The classic record's fields hold either 0xFFFF(FFFF) or the same values (torch.save
    // writes both records for every archive); a disagreement means one of them is corrupt.
    if ((d.entries != kSat16 && d.entries != z.entries) || (d.offset != kSat32 && d.offset != z.offset) ||
        (d.size != kSat32 && d.size != z.size))
      fail(where, "zip: end of central directory record disagrees with its ZIP64 record");
    d = z;
  } else if (d.entries == kSat16 || d.offset == kSat32 || d.size == kSat32) {
    fail(where, "zip: end of central directory needs a ZIP64 record, but there is none");
  }
  if (!inside(d.offset, d.size, d.end))
    fail(where, "zip: central directory [" + num(d.offset) + ", +" + num(d.size) + ") is outside the " + num(d.end) +
                    " bytes before its end record");
  // Each header takes at least 46 bytes, so the count cannot exceed what the directory holds.
  if (d.entries > d.size / kCentralSize)
    fail(where, "zip: central directory claims " + num(d.entries) + " records in " + num(d.size) + " bytes");
  return d;
}

}  // namespace

void apply_zip64_extra(const std::byte* extra, size_t len, ZipEntry& e, const std::string& where, const std::string& label) {
  const bool need_size = e.size == kSat32, need_comp = e.comp_size == kSat32, need_off = e.local_offset == kSat32;
  bool seen = false;
  size_t pos = 0;
  while (pos < len) {
    if (len - pos < 4) fail(where, label + ": truncated extra field header");
    const uint16_t id = le16(extra + pos), n = le16(extra + pos + 2);
    pos += 4;
    if (n > len - pos) fail(where, label + ": extra field " + hex16(id) + " of " + num(n) + " bytes runs past its end");
    if (id == 0x0001 && !seen) {
      seen = true;
      const std::byte* p = extra + pos;
      size_t left = n;
      auto take = [&](uint64_t& field, const char* what) {
        if (left < 8) fail(where, label + ": ZIP64 extra field lacks the " + std::string(what));
        field = le64(p);
        p += 8;
        left -= 8;
      };
      if (need_size) take(e.size, "uncompressed size");
      if (need_comp) take(e.comp_size, "compressed size");
      if (need_off) take(e.local_offset, "local header offset");
    }
    pos += n;
  }
  if ((need_size || need_comp || need_off) && !seen)
    fail(where, label + ": sizes or offset are 0xFFFFFFFF but there is no ZIP64 extra field");
}

std::vector<ZipEntry> read_zip_central_directory(const std::byte* data, uint64_t size, const std::string& where) {
  const Directory d = find_directory(data, size, where);
  std::vector<ZipEntry> out;
  out.reserve(d.entries);  // bounded by d.size / 46 above
  const uint64_t end = d.offset + d.size;
  uint64_t pos = d.offset;
  for (uint64_t i = 0; i < d.entries; ++i) {
    const std::string label = "zip central directory record " + num(i);
    if (!inside(pos, kCentralSize, end)) fail(where, label + " runs past the end of the central directory");
    const std::byte* h = data + pos;
    if (le32(h) != kCentralSig) fail(where, label + ": bad signature at offset " + num(pos));
    const uint64_t n = le16(h + 28), m = le16(h + 30), k = le16(h + 32);
    if (!inside(pos + kCentralSize, n + m + k, end)) fail(where, label + ": name/extra/comment run past the end of the central directory");
    ZipEntry e;
    e.flags = le16(h + 8);
    e.method = le16(h + 10);
    e.comp_size = le32(h + 20);
    e.size = le32(h + 24);
    e.local_offset = le32(h + 42);
    e.name.assign(reinterpret_cast<const char*>(h + kCentralSize), n);
    if (le16(h + 34) != 0 && le16(h + 34) != kSat16) fail(where, label + ": multi-disk archives are not supported");
    apply_zip64_extra(h + kCentralSize + n, m, e, where, label + " ('" + printable(e.name) + "')");
    out.push_back(std::move(e));
    pos += kCentralSize + n + m + k;
  }
  return out;
}

uint64_t zip_entry_data_offset(const std::byte* data, uint64_t size, const ZipEntry& e, const std::string& where) {
  const std::string label = "zip record '" + printable(e.name) + "'";
  if (!inside(e.local_offset, kLocalSize, size))
    fail(where, label + ": local header offset " + num(e.local_offset) + " is beyond the end of the file (" + num(size) + " bytes)");
  const std::byte* h = data + e.local_offset;
  if (le32(h) != kLocalSig) fail(where, label + ": bad local header signature at offset " + num(e.local_offset));
  const uint64_t n = le16(h + 26), m = le16(h + 28);
  const uint64_t start = e.local_offset + kLocalSize + n + m;  // no overflow: local_offset <= size - 30
  if (!inside(e.local_offset + kLocalSize, n + m, size)) fail(where, label + ": local header runs past the end of the file");
  if (n != e.name.size() || std::memcmp(h + kLocalSize, e.name.data(), n) != 0)
    fail(where, label + ": local header names a different record");
  if (!inside(start, e.comp_size, size))
    fail(where, label + ": its " + num(e.comp_size) + " bytes at offset " + num(start) + " run past the end of the file (" +
                    num(size) + " bytes)");
  return start;
}

}  // namespace lmforge::io
