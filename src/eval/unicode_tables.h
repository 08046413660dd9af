#pragma once
// Generated Unicode tables (unicode_tables.cpp, from Python 3.11's unicodedata = Unicode 14.0.0,
// the Python the reference metrics ran under). Ranges are sorted and disjoint.
#include <cstddef>
#include <cstdint>

namespace lmforge::eval::unicode {

struct CodeRange {
  char32_t first, last;  // inclusive
};
struct LowerMapping {
  char32_t from, to;
};

extern const CodeRange kPunctuation[];    // general category P*
extern const size_t kPunctuationSize;
extern const CodeRange kSymbol[];         // S*
extern const size_t kSymbolSize;
extern const CodeRange kNumber[];         // N*
extern const size_t kNumberSize;
extern const CodeRange kCased[];          // Ll/Lu/Lt or has a case mapping (final-sigma rule)
extern const size_t kCasedSize;
extern const CodeRange kCaseIgnorable[];  // Mn/Me/Cf/Lm/Sk or Word_Break MidLetter/MidNumLet/Single_Quote
extern const size_t kCaseIgnorableSize;
extern const LowerMapping kLower[];       // str.lower() one-to-one mappings, sorted by `from`
extern const size_t kLowerSize;

}  // namespace lmforge::eval::unicode
