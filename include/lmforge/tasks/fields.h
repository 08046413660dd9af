#pragma once
// Field records of the photo-metadata extraction workflow (seed 004, docs/EXTRACTION.md): GPT-J
// fine-tuned on `PROMPT TARGET` texts, where the prompt is the OCR text of a photo's back and front
//   <language> en <back> LINE <b> LINE ... <front> LINE <b> ... <END>
// and the target the fields, empty ones left out
//   <language> en <rewrite> DESCRIPTION <title> TITLE <agency> AGENCY <photographer> NAME <date> DATE
// parse_fields() reads such a generated text back into (field, value) pairs. Rules, in order:
//   1. Tags. `<name>` is a tag when `name` is one of the syntax's fields or prompt tags, written
//      exactly (case-sensitive, nothing inside the brackets but the name; spaces around it are not
//      needed). The stop markers (`<END>`, `<|endoftext|>`) are matched as written. Anything else
//      with angle brackets (`<b>`, `<Title>`, `< date >`, a lone `<`) is ordinary text.
//   2. The prompt. A text that starts with its prompt (HF batch_decode of the whole sequence) is
//      recognised by a prompt tag (`<back>`, `<front>`) coming before the first field tag other
//      than the header field (`<language>`, which opens prompt and answer alike): everything up to
//      and including the first prompt end (`<END>`) after that prompt tag is dropped. Without such
//      a prompt end the text is all prompt and has no fields.
//   3. Text before the first tag is the preamble: kept for inspection, never a field.
//   4. A field tag opens a field whose value runs to the next tag or stop marker; values lose
//      their surrounding ASCII whitespace (space, tab, CR, LF, FF, VT), the inside is kept as is.
//      `<agency> <date> 1994` gives agency "" and date "1994".
//   5. After the first field tag, the first stop marker or prompt tag ends the record (a model
//      trained on packed rows goes on with the next row's prompt); the rest is ignored. Before the
//      first field tag they are part of the preamble.
//   6. A field tag seen again: the first value wins, the later one is dropped and its name listed
//      in `repeated`.
// An absent field and an empty one are the same for scoring: the seed's targets leave empty fields
// out (`agency: ""` is no `<agency>` tag).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmforge/tasks/dataset.h"

namespace lmforge::tasks {

// (field, value) pairs in text order.
using FieldRecord = std::vector<std::pair<std::string, std::string>>;

struct FieldSyntax {
  std::vector<std::string> fields = {"language", "rewrite", "title", "agency", "photographer", "date"};
  std::string header_field = "language";                      // opens the prompt and the answer
  std::vector<std::string> prompt_tags = {"back", "front"};   // only a prompt has them
  std::string prompt_end = "<END>";                           // the prompt's last tag
  std::vector<std::string> stops = {"<END>", "<|endoftext|>"};  // end a record, as written
};

// The fields a record is scored on by default: the seed's five (description = rewrite, title,
// agency, photographer, date); `language` is always "en" in the seed and not scored.
const std::vector<std::string>& default_scored_fields();

struct ParsedFields {
  FieldRecord fields;                 // first value of each field, in text order
  std::string preamble;               // text before the first tag, trimmed (not a field)
  std::vector<std::string> repeated;  // fields seen again, values dropped (rule 6), in order
  std::string stopped_at;             // the stop marker or `<tag>` that ended the record; "" = end of text
  bool prompt_dropped = false;        // rule 2 applied
};

ParsedFields parse_fields(std::string_view text, const FieldSyntax& syntax = {});

// The answer a model gave to `prompt` when it generated `continuation`: the prompt's text after its
// last prompt end (`<END>`), if it has one, followed by the continuation. A prompt primed with the
// start of the answer (`... <END> <language> en <rewrite>`) keeps those tags; a few-shot prompt's
// examples stay out.
std::string answer_text(std::string_view prompt, std::string_view continuation, const FieldSyntax& syntax = {});

// The value of `field` (trimmed), "" when the record has none.
std::string field_value(const FieldRecord& record, std::string_view field);

// {"field": "value", ...} in the record's order.
nlohmann::ordered_json fields_json(const FieldRecord& record);

// ---- scoring ------------------------------------------------------------------------------------

struct FieldAccuracy {
  std::string field;
  int64_t correct = 0, total = 0;
  // The same over the pairs whose reference has a value: an empty reference is matched by saying
  // nothing, so a model that never writes <agency> still gets every agency-less row right.
  int64_t with_value_correct = 0, with_value_total = 0;
  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
  double with_value_accuracy() const {
    return with_value_total ? static_cast<double>(with_value_correct) / static_cast<double>(with_value_total) : 0.0;
  }
};

struct FieldsScore {
  std::vector<FieldAccuracy> per_field;  // in the order the fields were asked for
  int64_t all_correct = 0;               // pairs with every scored field right
  int64_t pairs = 0;
  double all_accuracy() const { return pairs ? static_cast<double>(all_correct) / static_cast<double>(pairs) : 0.0; }
};

// Exact match per field: predicted[i] against reference[i], each value trimmed (field_value),
// absent = "". Throws lmforge::Error when the sizes differ or `fields` is empty.
FieldsScore score_fields(const std::vector<FieldRecord>& predicted, const std::vector<FieldRecord>& reference,
                         const std::vector<std::string>& fields);

// ---- prediction files ---------------------------------------------------------------------------

// One line of a predictions file (`lmforge generate --fields` writes them):
//   {"prompt_index": 0, "sequence_index": 0, "prompt": "...", "text": "...", "fields": {...}}
// `fields` (an object of strings; null counts as "") is used when present, else `text` is parsed
// by parse_fields(). `prompt_index` (the reference row, 0-based) and `prompt` are optional; other
// keys are ignored.
struct FieldPrediction {
  int64_t line = 0;  // 1-based line in its file
  std::optional<int64_t> prompt_index;
  std::optional<std::string> prompt;
  FieldRecord fields;
};

// Reads JSON Lines text (blank lines skipped). Either every line has a prompt_index or none does.
// Errors are one line: "SOURCE:LINE: ..." (not JSON, not an object, a key of the wrong type,
// neither fields nor text), or "SOURCE: no predictions".
std::vector<FieldPrediction> parse_field_predictions(std::string_view text, const std::string& source,
                                                     const FieldSyntax& syntax = {});

struct FieldsEvalOptions {
  std::vector<std::string> fields = default_scored_fields();  // scored, in this order
  std::string prompt_column = "prompt";  // compared with the predictions' prompts when the file has it
  // "": the reference fields are the columns named like them (an empty cell is an absent field).
  // A column name: the fields are parsed from it instead (full training texts, prompt + target).
  std::string text_column;
  FieldSyntax syntax;
};

struct FieldsEvaluation {
  FieldsScore score;
  int64_t references = 0, predictions = 0;
  int64_t min_per_reference = 0, max_per_reference = 0;  // predictions per reference row
};

// Pairs every prediction with its reference row (prompt_index, else the n-th prediction with the
// n-th row, counts equal) and scores the fields. Every reference row needs at least one prediction;
// several (num_return_sequences) are each scored. When a prediction and its row both have a
// prompt, the prediction's (trailing whitespace dropped) must end with the row's, so a bos or an
// instruction before it is fine but rows out of order are caught. Errors are one line naming the
// file and line: a missing column, a prompt_index past the last row, a row without predictions.
FieldsEvaluation evaluate_field_predictions(const std::vector<FieldPrediction>& predictions,
                                            const std::string& predictions_source, const Dataset& references,
                                            const FieldsEvalOptions& options = {});

}  // namespace lmforge::tasks
