// The prompt-file reader shared by every subcommand (rules in include/lmforge/io/prompt_file.h).
#include "lmforge/io/prompt_file.h"

#include <csv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "io/io_util.h"
#include "lmforge/error.h"

namespace lmforge {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";
// The header names looked for when no column is requested, in order of preference.
constexpr std::string_view kDefaultColumns[] = {"prompt", "text"};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view rstrip(std::string_view s) {
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view strip(std::string_view s) {
  s = rstrip(s);
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// Errors read "<label>: <source> <what>", e.g. "--prompt_file: 'p.csv' holds no prompt".
struct Where {
  const PromptFileOptions& options;
  const std::string& source;
  [[noreturn]] void fail(const std::string& what) const { throw Error(options.label + ": " + source + " " + what); }
};

struct Line {
  std::string_view text;  // without its LF
  size_t offset = 0;      // of its first byte in the whole text
  int number = 0;         // 1-based
};

// The first line that is not blank, or none.
std::optional<Line> first_non_blank_line(std::string_view text) {
  size_t pos = 0;
  for (int number = 1; pos < text.size(); ++number) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    if (!strip(line).empty()) return Line{line, pos, number};
    pos = end + 1;
  }
  return std::nullopt;
}

// libcsv keeps every byte of a field when told no character is a space (it trims spaces and tabs
// around unquoted fields by default; Python's csv and pandas keep them, and rule 5 is ours).
int never_space(unsigned char) { return 0; }

struct CsvRecord {
  std::vector<std::string> fields;
  int line = 0;  // the line the record ends on
};

class CsvParser {
 public:
  explicit CsvParser(const Where& where) : where_(where) {
    if (csv_init(&parser_, 0) != 0) where_.fail("cannot be parsed: the CSV parser did not start");
    csv_set_space_func(&parser_, never_space);
  }
  ~CsvParser() { csv_free(&parser_); }
  CsvParser(const CsvParser&) = delete;
  CsvParser& operator=(const CsvParser&) = delete;

  // All records of `text`, whose first line is line `first_line` of the source.
  std::vector<CsvRecord> parse(std::string_view text, int first_line) {
    line_ = first_line;
    // One line at a time, so that each record knows the line it ends on.
    while (!text.empty()) {
      const size_t nl = text.find('\n');
      const size_t len = nl == std::string_view::npos ? text.size() : nl + 1;
      if (csv_parse(&parser_, text.data(), len, on_field, on_record, this) != len)
        where_.fail("line " + std::to_string(line_) + ": " + csv_strerror(csv_error(&parser_)));
      if (nl != std::string_view::npos) ++line_;
      text.remove_prefix(len);
    }
    // libcsv reports an open quote at the end only in strict mode, which would also refuse stray
    // quotes inside unquoted fields (Python's csv accepts them); 2 is its FIELD_BEGUN state.
    if (parser_.pstate == 2 && parser_.quoted)
      where_.fail("has a quoted field that is never closed (a '\"' is missing at the end)");
    csv_fini(&parser_, on_field, on_record, this);
    return std::move(records_);
  }

 private:
  static void on_field(void* s, size_t len, void* self) {
    static_cast<CsvParser*>(self)->fields_.emplace_back(static_cast<const char*>(s), len);
  }
  static void on_record(int, void* self) {
    auto* p = static_cast<CsvParser*>(self);
    p->records_.push_back({std::move(p->fields_), p->line_});
    p->fields_.clear();
  }

  const Where& where_;
  csv_parser parser_{};
  int line_ = 1;
  std::vector<std::string> fields_;
  std::vector<CsvRecord> records_;
};

// The fields of one line read as a CSV record. A line that is not one (an open quote: a plain
// prompt such as `"Hello` may well start that way) is not a header: no fields.
std::vector<std::string> csv_fields(std::string_view line, const Where& where) {
  try {
    CsvParser parser(where);
    auto records = parser.parse(line, 1);
    return records.empty() ? std::vector<std::string>{} : std::move(records.front().fields);
  } catch (const Error&) {
    return {};
  }
}

// Index of the prompt column in a header, or -1 when `fields` is not a header (rule 2).
int prompt_column(const std::vector<std::string>& fields, const PromptFileOptions& options) {
  auto find = [&](std::string_view name) {
    for (size_t i = 0; i < fields.size(); ++i)
      if (iequals(strip(fields[i]), strip(name))) return static_cast<int>(i);
    return -1;
  };
  if (!options.column.empty()) return find(options.column);
  for (std::string_view name : kDefaultColumns)
    if (const int i = find(name); i >= 0) return i;
  return -1;
}

void add_prompt(std::string_view text, std::vector<std::string>& prompts) {
  const std::string_view p = rstrip(text);
  if (!p.empty()) prompts.emplace_back(p);
}

bool is_blank_record(const std::vector<std::string>& fields) {
  for (const auto& f : fields)
    if (!strip(f).empty()) return false;
  return true;
}

// Rule 3: the records after the header.
std::vector<std::string> csv_prompts(std::string_view text, const Line& header, size_t header_fields, int column,
                                     const Where& where) {
  CsvParser parser(where);
  const auto records = parser.parse(text.substr(header.offset), header.number);
  std::vector<std::string> prompts;
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    if (is_blank_record(rec.fields)) continue;
    if (rec.fields.size() != header_fields)
      where.fail("line " + std::to_string(rec.line) + ": " + std::to_string(rec.fields.size()) +
                 " fields, but the header has " + std::to_string(header_fields) +
                 " (quote a prompt that holds a comma: \"a, b\")");
    add_prompt(rec.fields[column], prompts);
  }
  return prompts;
}

// Rule 4: every line from the first non-blank one.
std::vector<std::string> line_prompts(std::string_view text, const Line& first) {
  std::vector<std::string> prompts;
  for (size_t pos = first.offset; pos < text.size();) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    add_prompt(text.substr(pos, end - pos), prompts);
    pos = end + 1;
  }
  return prompts;
}

}  // namespace

std::vector<std::string> parse_prompts(std::string_view text, const std::string& source,
                                       const PromptFileOptions& options) {
  const Where where{options, source};
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());
  std::vector<std::string> prompts;
  if (const auto first = first_non_blank_line(text)) {
    const std::vector<std::string> fields = csv_fields(first->text, where);
    const int column = prompt_column(fields, options);
    if (column >= 0) {
      prompts = csv_prompts(text, *first, fields.size(), column, where);
      if (prompts.empty() && !options.allow_empty) where.fail("holds no prompt (only the header line)");
    } else if (!options.column.empty()) {
      where.fail("has no column '" + options.column + "' (its first line is not a header naming it: '" +
                 io::printable(first->text, 80) + "')");
    } else {
      prompts = line_prompts(text, *first);
    }
  }
  if (prompts.empty() && !options.allow_empty) where.fail("holds no prompt");
  return prompts;
}

std::vector<std::string> read_prompts(std::istream& in, const std::string& source, const PromptFileOptions& options) {
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(options.label + ": cannot read " + source);
  return parse_prompts(text, source, options);
}

std::vector<std::string> read_prompt_file(const std::filesystem::path& path, const PromptFileOptions& options) {
  if (path == std::filesystem::path(kStdinPath)) return read_prompts(std::cin, "standard input", options);
  std::string source(1, '\'');  // built by appending: GCC 12's -Wrestrict misfires on "'" + string
  source += path.string();
  source += '\'';
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(options.label + ": cannot read " + source + ": it is a folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(options.label + ": cannot read " + source + ": " + std::strerror(errno));
  return read_prompts(in, source, options);
}

}  // namespace lmforge
