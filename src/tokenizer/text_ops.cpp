#include "tokenizer/text_ops.h"

#include <array>
#include <utility>

#include "tokenizer/utf8.h"

namespace lmforge::tokenizer {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (true) {
    std::size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos || from.empty()) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

std::string clean_up_tokenization(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kRules{{
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  }};
  std::string out(text);
  for (const auto& [from, to] : kRules) out = replace_all(out, from, to);
  return out;
}

std::string lstrip_space(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t next = pos;
    if (!is_python_space(next_codepoint(text, next))) break;
    pos = next;
  }
  return std::string(text.substr(pos));
}

std::string rstrip_space(std::string_view text) {
  // Walk forward (UTF-8 cannot be decoded backwards without care) remembering where the last
  // non-space code point ended.
  std::size_t keep = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    if (!is_python_space(next_codepoint(text, pos))) keep = pos;
  }
  return std::string(text.substr(0, keep));
}

}  // namespace lmforge::tokenizer
