#include "tokenizer/utf8.h"

#include <cstdint>

namespace lmforge::tokenizer {

namespace {

constexpr char32_t kReplacement = 0xFFFD;

// What the bytes at one position hold: a complete code point, or an invalid subpart of `length`
// bytes that Python replaces with a single U+FFFD.
struct Scan {
  bool valid;
  std::size_t length;
  char32_t cp;
};

// Follows the Unicode table of well-formed UTF-8 byte sequences (Unicode 3.9, table 3-7), which is
// what CPython's decoder implements: the second byte's range depends on the lead byte so that
// overlongs (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and > U+10FFFF (F4 90..) fail at the
// second byte, making the lead byte alone the maximal subpart.
Scan scan_sequence(std::string_view s, std::size_t pos) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  if (b0 < 0x80) return {true, 1, b0};
  std::size_t need;
  char32_t cp;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {false, 1, 0};  // continuation byte, C0/C1 or F5..FF: never starts a sequence
  }
  for (std::size_t i = 1; i <= need; ++i) {
    // A sequence cut off by the end of the input is one subpart, like a bad continuation byte.
    if (pos + i >= s.size()) return {false, i, 0};
    const auto b = static_cast<uint8_t>(s[pos + i]);
    if (b < lo || b > hi) return {false, i, 0};
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80;
    hi = 0xBF;
  }
  return {true, need + 1, cp};
}

}  // namespace

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

char32_t next_codepoint(std::string_view text, std::size_t& pos) {
  Scan s = scan_sequence(text, pos);
  pos += s.length;
  return s.valid ? s.cp : kReplacement;
}

std::optional<std::size_t> find_invalid_utf8(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    Scan s = scan_sequence(text, pos);
    if (!s.valid) return pos;
    pos += s.length;
  }
  return std::nullopt;
}

std::string decode_utf8_replace(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t pos = 0; pos < bytes.size();) {
    Scan s = scan_sequence(bytes, pos);
    if (s.valid)
      out.append(bytes.substr(pos, s.length));
    else
      append_utf8(out, kReplacement);
    pos += s.length;
  }
  return out;
}

bool is_python_space(char32_t cp) {
  // str.isspace(): bidirectional class WS/B/S or category Zs. Unlike the regex \s this includes
  // the ASCII separators U+001C..U+001F.
  if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20)) return true;
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace lmforge::tokenizer
