#pragma once
// Small string operations that must behave like their Python counterparts in HF's tokenizer code.
#include <string>
#include <string_view>

namespace lmforge::tokenizer {

// str.replace(old, new): non-overlapping occurrences, scanned left to right.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

// HF's clean_up_tokenization: the fixed replacement chain " ." -> "." ... " 're" -> "'re",
// applied in HF's order (the order matters: " ' " is rewritten before " 's").
std::string clean_up_tokenization(std::string_view text);

// str.lstrip() / str.rstrip() with no argument (Unicode whitespace; text must be valid UTF-8).
std::string lstrip_space(std::string_view text);
std::string rstrip_space(std::string_view text);

}  // namespace lmforge::tokenizer
