#pragma once
// GPT-2's reversible byte <-> printable-character mapping. BPE runs on text where every byte is
// shown as one visible code point (space -> "Ġ", newline -> "Ċ"), so vocab.json / merges.txt never
// contain raw control bytes or whitespace.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace lmforge::tokenizer {

// Code point that stands for byte `b`.
char32_t byte_to_char(unsigned char b);
// Byte a code point stands for, or nullopt for code points outside the 256-entry alphabet.
std::optional<unsigned char> char_to_byte(char32_t cp);

// Vocabulary spelling (UTF-8) of a run of raw bytes.
std::string bytes_to_token_string(std::string_view bytes);
// Appends the raw bytes a vocabulary string stands for. Code points outside the byte alphabet
// (possible only in hand-written added tokens) are kept as their own UTF-8, so nothing is lost.
void append_token_bytes(std::string& out, std::string_view token);

}  // namespace lmforge::tokenizer
