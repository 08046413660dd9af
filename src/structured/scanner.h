#pragma once
// A cursor over the UTF-8 text of a grammar or a regular expression, shared by both parsers: code
// points, escapes and "where" for error messages.
#include <cstdint>
#include <string>
#include <string_view>

namespace lmforge::structured {

class Scanner {
 public:
  // `what` starts every error message ("grammar", "--regex").
  Scanner(std::string_view text, std::string what) : text_(text), what_(std::move(what)) {}

  bool done() const { return pos_ >= text_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  size_t pos() const { return pos_; }
  void skip(size_t n = 1) { pos_ += n; }
  bool eat(char c);
  bool eat(std::string_view s);
  void expect(char c, const char* context);
  // The next code point (UTF-8 decoded); throws on invalid UTF-8.
  char32_t codepoint();
  // After a backslash: \n \r \t \f \v \0 \xHH \uHHHH \UHHHHHHHH, or any punctuation as itself.
  char32_t escape();
  // A decimal number (for {m,n}).
  int number();

  [[noreturn]] void fail(const std::string& message) const;

 private:
  char32_t hex(int digits);
  std::string_view text_;
  std::string what_;
  size_t pos_ = 0;
};

}  // namespace lmforge::structured
