#pragma once
// Task datasets: CSV, TSV and JSON Lines files read into rows of named string fields, with labels
// normalised to names and indices. Rules (docs/TASKS.md, "Datasets, templates and few-shot"):
//   - Format from the extension (.csv; .tsv; .jsonl/.ndjson/.json) or DatasetOptions::format.
//   - CSV is RFC 4180 (libcsv). TSV is GLUE's: one record per line, tab-separated, no quoting
//     (a '"' is a literal character). JSONL: one object per line; a .json file may also be one
//     array of objects. The first CSV/TSV record is the header. A UTF-8 BOM and CRs are dropped.
//   - GLUE MNLI/SNLI columns are mapped automatically: premise <- sentence1, hypothesis <- sentence2,
//     label <- gold_label (only when the file has no premise/hypothesis/label of its own).
//     DatasetOptions::field_map ("premise=sentence1") adds or overrides such mappings.
//   - Labels: the `label` field holds a name ("neutral") or a 0-based index into the label names
//     ("1"). -1, "-", "" and JSON null mean "no gold label" (HF test splits, SNLI's no-consensus
//     rows): Row::label is kNoLabel and the field is "". The label names are, first found:
//     DatasetOptions::label_names; the GLUE MNLI names when the rows have premise and hypothesis;
//     for string labels, the distinct labels in order of first appearance. Integer labels without
//     names, an index out of range, or a string label not among given names are errors.
//   - Every bad input is a one-line lmforge::Error naming the file and line (and field).
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmforge::tasks {

enum class DataFormat { Auto, Csv, Tsv, Jsonl };

// "auto", "csv", "tsv", "jsonl" (also "json"); anything else is an error naming `flag`.
DataFormat parse_data_format(std::string_view name, const std::string& flag = "format");

// GLUE's MNLI label order: 0 entailment, 1 neutral, 2 contradiction.
const std::vector<std::string>& mnli_label_names();

inline constexpr int kNoLabel = -1;

struct Row {
  int64_t id = 0;    // 0-based position among the file's data rows (the HF dataset index)
  int64_t line = 0;  // 1-based line where the row starts in its file (0 for inline examples)
  std::vector<std::pair<std::string, std::string>> fields;  // in file order, mapped names appended
  int label = kNoLabel;  // index into the dataset's label names, or kNoLabel

  // The field's value, or nullptr.
  const std::string* get(std::string_view name) const;
  // "row 3 (line 5)" for dataset rows, "example 2" for a template's inline examples.
  std::string name() const;
  // "a, b, c": the field names, for error messages.
  std::string field_names() const;
};

struct DatasetOptions {
  DataFormat format = DataFormat::Auto;
  // (task field, file column) pairs, e.g. {"premise", "sentence1"}: the row gets field `premise`
  // with the column's value (replacing a `premise` column if the file has one).
  std::vector<std::pair<std::string, std::string>> field_map;
  std::string label_field = "label";
  std::vector<std::string> label_names;  // empty: the rules above
  bool drop_unlabeled = false;           // true: rows without a gold label are left out
  // Non-empty: rows carry only these fields and the label field (a template's fields; GLUE's
  // parse-tree columns make MNLI's train split several times larger than the text it needs).
  // Dataset::fields still lists every field, so errors can name them.
  std::vector<std::string> keep_fields;
};

struct Dataset {
  std::string source;               // the file, as given
  std::vector<std::string> fields;  // every field name, in order (rows may keep fewer: keep_fields)
  std::vector<Row> rows;
  std::vector<std::string> label_names;
  bool has_label_field = false;  // the rows have the label field
  int64_t unlabeled = 0;         // rows without a gold label (kept or dropped)
};

// Reads a dataset file. Throws lmforge::Error (one line naming the file and line) on a missing or
// unreadable file, an unknown extension, a malformed record, a bad label, an unknown mapped column
// or a file without rows.
Dataset load_dataset(const std::filesystem::path& file, const DatasetOptions& options = {});

// The same over text already read; `source` names it in errors and picks the format when Auto.
Dataset parse_dataset(std::string_view text, const std::string& source, const DatasetOptions& options = {});

// "premise=sentence1,hypothesis=sentence2" -> pairs. Errors name `flag`.
std::vector<std::pair<std::string, std::string>> parse_field_map(std::string_view spec,
                                                                 const std::string& flag = "field_map");

// "entailment,neutral,contradiction" -> names (surrounding spaces dropped; empty or duplicate names
// are errors naming `flag`).
std::vector<std::string> parse_label_names(std::string_view spec, const std::string& flag = "label_names");

}  // namespace lmforge::tasks
