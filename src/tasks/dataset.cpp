// Task datasets: CSV / TSV / JSONL readers and label normalisation (rules in
// include/lmforge/tasks/dataset.h).
#include "lmforge/tasks/dataset.h"

#include <csv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "io/io_util.h"
#include "lmforge/error.h"

namespace lmforge::tasks {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// A file read into a header and records of raw strings, before mapping and labels.
struct RawRecord {
  int64_t line = 0;
  std::vector<std::string> values;
};
struct RawTable {
  std::vector<std::string> header;
  std::vector<RawRecord> records;
};

[[noreturn]] void fail_at(const std::string& source, int64_t line, const std::string& what) {
  throw Error(source + ":" + std::to_string(line) + ": " + what);
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string lower_extension(const std::string& source) {
  std::string ext = std::filesystem::path(source).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

DataFormat format_of(const std::string& source, DataFormat requested) {
  if (requested != DataFormat::Auto) return requested;
  const std::string ext = lower_extension(source);
  if (ext == ".csv") return DataFormat::Csv;
  if (ext == ".tsv") return DataFormat::Tsv;
  if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") return DataFormat::Jsonl;
  throw Error(source + ": cannot tell the dataset format from the extension '" + ext +
              "' (expected .csv, .tsv, .jsonl or .json; or give the format: csv, tsv, jsonl)");
}

// Checks a header: no empty and no duplicate names (a field must be addressable by name).
void check_header(const RawTable& t, const std::string& source, int64_t line) {
  for (size_t i = 0; i < t.header.size(); ++i) {
    if (strip(t.header[i]).empty()) fail_at(source, line, "header column " + std::to_string(i + 1) + " has no name");
    for (size_t j = 0; j < i; ++j)
      if (t.header[j] == t.header[i]) fail_at(source, line, "header names column '" + t.header[i] + "' twice");
  }
}

void check_width(const RawTable& t, const RawRecord& r, const std::string& source) {
  if (r.values.size() != t.header.size())
    fail_at(source, r.line,
            std::to_string(r.values.size()) + " fields, but the header has " + std::to_string(t.header.size()));
}

bool blank(const std::vector<std::string>& values) {
  return std::all_of(values.begin(), values.end(), [](const std::string& v) { return strip(v).empty(); });
}

int column_of(const std::vector<std::string>& header, std::string_view name);
std::vector<std::pair<std::string, std::string>> mappings(const std::vector<std::string>& header,
                                                           const DatasetOptions& o);

bool kept(const std::string& field, const DatasetOptions& o) {
  return o.keep_fields.empty() || field == o.label_field ||
         std::find(o.keep_fields.begin(), o.keep_fields.end(), field) != o.keep_fields.end();
}

// The file columns the rows need (keep_fields and the sources of kept mappings), so that a reader
// never stores a GLUE parse-tree column nobody uses.
std::vector<bool> needed_columns(const std::vector<std::string>& header, const DatasetOptions& o) {
  std::vector<bool> need(header.size());
  for (size_t c = 0; c < header.size(); ++c) need[c] = kept(header[c], o);
  for (const auto& [field, column] : mappings(header, o))
    if (const int c = column_of(header, column); c >= 0 && kept(field, o)) need[c] = true;
  return need;
}

// ---- TSV: GLUE's format, one record per line, no quoting ---------------------------------------

// The fields of a line; those `need` marks false stay empty (a missing mask keeps all).
std::vector<std::string> split_tabs(std::string_view line, const std::vector<bool>& need) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t tab = line.find('\t', pos);
    const size_t c = out.size();
    if (c >= need.size() || need[c])
      out.emplace_back(line.substr(pos, tab == std::string_view::npos ? std::string_view::npos : tab - pos));
    else
      out.emplace_back();
    if (tab == std::string_view::npos) return out;
    pos = tab + 1;
  }
}

RawTable read_tsv(std::string_view text, const std::string& source, const DatasetOptions& o) {
  std::vector<bool> need;
  RawTable t;
  bool have_header = false;
  int64_t number = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (strip(line).empty()) continue;
    RawRecord r{number, split_tabs(line, need)};
    if (!have_header) {
      t.header = std::move(r.values);
      check_header(t, source, number);
      need = needed_columns(t.header, o);
      have_header = true;
      continue;
    }
    check_width(t, r, source);
    t.records.push_back(std::move(r));
  }
  return t;
}

// ---- CSV: RFC 4180 through libcsv ---------------------------------------------------------------

// libcsv trims spaces around unquoted fields by default; Python's csv and pandas keep them.
int never_space(unsigned char) { return 0; }

