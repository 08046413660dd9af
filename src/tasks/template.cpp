// Prompt templates: pattern parsing and rendering, template files (rules in
// include/lmforge/tasks/template.h).
#include "lmforge/tasks/template.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>

#include "io/io_util.h"
#include "lmforge/error.h"

namespace lmforge::tasks {

namespace {

// A parsed pattern: literal text, or a field with its filters.
struct Piece {
  bool is_field = false;
  std::string text;  // literal text, or the field name
  std::vector<std::string> filters;
};

constexpr std::string_view kFilters[] = {"strip", "lstrip", "rstrip", "lower", "upper", "period"};

bool is_ws(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string apply_filter(std::string v, std::string_view f) {
  if (f == "strip" || f == "lstrip") v.erase(v.begin(), std::find_if_not(v.begin(), v.end(), is_ws));
  if (f == "strip" || f == "rstrip") v.erase(std::find_if_not(v.rbegin(), v.rend(), is_ws).base(), v.end());
  if (f == "lower") std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (f == "upper") std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::toupper(c); });
  if (f == "period" && (v.empty() || v.back() != '.')) v += '.';
  return v;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// "{name|f1|f2}" without the braces -> name and filters.
Piece parse_placeholder(std::string_view inner, const std::string& where) {
  Piece p{true, "", {}};
  size_t pos = 0;
  for (bool first = true; pos <= inner.size(); first = false) {
    const size_t bar = std::min(inner.find('|', pos), inner.size());
    std::string part(inner.substr(pos, bar - pos));
    part.erase(part.begin(), std::find_if_not(part.begin(), part.end(), is_ws));
    part.erase(std::find_if_not(part.rbegin(), part.rend(), is_ws).base(), part.end());
    pos = bar + 1;
    if (first) {
      if (part.empty()) throw Error(where + ": empty placeholder '{" + std::string(inner) + "}' (write {{ for a literal '{')");
      p.text = part;
    } else {
      if (std::find(std::begin(kFilters), std::end(kFilters), part) == std::end(kFilters))
        throw Error(where + ": unknown filter '" + io::printable(part) + "' in '{" + std::string(inner) +
                    "}' (filters: strip, lstrip, rstrip, lower, upper, period)");
      p.filters.push_back(part);
    }
  }
  return p;
}

std::vector<Piece> parse_pattern(std::string_view s, const std::string& where) {
  std::vector<Piece> out;
  std::string lit;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if ((c == '{' || c == '}') && i + 1 < s.size() && s[i + 1] == c) {  // {{ or }}
      lit += c;
      ++i;
    } else if (c == '{') {
      const size_t close = s.find('}', i + 1);
      const size_t nested = s.find('{', i + 1);
      if (close == std::string_view::npos || nested < close)
        throw Error(where + ": '{' at character " + std::to_string(i + 1) +
                    " is never closed (write {{ for a literal '{')");
      if (!lit.empty()) out.push_back({false, std::move(lit), {}});
      lit.clear();
      out.push_back(parse_placeholder(s.substr(i + 1, close - i - 1), where));
      i = close;
    } else if (c == '}') {
      throw Error(where + ": '}' at character " + std::to_string(i + 1) + " closes nothing (write }} for a literal '}')");
    } else {
      lit += c;
    }
  }
  if (!lit.empty()) out.push_back({false, std::move(lit), {}});
  return out;
}

// ---- template files -----------------------------------------------------------------------------

constexpr std::string_view kKeys[] = {"name",        "description",      "instruction",      "example_prefix",
                                      "query_prefix", "text",             "target",           "choices",
                                      "target_delimiter", "fewshot_delimiter", "label_names", "examples",
                                      "fewshot_ids"};

[[noreturn]] void fail_key(const std::string& source, const std::string& key, const std::string& what) {
  throw Error(source + ": key '" + key + "': " + what);
}

std::string scalar(const YAML::Node& n, const std::string& source, const std::string& key) {
  if (!n.IsScalar()) fail_key(source, key, "expected a string");
  return n.as<std::string>();
}

std::vector<std::string> string_list(const YAML::Node& n, const std::string& source, const std::string& key) {
  if (!n.IsSequence()) fail_key(source, key, "expected a list of strings");
  std::vector<std::string> out;
  for (const auto& item : n) out.push_back(scalar(item, source, key));
  return out;
}

std::vector<int64_t> id_list(const YAML::Node& n, const std::string& source, const std::string& key) {
  if (!n.IsSequence()) fail_key(source, key, "expected a list of row ids (0, 1, ...)");
  std::vector<int64_t> out;
  for (const auto& item : n) {
    int64_t id = -1;
    if (!item.IsScalar() || !YAML::convert<int64_t>::decode(item, id) || id < 0)
      fail_key(source, key, "expected row ids (integers from 0), got '" + (item.IsScalar() ? item.Scalar() : "?") + "'");
    out.push_back(id);
  }
  return out;
}

// Inline examples: a list of maps of field -> value; labels become indices into label_names.
std::vector<Row> example_rows(const YAML::Node& n, const Template& t) {
  if (!n.IsSequence()) fail_key(t.source, "examples", "expected a list of maps (- {premise: ..., label: ...})");
  std::vector<Row> rows;
  for (const auto& item : n) {
    if (!item.IsMap()) fail_key(t.source, "examples", "example " + std::to_string(rows.size()) + " is not a map");
    Row row;
    row.id = static_cast<int64_t>(rows.size());
    for (const auto& kv : item)
      row.fields.emplace_back(kv.first.as<std::string>(), scalar(kv.second, t.source, "examples"));
    if (const std::string* label = row.get("label"); label != nullptr && !t.label_names.empty()) {
      const auto it = std::find(t.label_names.begin(), t.label_names.end(), *label);
      if (it == t.label_names.end())
        fail_key(t.source, "examples",
                 "example " + std::to_string(row.id) + ": label '" + *label + "' is not in label_names (" +
                     join(t.label_names) + ")");
      row.label = static_cast<int>(it - t.label_names.begin());
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void apply_keys(const YAML::Node& root, Template& t) {
  if (!root.IsMap()) throw Error(t.source + ": a template file is a YAML map (text: \"...\", ...)");
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
      std::string known;
      for (auto k : kKeys) known += (known.empty() ? "" : ", ") + std::string(k);
      throw Error(t.source + ": unknown key '" + io::printable(key) + "' (keys: " + known + ")");
    }
  }
  auto str = [&](const char* key, std::string& out) {
    if (root[key]) out = scalar(root[key], t.source, key);
  };
  str("instruction", t.instruction);
  str("example_prefix", t.example_prefix);
  str("query_prefix", t.query_prefix);
  str("text", t.text);
  str("target", t.target);
  str("target_delimiter", t.target_delimiter);
  str("fewshot_delimiter", t.fewshot_delimiter);
  if (root["choices"]) t.choices = string_list(root["choices"], t.source, "choices");
  if (root["label_names"]) t.label_names = string_list(root["label_names"], t.source, "label_names");
  if (root["fewshot_ids"]) t.fewshot_ids = id_list(root["fewshot_ids"], t.source, "fewshot_ids");
  if (root["examples"]) t.examples = example_rows(root["examples"], t);
  if (!root["text"]) throw Error(t.source + ": no 'text' key (the row's prompt pattern, e.g. text: \"{premise}\")");
}

// Every pattern of the template, with the key it came from, for validation.
std::vector<std::pair<std::string, std::string>> patterns(const Template& t) {
  std::vector<std::pair<std::string, std::string>> out = {{"text", t.text}};
  if (!t.target.empty()) out.emplace_back("target", t.target);
  for (const auto& c : t.choices) out.emplace_back("choices", c);
  return out;
}

}  // namespace

std::vector<std::string> pattern_fields(std::string_view pattern, const std::string& where) {
  std::vector<std::string> out;
  for (const auto& p : parse_pattern(pattern, where))
    if (p.is_field) out.push_back(p.text);
  return out;
}

std::string render(std::string_view pattern, const Row& row, const std::string& where) {
  std::string out;
  for (const auto& p : parse_pattern(pattern, where)) {
    if (!p.is_field) {
      out += p.text;
      continue;
    }
    const std::string* v = row.get(p.text);
    if (v == nullptr)
      throw Error(where + ": field '" + p.text + "' is not in " + row.name() + "; available: " + row.field_names());
    std::string value = *v;
    for (const auto& f : p.filters) value = apply_filter(std::move(value), f);
    out += value;
  }
  return out;
}

Template parse_template(std::string_view yaml, const std::string& source) {
  Template t;
  t.source = source;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    const std::string pos = e.mark.line >= 0 ? ":" + std::to_string(e.mark.line + 1) : "";
    throw Error(source + pos + ": invalid YAML: " + e.msg);
  }
  try {
    apply_keys(root, t);
  } catch (const YAML::Exception& e) {  // e.g. a key that is itself a map
    throw Error(source + ": invalid template: " + e.msg);
  }
  for (const auto& [key, pattern] : patterns(t)) pattern_fields(pattern, source + ": key '" + key + "'");
  return t;
}

