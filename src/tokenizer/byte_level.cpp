#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace lmforge::tokenizer {

namespace {

// Bytes that are already printable non-space characters in Latin-1 keep their own code point;
// the remaining 68 bytes (controls, space, DEL, NBSP, soft hyphen, C1 controls) are given
// U+0100, U+0101, ... in increasing byte order. This is the table GPT-2 was trained with.
bool keeps_own_code_point(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> to_char{};
  // Every mapped code point is below U+0144, so the reverse table is a small array.
  std::array<int, 0x200> to_byte{};
  Tables() {
    to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = keeps_own_code_point(b) ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = b;
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t byte_to_char(unsigned char b) { return tables().to_char[b]; }

std::optional<unsigned char> char_to_byte(char32_t cp) {
  if (cp >= tables().to_byte.size() || tables().to_byte[cp] < 0) return std::nullopt;
  return static_cast<unsigned char>(tables().to_byte[cp]);
}

std::string bytes_to_token_string(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_char(static_cast<unsigned char>(c)));
  return out;
}

void append_token_bytes(std::string& out, std::string_view token) {
  for (std::size_t pos = 0; pos < token.size();) {
    const std::size_t start = pos;
    char32_t cp = next_codepoint(token, pos);
    if (auto b = char_to_byte(cp))
      out += static_cast<char>(*b);
    else
      out.append(token.substr(start, pos - start));
  }
}

}  // namespace lmforge::tokenizer