class CsvTableParser {
 public:
  explicit CsvTableParser(const std::string& source) : source_(source) {
    if (csv_init(&parser_, 0) != 0) throw Error(source + ": cannot start the CSV parser");
    csv_set_space_func(&parser_, never_space);
  }
  ~CsvTableParser() { csv_free(&parser_); }
  CsvTableParser(const CsvTableParser&) = delete;
  CsvTableParser& operator=(const CsvTableParser&) = delete;

  // Every record with the line it starts on.
  std::vector<RawRecord> parse(std::string_view text) {
    // One line at a time so that each record knows the line it ends on.
    while (!text.empty()) {
      const size_t nl = text.find('\n');
      const size_t len = nl == std::string_view::npos ? text.size() : nl + 1;
      if (csv_parse(&parser_, text.data(), len, on_field, on_record, this) != len)
        fail_at(source_, line_, std::string("CSV parse error: ") + csv_strerror(csv_error(&parser_)));
      if (nl != std::string_view::npos) ++line_;
      text.remove_prefix(len);
    }
    // libcsv reports an open quote only in strict mode (which also refuses stray quotes that
    // Python's csv accepts); 2 is its FIELD_BEGUN state.
    if (parser_.pstate == 2 && parser_.quoted)
      fail_at(source_, line_, "a quoted field is never closed (a '\"' is missing)");
    csv_fini(&parser_, on_field, on_record, this);
    return std::move(records_);
  }

 private:
  static void on_field(void* s, size_t len, void* self) {
    static_cast<CsvTableParser*>(self)->fields_.emplace_back(static_cast<const char*>(s), len);
  }
  static void on_record(int, void* self) {
    auto* p = static_cast<CsvTableParser*>(self);
    // The record started on its end line minus the line breaks inside its quoted fields.
    int64_t inner = 0;
    for (const auto& f : p->fields_) inner += std::count(f.begin(), f.end(), '\n');
    p->records_.push_back({p->line_ - inner, std::move(p->fields_)});
    p->fields_.clear();
  }

  const std::string& source_;
  csv_parser parser_{};
  int64_t line_ = 1;
  std::vector<std::string> fields_;
  std::vector<RawRecord> records_;
};

RawTable read_csv(std::string_view text, const std::string& source) {
  CsvTableParser parser(source);
  std::vector<RawRecord> records = parser.parse(text);
  RawTable t;
  bool have_header = false;
  for (auto& r : records) {
    if (blank(r.values)) continue;
    if (!have_header) {
      t.header = std::move(r.values);
      check_header(t, source, r.line);
      have_header = true;
      continue;
    }
    check_width(t, r, source);
    t.records.push_back(std::move(r));
  }
  return t;
}

// ---- JSON Lines (and a .json array of objects) --------------------------------------------------

// A JSON value as field text: strings as they are, integers in decimal, null as "" (no value).
std::string json_text(const nlohmann::ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

void add_json_object(const nlohmann::ordered_json& obj, int64_t line, RawTable& t, const std::string& source) {
  if (!obj.is_object()) fail_at(source, line, "expected a JSON object ({\"field\": value, ...}), got " + std::string(obj.type_name()));
  RawRecord r{line, {}};
  if (t.records.empty() && t.header.empty()) {
    for (const auto& [key, value] : obj.items()) t.header.push_back(key);
    check_header(t, source, line);
  }
  for (const auto& [key, value] : obj.items())
    if (std::find(t.header.begin(), t.header.end(), key) == t.header.end())
      fail_at(source, line, "key '" + io::printable(key) + "' is not in the first row (" + join(t.header) + ")");
  for (const auto& name : t.header) {
    const auto it = obj.find(name);
    if (it == obj.end()) fail_at(source, line, "no key '" + name + "' (the first row has it)");
    r.values.push_back(json_text(*it));
  }
  t.records.push_back(std::move(r));
}

RawTable read_jsonl(std::string_view text, const std::string& source) {
  RawTable t;
  const std::string_view body = strip(text);
  if (!body.empty() && body.front() == '[') {  // a whole-file JSON array (pandas/HF "lines=False")
    nlohmann::ordered_json all;
    try {
      all = nlohmann::ordered_json::parse(body);
    } catch (const nlohmann::json::exception& e) {
      throw Error(source + ": not valid JSON: " + io::printable(e.what()));
    }
    for (const auto& obj : all) add_json_object(obj, 0, t, source);
    return t;
  }
  int64_t number = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (strip(line).empty()) continue;
    nlohmann::ordered_json obj;
    try {
      obj = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail_at(source, number, "not valid JSON: " + io::printable(e.what()));
    }
    add_json_object(obj, number, t, source);
  }
  return t;
}

// ---- field mapping ------------------------------------------------------------------------------

