#pragma once
// The one reader of prompt files (generate --prompt_file, synth's prompt_file, prompts piped to
// standard input). Rules, in order:
//   1. A UTF-8 byte-order mark at the start is dropped; lines end at LF or CRLF.
//   2. The first non-blank line is read as a CSV record. It is a header when one of its fields is the
//      requested column name or, with none requested, `prompt` or `text` (ASCII case-insensitive,
//      surrounding spaces ignored).
//   3. With a header the source is CSV (RFC 4180: commas separate fields, double quotes enclose
//      fields with commas, quotes ("" inside) or line breaks). The prompt is the field of the
//      requested column, else of `prompt`, else of `text`. Every record needs as many fields as the
//      header (a prompt with a comma must be quoted).
//   4. Without a header every line is one prompt, exactly as written: commas and quotes are text.
//      This keeps plain "one prompt per line" files working. Asking for a column of such a file is
//      an error.
//   5. Every prompt loses its trailing spaces and tabs (an invisible trailing space would become a
//      token of its own); leading spaces stay (" the" and "the" are different GPT-2 tokens).
//      Prompts that are then empty, i.e. blank lines and empty fields, are skipped.
//   6. No prompt at all is an error (unless allow_empty), as are an unreadable file, a missing
//      column, a record with the wrong number of fields and an unterminated quote: one-line
//      lmforge::Error messages naming the flag or key (`label`) and the file.
#include <filesystem>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge {

struct PromptFileOptions {
  std::string column;                 // the prompt column of a CSV; "" = `prompt`, else `text`
  std::string label = "prompt_file";  // the flag or key named in error messages
  bool allow_empty = false;           // true: a source without prompts gives {} instead of an error
};

// The path that means standard input.
inline constexpr std::string_view kStdinPath = "-";

// Reads the prompts of `path` ("-" = standard input) by the rules above.
std::vector<std::string> read_prompt_file(const std::filesystem::path& path, const PromptFileOptions& options = {});

// The same rules over text already read; `source` names it in errors (a path, "standard input").
std::vector<std::string> parse_prompts(std::string_view text, const std::string& source,
                                       const PromptFileOptions& options = {});

// Reads all of `in` (e.g. std::cin) and parses it.
std::vector<std::string> read_prompts(std::istream& in, const std::string& source, const PromptFileOptions& options = {});

}  // namespace lmforge