Template load_template(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) throw Error(file.string() + ": no such template file");
  return parse_template(io::read_text_file(file, "template"), file.string());
}

// A shell flag cannot easily hold a line break: \n, \t and \\ in an inline template are escapes.
std::string unescape_flag_text(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'n' || s[i + 1] == 't' || s[i + 1] == '\\')) {
      out += s[i + 1] == 'n' ? '\n' : s[i + 1] == 't' ? '\t' : '\\';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

Template inline_template(const std::string& text) {
  Template t;
  t.text = unescape_flag_text(text);
  pattern_fields(t.text, "template");
  return t;
}

std::vector<std::string> template_fields(const Template& t) {
  std::vector<std::string> out;
  for (const auto& [key, pattern] : patterns(t))
    for (auto& f : pattern_fields(pattern, t.source))
      if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(std::move(f));
  return out;
}

void check_fields(const Template& t, const std::vector<std::string>& fields, const std::string& dataset_source) {
  for (const auto& [key, pattern] : patterns(t))
    for (const auto& f : pattern_fields(pattern, t.source))
      if (std::find(fields.begin(), fields.end(), f) == fields.end())
        throw Error(t.source + ": key '" + key + "' uses field '" + f + "', which " + dataset_source +
                    " does not have; available: " + join(fields));
}

std::string render_text(const Template& t, const Row& row) { return render(t.text, row, t.source + ": text"); }

std::string render_target(const Template& t, const Row& row, const std::vector<std::string>& label_names) {
  if (!t.target.empty()) return render(t.target, row, t.source + ": target");
  if (row.label != kNoLabel && !t.choices.empty()) {
    if (row.label >= static_cast<int>(t.choices.size()))
      throw Error(t.source + ": " + row.name() + " has label index " + std::to_string(row.label) + " but only " +
                  std::to_string(t.choices.size()) + " choices");
    return render(t.choices[row.label], row, t.source + ": choices");
  }
  if (row.label != kNoLabel && row.label < static_cast<int>(label_names.size())) return label_names[row.label];
  // Inline examples without label names keep their label as written.
  const std::string* name = row.get("label");
  if (name != nullptr && !name->empty()) {
    if (t.choices.empty()) return *name;
    throw Error(t.source + ": " + row.name() + " has label '" + *name +
                "', but no label_names give its index into the choices");
  }
  throw Error(t.source + ": " + row.name() + " has no gold label, so it cannot be shown as a few-shot example");
}

std::vector<std::string> render_choices(const Template& t, const Row& row) {
  std::vector<std::string> out;
  for (const auto& c : t.choices) out.push_back(render(c, row, t.source + ": choices"));
  return out;
}

}  // namespace lmforge::tasks
