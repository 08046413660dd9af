#pragma once
// GPT-2's pre-tokenizer: the regex that cuts text into the pieces BPE then works on separately
// (contractions, runs of letters / digits / other symbols with one optional leading space, and
// whitespace runs). Matches HF's `regex` package pattern with real Unicode classes via PCRE2.
#include <memory>
#include <string_view>
#include <vector>

namespace lmforge::tokenizer {

class PreTokenizer {
 public:
  PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // The successive matches in `text`, which must be valid UTF-8 (checked by the caller, so the
  // per-match UTF check can be skipped). Views point into `text`. Safe to call from many threads.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

}  // namespace lmforge::tokenizer