int column_of(const std::vector<std::string>& header, std::string_view name) {
  const auto it = std::find(header.begin(), header.end(), name);
  return it == header.end() ? -1 : static_cast<int>(it - header.begin());
}

// The user's mappings plus GLUE's MNLI/SNLI columns, which need no option.
std::vector<std::pair<std::string, std::string>> mappings(const std::vector<std::string>& header,
                                                           const DatasetOptions& o) {
  auto m = o.field_map;
  auto add_default = [&](const std::string& field, const std::string& column) {
    const bool user_set = std::any_of(m.begin(), m.end(), [&](const auto& p) { return p.first == field; });
    if (!user_set && column_of(header, field) < 0 && column_of(header, column) >= 0) m.emplace_back(field, column);
  };
  add_default("premise", "sentence1");
  add_default("hypothesis", "sentence2");
  add_default(o.label_field, "gold_label");
  return m;
}

// ---- labels -------------------------------------------------------------------------------------

bool is_unlabeled(std::string_view v) { return v == "-1" || v == "-" || strip(v).empty(); }

std::optional<int64_t> as_index(std::string_view v) {
  v = strip(v);
  int64_t i = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), i);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return std::nullopt;
  return i;
}

// The label names by the rules in the header.
std::vector<std::string> label_names_for(const Dataset& d, int label_col, const DatasetOptions& o) {
  if (!o.label_names.empty()) return o.label_names;
  const bool mnli_shaped = column_of(d.fields, "premise") >= 0 && column_of(d.fields, "hypothesis") >= 0;
  if (mnli_shaped) return mnli_label_names();
  std::vector<std::string> names;
  if (label_col < 0) return names;
  for (size_t r = 0; r < d.rows.size(); ++r) {
    const std::string& v = d.rows[r].fields[label_col].second;
    if (is_unlabeled(v)) continue;
    if (as_index(v))
      fail_at(d.source, d.rows[r].line,
              "label '" + v + "' is an index, but no label names were given (e.g. label_names "
              "entailment,neutral,contradiction)");
    if (std::find(names.begin(), names.end(), v) == names.end()) names.push_back(v);
  }
  return names;
}

// Sets Row::label and writes the label's name into the label field.
void normalise_label(Row& row, int label_col, const Dataset& d) {
  std::string& v = row.fields[label_col].second;
  if (is_unlabeled(v)) {
    v.clear();
    row.label = kNoLabel;
    return;
  }
  const auto& names = d.label_names;
  if (const auto it = std::find(names.begin(), names.end(), v); it != names.end()) {
    row.label = static_cast<int>(it - names.begin());
    return;
  }
  if (const auto idx = as_index(v)) {
    if (*idx < 0 || *idx >= static_cast<int64_t>(names.size()))
      fail_at(d.source, row.line,
              "label index " + v + " is out of range for the " + std::to_string(names.size()) +
                  " label names (" + join(names) + ")");
    row.label = static_cast<int>(*idx);
    v = names[*idx];
    return;
  }
  fail_at(d.source, row.line, "label '" + io::printable(v) + "' is not one of the label names (" + join(names) + ")");
}

// Builds the rows, moving the values out of the table (a large train split is not copied).
Dataset build(RawTable&& t, const std::string& source, const DatasetOptions& o) {
  Dataset d;
  d.source = source;
  if (t.records.empty()) throw Error(source + ": the dataset has no rows");
  const auto maps = mappings(t.header, o);
  std::vector<int> map_cols;
  for (const auto& [field, column] : maps) {
    const int c = column_of(t.header, column);
    if (c < 0)
      throw Error(source + ": field mapping " + field + "=" + column + " names no column of the file (columns: " +
                  join(t.header) + ")");
    map_cols.push_back(c);
  }
  // Mapped names replace a column of the same name, else are appended.
  d.fields = t.header;
  for (const auto& [field, column] : maps)
    if (column_of(d.fields, field) < 0) d.fields.push_back(field);
  std::vector<int> map_of(d.fields.size(), -1);  // the mapping that fills each field, or -1
  for (size_t m = 0; m < maps.size(); ++m) map_of[column_of(d.fields, maps[m].first)] = static_cast<int>(m);
  // The fields rows carry (keep_fields), as indices into d.fields; the label field always.
  std::vector<size_t> carried;
  for (size_t c = 0; c < d.fields.size(); ++c)
    if (kept(d.fields[c], o)) carried.push_back(c);
  int label_col = -1;  // in a row's fields
  for (size_t i = 0; i < carried.size(); ++i)
    if (d.fields[carried[i]] == o.label_field) label_col = static_cast<int>(i);

  d.rows.reserve(t.records.size());
  for (size_t r = 0; r < t.records.size(); ++r) {
    std::vector<std::string>& values = t.records[r].values;
    // Mapped values are copied first: their column may be moved out below.
    std::vector<std::string> mapped;
    for (int c : map_cols) mapped.push_back(values[c]);
    Row row;
    row.id = static_cast<int64_t>(r);
    row.line = t.records[r].line;
    row.fields.reserve(carried.size());
    for (size_t c : carried) {
      std::string v = map_of[c] >= 0 ? std::move(mapped[map_of[c]]) : std::move(values[c]);
      row.fields.emplace_back(d.fields[c], std::move(v));
    }
    d.rows.push_back(std::move(row));
  }
  d.has_label_field = label_col >= 0;
  d.label_names = label_names_for(d, label_col, o);
  if (label_col < 0) {
    d.unlabeled = static_cast<int64_t>(d.rows.size());
  } else {
    for (Row& row : d.rows) {
      normalise_label(row, label_col, d);
      d.unlabeled += row.label == kNoLabel;
    }
  }
  if (o.drop_unlabeled) {
    std::erase_if(d.rows, [](const Row& r) { return r.label == kNoLabel; });
    if (d.rows.empty()) throw Error(source + ": no row has a gold label (all " + std::to_string(d.unlabeled) + " dropped)");
  }
  return d;
}

