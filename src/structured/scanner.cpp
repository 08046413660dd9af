#include "structured/scanner.h"

#include <cctype>

#include "lmforge/error.h"

namespace lmforge::structured {

void Scanner::fail(const std::string& message) const {
  // Line and column, so a mistake in a grammar file can be found.
  int line = 1, col = 1;
  for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
    if (text_[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  throw Error(what_ + ": " + message + " at line " + std::to_string(line) + ", column " + std::to_string(col));
}

bool Scanner::eat(char c) {
  if (peek() != c) return false;
  ++pos_;
  return true;
}

bool Scanner::eat(std::string_view s) {
  if (text_.substr(pos_, s.size()) != s) return false;
  pos_ += s.size();
  return true;
}

void Scanner::expect(char c, const char* context) {
  if (!eat(c)) fail(std::string("expected '") + c + "' " + context);
}

char32_t Scanner::codepoint() {
  if (done()) fail("unexpected end");
  const auto b0 = static_cast<unsigned char>(text_[pos_]);
  int n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
  if (n == 0 || pos_ + n > text_.size()) fail("invalid UTF-8");
  char32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (int i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(text_[pos_ + i]);
    if ((b >> 6) != 2) fail("invalid UTF-8");
    cp = (cp << 6) | (b & 0x3F);
  }
  pos_ += n;
  return cp;
}

char32_t Scanner::hex(int digits) {
  char32_t v = 0;
  for (int i = 0; i < digits; ++i) {
    const char c = peek();
    if (!std::isxdigit(static_cast<unsigned char>(c))) fail("expected " + std::to_string(digits) + " hex digits");
    v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10));
    ++pos_;
  }
  return v;
}

char32_t Scanner::escape() {
  if (done()) fail("unfinished escape");
  const char c = text_[pos_++];
  switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'f': return '\f';
    case 'v': return '\v';
    case '0': return 0;
    case 'x': return hex(2);
    case 'u': return hex(4);
    case 'U': return hex(8);
    default:
      if (std::ispunct(static_cast<unsigned char>(c)) || c == ' ') return static_cast<char32_t>(c);
      --pos_;
      fail(std::string("unsupported escape '\\") + c + "'");
  }
}

int Scanner::number() {
  if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a number");
  long v = 0;
  while (std::isdigit(static_cast<unsigned char>(peek()))) {
    v = v * 10 + (text_[pos_++] - '0');
    if (v > 100000) fail("repetition count too large");
  }
  return static_cast<int>(v);
}

}  // namespace lmforge::structured
