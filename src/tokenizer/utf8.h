#pragma once
// UTF-8 helpers for the tokenizer. Encoding works on valid UTF-8 (what a Python str is); decoding
// must reproduce Python's bytes.decode("utf-8", errors="replace") exactly, because partial byte
// tokens are common in generated ids and HF turns them into U+FFFD that way.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace lmforge::tokenizer {

// Appends the UTF-8 form of code point `cp` (must be a Unicode scalar value).
void append_utf8(std::string& out, char32_t cp);

// Decodes the code point starting at `pos` of a string already known to be valid UTF-8 and advances
// `pos` past it.
char32_t next_codepoint(std::string_view text, std::size_t& pos);

// Byte offset of the first byte that does not start a valid UTF-8 sequence (overlongs, surrogates
// and values above U+10FFFF are invalid, as in Python), or nullopt when `text` is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

// Python's bytes.decode("utf-8", errors="replace"): every maximal invalid subpart (a valid prefix
// of a sequence cut short, or one stray byte) becomes exactly one U+FFFD.
std::string decode_utf8_replace(std::string_view bytes);

// Python's str.isspace() for one code point; HF strips added-token neighbours with str.strip().
bool is_python_space(char32_t cp);

}  // namespace lmforge::tokenizer
