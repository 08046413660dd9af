#pragma once
// Prompt templates for tasks (format in docs/TASKS.md, "Datasets, templates and few-shot").
//
// A pattern is text with `{field}` placeholders, replaced by the row's field; `{{` and `}}` are a
// literal brace. A placeholder may pipe the value through filters, left to right:
// `{hypothesis|strip|period}`: strip (ASCII whitespace both ends), lstrip, rstrip, lower, upper,
// period (appends "." unless the value already ends with "."; lm-eval's MNLI hypothesis rule).
//
// A prompt is, as lm-eval builds it (description + few-shot examples + query):
//   instruction
//   + for each few-shot example: example_prefix + text(ex) + target_delimiter + target(ex) + fewshot_delimiter
//   + query_prefix + text(query)
// In log-likelihood mode the continuations are target_delimiter + choice for each choice.
// target(ex) is the `target` pattern if given; else choices[label] when there are choices; else the
// label's name. choices[i] is the answer for label index i.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/tasks/dataset.h"

namespace lmforge::tasks {

struct Template {
  std::string source = "inline";  // the file, or "inline"; named in errors
  std::string instruction;        // once, before everything (lm-eval's description)
  std::string example_prefix;     // before each few-shot example
  std::string query_prefix;       // before the query
  std::string text;               // the row's prompt (lm-eval's doc_to_text); required
  std::string target;             // the example's answer pattern; "" = the default above
  std::vector<std::string> choices;  // answer patterns, one per label index, without the delimiter
  std::string target_delimiter = " ";
  std::string fewshot_delimiter = "\n\n";
  std::vector<std::string> label_names;  // the label order the template assumes; may be empty
  std::vector<Row> examples;             // inline few-shot examples (a pool), in file order
  std::vector<int64_t> fewshot_ids;      // fixed few-shot examples: 0-based ids in the pool
};

// Reads a template file (YAML; keys: instruction, example_prefix, query_prefix, text, target,
// choices, target_delimiter, fewshot_delimiter, label_names, examples, fewshot_ids, and the
// free-text name and description). Unknown keys, wrong types, a missing `text` and a malformed
// pattern are one-line errors naming the file and key.
Template load_template(const std::filesystem::path& file);
Template parse_template(std::string_view yaml, const std::string& source);

// A template from a flag: `text` is the pattern (with \n, \t and \\ as escapes, since a shell
// flag rarely holds a line break), everything else as defaulted.
Template inline_template(const std::string& text);

// A flag's text with \n, \t and \\ read as a line break, a tab and a backslash.
std::string unescape_flag_text(const std::string& text);

// The placeholder names of a pattern, in order (with repeats). Throws on a malformed pattern
// (an unclosed `{`, a lone `}`, an empty name, an unknown filter), naming `where`.
std::vector<std::string> pattern_fields(std::string_view pattern, const std::string& where);

// Replaces the placeholders of `pattern` with the row's fields. A field the row lacks is a
// one-line error naming the field, the row and the fields it has.
std::string render(std::string_view pattern, const Row& row, const std::string& where);

// Every field the template's patterns use, once each, in order of first use.
std::vector<std::string> template_fields(const Template& t);

// Checks before any work that every field the template uses is among `fields` (a dataset's),
// so a typo fails once, naming the field and the available ones.
void check_fields(const Template& t, const std::vector<std::string>& fields, const std::string& dataset_source);

// The pieces of a prompt for one row.
std::string render_text(const Template& t, const Row& row);
std::string render_target(const Template& t, const Row& row, const std::vector<std::string>& label_names);
std::vector<std::string> render_choices(const Template& t, const Row& row);

}  // namespace lmforge::tasks
