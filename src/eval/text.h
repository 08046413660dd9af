#pragma once
// Python-str semantics the reference metrics depend on, on UTF-8 input: code points, str.lower(),
// str.split() / str.rstrip() whitespace, and the Unicode categories of the `regex` module.
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::eval {

// Code points of `text`; invalid UTF-8 is decoded as Python's errors="replace" would (U+FFFD).
std::u32string to_code_points(std::string_view text);
std::string to_utf8(std::u32string_view text);

// Python str.lower(): full Unicode lowercasing incl. U+0130 -> "i\u0307" and the final-sigma rule.
std::u32string python_lower(std::u32string_view text);
// Python str.split() with no argument: runs of Unicode whitespace separate, empty parts dropped.
std::vector<std::u32string> python_split(std::u32string_view text);
// Python str.rstrip() with no argument.
std::u32string_view python_rstrip(std::u32string_view text);

bool is_space(char32_t cp);
bool is_punctuation(char32_t cp);  // \p{P}
bool is_symbol(char32_t cp);       // \p{S}
bool is_number(char32_t cp);       // \p{N}

}  // namespace lmforge::eval
