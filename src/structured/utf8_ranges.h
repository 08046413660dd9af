#pragma once
// Code point ranges as UTF-8 byte-range sequences, so a character class can be matched byte by
// byte: [U+0080-U+07FF] is the one sequence [C2-DF][80-BF]. The split is the usual one of byte-level
// regex engines: first by encoded length, then at the boundaries where a continuation byte would not
// cover its full 80-BF range.
#include <cstdint>
#include <utility>
#include <vector>

#include "lmforge/structured/grammar.h"

namespace lmforge::structured {

using ByteRange = std::pair<uint8_t, uint8_t>;  // inclusive
using ByteRangeSequence = std::vector<ByteRange>;

// Sorted, merged ranges with the surrogates (D800-DFFF) and anything past U+10FFFF removed.
std::vector<CodepointRange> normalize(std::vector<CodepointRange> ranges);

// The byte-range sequences whose concatenations are exactly the UTF-8 encodings of [lo, hi]
// (lo <= hi, no surrogates inside).
std::vector<ByteRangeSequence> utf8_sequences(char32_t lo, char32_t hi);

// UTF-8 encoding of one code point.
std::string encode_utf8(char32_t cp);

}  // namespace lmforge::structured
