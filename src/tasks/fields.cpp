// Field records of the photo-metadata extraction workflow: the tag parser, exact-match scoring and
// the predictions-file reader. Rules in fields.h and docs/EXTRACTION.md.
#include "lmforge/tasks/fields.h"

#include <algorithm>
#include <cstdint>

#include "io/io_util.h"
#include "lmforge/error.h"

namespace lmforge::tasks {
namespace {

constexpr std::string_view kAsciiSpace = " \t\n\r\f\v";

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(kAsciiSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kAsciiSpace) - b + 1);
}

std::string_view rtrim(std::string_view s) {
  const size_t e = s.find_last_not_of(kAsciiSpace);
  return e == std::string_view::npos ? std::string_view{} : s.substr(0, e + 1);
}

// "1 row", "2 rows".
std::string plural(size_t n, const std::string& noun) { return std::to_string(n) + " " + noun + (n == 1 ? "" : "s"); }

bool contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

enum class MarkKind { Field, Prompt, Stop };

struct Mark {
  size_t pos = 0, len = 0;
  MarkKind kind = MarkKind::Field;
  std::string_view name;  // the field or prompt tag's name; the whole marker for a stop
};

// Every tag and stop marker of `text`, left to right (rule 1). Stops are tried first.
std::vector<Mark> find_marks(std::string_view text, const FieldSyntax& s) {
  std::vector<Mark> marks;
  for (size_t i = text.find('<'); i != std::string_view::npos; i = text.find('<', i)) {
    const std::string_view rest = text.substr(i);
    const auto stop = std::find_if(s.stops.begin(), s.stops.end(),
                                   [&](const std::string& m) { return !m.empty() && rest.starts_with(m); });
    if (stop != s.stops.end()) {
      marks.push_back({i, stop->size(), MarkKind::Stop, rest.substr(0, stop->size())});
      i += stop->size();
      continue;
    }
    const size_t close = rest.find('>');
    const std::string_view name = close == std::string_view::npos ? std::string_view{} : rest.substr(1, close - 1);
    if (!name.empty() && name.find('<') == std::string_view::npos) {
      if (contains(s.fields, name)) {
        marks.push_back({i, close + 1, MarkKind::Field, name});
        i += close + 1;
        continue;
      }
      if (contains(s.prompt_tags, name)) {
        marks.push_back({i, close + 1, MarkKind::Prompt, name});
        i += close + 1;
        continue;
      }
    }
    ++i;
  }
  return marks;
}

// Rule 2: where the answer starts (0 when the text does not begin with its prompt); npos when the
// text is all prompt.
size_t answer_start(std::string_view text, const std::vector<Mark>& marks, const FieldSyntax& s, bool& dropped) {
  const auto prompt_tag = std::find_if(marks.begin(), marks.end(), [](const Mark& m) { return m.kind == MarkKind::Prompt; });
  const auto answer_tag = std::find_if(marks.begin(), marks.end(), [&](const Mark& m) {
    return m.kind == MarkKind::Field && m.name != s.header_field;
  });
  dropped = prompt_tag != marks.end() && (answer_tag == marks.end() || prompt_tag->pos < answer_tag->pos);
  if (!dropped) return 0;
  const size_t end = s.prompt_end.empty() ? std::string_view::npos : text.find(s.prompt_end, prompt_tag->pos + prompt_tag->len);
  return end == std::string_view::npos ? end : end + s.prompt_end.size();
}

}  // namespace

const std::vector<std::string>& default_scored_fields() {
  static const std::vector<std::string> fields = {"rewrite", "title", "agency", "photographer", "date"};
  return fields;
}

ParsedFields parse_fields(std::string_view text, const FieldSyntax& syntax) {
  ParsedFields out;
  const std::vector<Mark> marks = find_marks(text, syntax);
  const size_t start = answer_start(text, marks, syntax, out.prompt_dropped);
  if (start == std::string_view::npos) return out;  // all prompt

  std::optional<Mark> open;  // the field whose value is being read
  size_t preamble_end = text.size();
  auto close = [&](size_t end) {
    if (!open) return;
    const size_t from = open->pos + open->len;
    const std::string name(open->name);
    if (std::any_of(out.fields.begin(), out.fields.end(), [&](const auto& f) { return f.first == name; }))
      out.repeated.push_back(name);  // rule 6: the first value wins
    else
      out.fields.emplace_back(name, std::string(trim(text.substr(from, end - from))));
  };
  bool any_field = false;
  for (const Mark& m : marks) {
    if (m.pos < start) continue;
    if (m.kind == MarkKind::Field) {
      if (!any_field) preamble_end = m.pos;
      close(m.pos);
      open = m;
      any_field = true;
    } else if (any_field) {  // rule 5: a stop or prompt tag ends the record
      close(m.pos);
      open.reset();
      out.stopped_at = std::string(text.substr(m.pos, m.len));
      break;
    }
  }
  close(text.size());
  out.preamble = std::string(trim(text.substr(start, preamble_end - start)));
  return out;
}