// The whole file in one read: io::read_text_file grows a stringstream, which copies a large train
// split several times.
std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) throw Error(file.string() + ": cannot open the dataset file: " + std::strerror(errno));
  const std::streamoff size = in.tellg();
  in.seekg(0);
  std::string text(static_cast<size_t>(std::max<std::streamoff>(size, 0)), '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(text.size())))
    throw Error(file.string() + ": cannot read the dataset file");
  return text;
}

}  // namespace

const std::vector<std::string>& mnli_label_names() {
  static const std::vector<std::string> names = {"entailment", "neutral", "contradiction"};
  return names;
}

std::string Row::name() const {
  if (line > 0) return "row " + std::to_string(id) + " (line " + std::to_string(line) + ")";
  return "example " + std::to_string(id);
}

const std::string* Row::get(std::string_view name) const {
  for (const auto& [k, v] : fields)
    if (k == name) return &v;
  return nullptr;
}

std::string Row::field_names() const {
  std::string out;
  for (const auto& f : fields) out += (out.empty() ? "" : ", ") + f.first;
  return out;
}

DataFormat parse_data_format(std::string_view name, const std::string& flag) {
  if (name == "auto") return DataFormat::Auto;
  if (name == "csv") return DataFormat::Csv;
  if (name == "tsv") return DataFormat::Tsv;
  if (name == "jsonl" || name == "json") return DataFormat::Jsonl;
  throw Error(flag + ": unknown dataset format '" + io::printable(name) + "' (expected auto, csv, tsv or jsonl)");
}

Dataset parse_dataset(std::string_view text, const std::string& source, const DatasetOptions& options) {
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());
  RawTable t;
  switch (format_of(source, options.format)) {
    case DataFormat::Csv: t = read_csv(text, source); break;
    case DataFormat::Tsv: t = read_tsv(text, source, options); break;
    default: t = read_jsonl(text, source); break;
  }
  return build(std::move(t), source, options);
}

Dataset load_dataset(const std::filesystem::path& file, const DatasetOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) throw Error(file.string() + ": no such dataset file");
  if (std::filesystem::is_directory(file, ec)) throw Error(file.string() + ": is a folder, expected a dataset file");
  // Check the format before reading a possibly large file of the wrong kind.
  format_of(file.string(), options.format);
  return parse_dataset(read_file(file), file.string(), options);
}

std::vector<std::pair<std::string, std::string>> parse_field_map(std::string_view spec, const std::string& flag) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string_view item = strip(spec.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view field = eq == std::string_view::npos ? "" : strip(item.substr(0, eq));
    const std::string_view column = eq == std::string_view::npos ? "" : strip(item.substr(eq + 1));
    if (field.empty() || column.empty())
      throw Error(flag + ": '" + io::printable(item) + "' is not FIELD=COLUMN (e.g. premise=sentence1)");
    out.emplace_back(field, column);
  }
  return out;
}

std::vector<std::string> parse_label_names(std::string_view spec, const std::string& flag) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string name(strip(spec.substr(pos, comma - pos)));
    pos = comma + 1;
    if (name.empty()) throw Error(flag + ": empty label name in '" + io::printable(spec) + "'");
    if (std::find(out.begin(), out.end(), name) != out.end())
      throw Error(flag + ": label name '" + name + "' given twice");
    out.push_back(name);
  }
  return out;
}

}  // namespace lmforge::tasks
