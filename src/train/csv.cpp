// CsvReader: a pull interface over libcsv's push parser, plus the UTF-8 check used on CSV text.
#include <csv.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>

#include "io/io_util.h"
#include "lmforge/train/data.h"

namespace lmforge {

namespace {

// libcsv trims spaces and tabs around unquoted fields by default; Python's csv module and
// pandas keep them, and so do we (the text is right-stripped later, on purpose, by the caller).
int never_space(unsigned char) { return 0; }

struct Record {
  std::vector<std::string> fields;
  int64_t end_line = 0;  // line on which the record's terminator (or EOF) was seen
};

}  // namespace

struct CsvReader::Impl {
  std::FILE* fp = nullptr;
  csv_parser parser{};
  bool parser_ready = false;
  bool eof = false;
  bool first_chunk = true;
  int64_t line = 1;  // line of the bytes being fed
  std::vector<std::string> fields;
  std::deque<Record> ready;
  std::vector<char> buf = std::vector<char>(1 << 16);

  static void on_field(void* s, size_t len, void* self) {
    auto* impl = static_cast<Impl*>(self);
    impl->fields.emplace_back(static_cast<const char*>(s), len);
  }
  static void on_record(int, void* self) {
    auto* impl = static_cast<Impl*>(self);
    impl->ready.push_back({std::move(impl->fields), impl->line});
    impl->fields.clear();
  }

  ~Impl() {
    if (parser_ready) csv_free(&parser);
    if (fp != nullptr) std::fclose(fp);
  }

  // Feeds `data` one line at a time so the callbacks know which line they fire on.
  void feed(const char* data, size_t n, const std::string& where) {
    while (n > 0) {
      const void* nl = std::memchr(data, '\n', n);
      const size_t len = nl != nullptr ? static_cast<size_t>(static_cast<const char*>(nl) - data) + 1 : n;
      if (csv_parse(&parser, data, len, on_field, on_record, this) != len)
        io::fail(where, std::string("CSV parse error: ") + csv_strerror(csv_error(&parser)));
      if (nl != nullptr) ++line;
      data += len;
      n -= len;
    }
  }

  // Reads and parses until a record is ready or the file ends.
  void fill(const std::string& where) {
    while (ready.empty() && !eof) {
      const size_t got = std::fread(buf.data(), 1, buf.size(), fp);
      if (got > 0) {
        const char* p = buf.data();
        size_t n = got;
        if (first_chunk && n >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
          p += 3;
          n -= 3;
        }
        first_chunk = false;
        feed(p, n, where);
      }
      if (got < buf.size()) {
        if (std::ferror(fp)) io::fail(where, "read error");
        if (std::feof(fp)) {
          eof = true;
          // libcsv only reports this in strict mode, which would also reject stray quotes that
          // Python's csv and pandas accept; check its state (2 = FIELD_BEGUN) ourselves.
          if (parser.pstate == 2 && parser.quoted)
            io::fail(where, "unterminated quoted field at end of file (a '\"' opened on or before line " +
                                std::to_string(line) + " is never closed)");
          if (csv_fini(&parser, on_field, on_record, this) != 0) io::fail(where, "CSV parse error at end of file");
        }
      }
    }
  }
};

CsvReader::CsvReader(const std::filesystem::path& file) : impl_(std::make_unique<Impl>()), file_(file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) io::fail(file.string(), "no such file");
  if (std::filesystem::is_directory(file, ec)) io::fail(file.string(), "is a folder, expected a CSV file");
  impl_->fp = std::fopen(file.c_str(), "rb");
  if (impl_->fp == nullptr) io::fail(file.string(), std::string("cannot open: ") + std::strerror(errno));
  if (csv_init(&impl_->parser, 0) != 0) io::fail(file.string(), "cannot initialise the CSV parser");
  impl_->parser_ready = true;
  csv_set_space_func(&impl_->parser, never_space);
}

CsvReader::~CsvReader() = default;

bool CsvReader::next(std::vector<std::string>& fields) {
  impl_->fill(file_.string());
  if (impl_->ready.empty()) return false;
  Record r = std::move(impl_->ready.front());
  impl_->ready.pop_front();
  // The record started on its end line minus the newlines inside its (quoted) fields.
  int64_t inner = 0;
  for (const auto& f : r.fields)
    for (char c : f) inner += c == '\n';
  record_line_ = r.end_line - inner;
  fields = std::move(r.fields);
  return true;
}

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte first, C0/C1 (overlong 2-byte), F5..FF
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;  // overlong
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace lmforge