std::string answer_text(std::string_view prompt, std::string_view continuation, const FieldSyntax& syntax) {
  const size_t end = syntax.prompt_end.empty() ? std::string_view::npos : prompt.rfind(syntax.prompt_end);
  std::string out(end == std::string_view::npos ? std::string_view{} : prompt.substr(end + syntax.prompt_end.size()));
  return out.append(continuation);
}

std::string field_value(const FieldRecord& record, std::string_view field) {
  for (const auto& [name, value] : record)
    if (name == field) return std::string(trim(value));
  return "";
}

nlohmann::ordered_json fields_json(const FieldRecord& record) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [name, value] : record) j[name] = value;
  return j;
}

FieldsScore score_fields(const std::vector<FieldRecord>& predicted, const std::vector<FieldRecord>& reference,
                         const std::vector<std::string>& fields) {
  if (predicted.size() != reference.size())
    throw Error("score_fields: " + std::to_string(predicted.size()) + " predictions but " +
                std::to_string(reference.size()) + " references");
  if (fields.empty()) throw Error("score_fields: no fields to score");
  FieldsScore score;
  for (const auto& f : fields) score.per_field.push_back({f});
  for (size_t i = 0; i < predicted.size(); ++i) {
    bool all = true;
    for (FieldAccuracy& acc : score.per_field) {
      const std::string ref = field_value(reference[i], acc.field);
      const bool same = field_value(predicted[i], acc.field) == ref;
      acc.correct += same;
      ++acc.total;
      if (!ref.empty()) {
        acc.with_value_correct += same;
        ++acc.with_value_total;
      }
      all = all && same;
    }
    score.all_correct += all;
    ++score.pairs;
  }
  return score;
}

// ---- prediction files ---------------------------------------------------------------------------

namespace {

FieldPrediction read_prediction(const nlohmann::ordered_json& j, const std::string& where, const FieldSyntax& syntax) {
  if (!j.is_object()) throw Error(where + ": a prediction is a JSON object, got " + std::string(j.type_name()));
  FieldPrediction p;
  if (const auto it = j.find("prompt_index"); it != j.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      throw Error(where + ": prompt_index must be an integer >= 0, got " + io::printable(it->dump(), 60));
    p.prompt_index = static_cast<int64_t>(it->get<uint64_t>());
  }
  if (const auto it = j.find("prompt"); it != j.end()) {
    if (!it->is_string()) throw Error(where + ": prompt must be a string, got " + std::string(it->type_name()));
    p.prompt = it->get<std::string>();
  }
  if (const auto it = j.find("fields"); it != j.end()) {
    if (!it->is_object()) throw Error(where + ": fields must be an object, got " + std::string(it->type_name()));
    for (const auto& [name, value] : it->items()) {
      if (!value.is_string() && !value.is_null())
        throw Error(where + ": fields." + io::printable(name, 60) + " must be a string, got " + std::string(value.type_name()));
      p.fields.emplace_back(name, value.is_null() ? "" : value.get<std::string>());
    }
  } else if (const auto t = j.find("text"); t != j.end() && t->is_string()) {
    p.fields = parse_fields(t->get<std::string>(), syntax).fields;
  } else {
    throw Error(where + ": no \"fields\" object and no \"text\" string to parse");
  }
  return p;
}

}  // namespace

std::vector<FieldPrediction> parse_field_predictions(std::string_view text, const std::string& source,
                                                     const FieldSyntax& syntax) {
  std::vector<FieldPrediction> out;
  int64_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t nl = text.find('\n', pos);
    const std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (trim(line).empty()) continue;
    const std::string where = source + ":" + std::to_string(line_no);
    nlohmann::ordered_json j;  // keeps the file's field order
    try {
      j = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::ordered_json::parse_error& e) {
      throw Error(where + ": not valid JSON (at byte " + std::to_string(e.byte) + ")");
    } catch (const nlohmann::ordered_json::exception& e) {  // out_of_range: a number past double
      throw Error(where + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    FieldPrediction p = read_prediction(j, where, syntax);
    p.line = line_no;
    if (!out.empty() && out.front().prompt_index.has_value() != p.prompt_index.has_value())
      throw Error(where + (p.prompt_index ? ": has a prompt_index but line " : ": has no prompt_index but line ") +
                  std::to_string(out.front().line) + (p.prompt_index ? " has none" : " has one") +
                  " (give it on every line or on none)");
    out.push_back(std::move(p));
  }
  if (out.empty()) throw Error(source + ": no predictions");
  return out;
}

FieldsEvaluation evaluate_field_predictions(const std::vector<FieldPrediction>& predictions,
                                            const std::string& predictions_source, const Dataset& references,
                                            const FieldsEvalOptions& o) {
  if (o.fields.empty()) throw Error("no fields to score");
  const auto column_list = [&] {
    std::string names;
    for (const auto& f : references.fields) names += (names.empty() ? "" : ", ") + f;
    return names;
  };
  const std::vector<std::string> needed = o.text_column.empty() ? o.fields : std::vector<std::string>{o.text_column};
  for (const std::string& f : needed)
    if (!contains(references.fields, f))
      throw Error(references.source + ": no column '" + f + "' (columns: " + column_list() + ")" +
                  (o.text_column.empty() && contains(references.fields, "text")
                       ? "; to parse the fields from the training text, use the text column"
                       : ""));
  const size_t rows = references.rows.size();
  if (!predictions.front().prompt_index && predictions.size() != rows)
    throw Error(predictions_source + ": " + plural(predictions.size(), "prediction") + " without prompt_index, but " +
                references.source + " has " + plural(rows, "row") + " (without prompt_index the n-th prediction is row n)");

  std::vector<FieldRecord> refs(rows);
  for (size_t r = 0; r < rows; ++r) {
    const Row& row = references.rows[r];
    if (!o.text_column.empty()) {
      refs[r] = parse_fields(*row.get(o.text_column), o.syntax).fields;
      continue;
    }
    for (const std::string& f : o.fields) refs[r].emplace_back(f, *row.get(f));
  }

  std::vector<FieldRecord> pred_records, ref_records;
  std::vector<int64_t> per_row(rows, 0);
  for (size_t i = 0; i < predictions.size(); ++i) {
    const FieldPrediction& p = predictions[i];
    const std::string where = predictions_source + ":" + std::to_string(p.line);
    const int64_t r = p.prompt_index ? *p.prompt_index : static_cast<int64_t>(i);
    if (r >= static_cast<int64_t>(rows))
      throw Error(where + ": prompt_index " + std::to_string(r) + " is past the last row of " + references.source +
                  " (" + plural(rows, "row") + ")");
    const Row& row = references.rows[r];
    const std::string* ref_prompt = row.get(o.prompt_column);
    if (p.prompt && ref_prompt && !rtrim(*p.prompt).ends_with(rtrim(*ref_prompt)))
      throw Error(where + ": the prompt does not end with the prompt of " + references.source + " " + row.name() +
                  " (predictions and references out of step?)");
    ++per_row[r];
    pred_records.push_back(p.fields);
    ref_records.push_back(refs[r]);
  }
  const auto missing = std::find(per_row.begin(), per_row.end(), 0);
  if (missing != per_row.end())
  {
    const auto n = std::count(per_row.begin(), per_row.end(), 0);
    throw Error(references.source + ": " + plural(n, "row") + (n == 1 ? " has" : " have") +
                " no prediction in " + predictions_source + ", the first " +
                references.rows[missing - per_row.begin()].name());
  }

  FieldsEvaluation e;
  e.score = score_fields(pred_records, ref_records, o.fields);
  e.references = static_cast<int64_t>(rows);
  e.predictions = static_cast<int64_t>(predictions.size());
  e.min_per_reference = *std::min_element(per_row.begin(), per_row.end());
  e.max_per_reference = *std::max_element(per_row.begin(), per_row.end());
  return e;
}

}  // namespace lmforge::tasks
