#include "structured/utf8_ranges.h"

#include <algorithm>
#include <string>

#include "tokenizer/utf8.h"

namespace lmforge::structured {

namespace {

constexpr char32_t kMaxCodepoint = 0x10FFFF;
constexpr char32_t kSurrogateLo = 0xD800, kSurrogateHi = 0xDFFF;

int encoded_length(char32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

void split(char32_t lo, char32_t hi, std::vector<ByteRangeSequence>& out) {
  // Different encoded lengths never share a sequence.
  for (char32_t edge : {char32_t{0x7F}, char32_t{0x7FF}, char32_t{0xFFFF}}) {
    if (lo <= edge && hi > edge) {
      split(lo, edge, out);
      split(edge + 1, hi, out);
      return;
    }
  }
  const int n = encoded_length(lo);
  if (n == 1) {
    out.push_back({{static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)}});
    return;
  }
  // A range is one sequence of byte ranges only when each trailing 6-bit group spans 0..63 wherever
  // the leading bits differ; split where it does not.
  for (int i = 1; i < n; ++i) {
    const char32_t m = (char32_t{1} << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        split(lo, lo | m, out);
        split((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        split(lo, (hi & ~m) - 1, out);
        split(hi & ~m, hi, out);
        return;
      }
    }
  }
  const std::string a = encode_utf8(lo), b = encode_utf8(hi);
  ByteRangeSequence seq;
  for (int i = 0; i < n; ++i) seq.emplace_back(static_cast<uint8_t>(a[i]), static_cast<uint8_t>(b[i]));
  out.push_back(std::move(seq));
}

}  // namespace

std::string encode_utf8(char32_t cp) {
  std::string s;
  tokenizer::append_utf8(s, cp);
  return s;
}

std::vector<CodepointRange> normalize(std::vector<CodepointRange> ranges) {
  std::vector<CodepointRange> cut;
  for (auto r : ranges) {
    if (r.lo > r.hi || r.lo > kMaxCodepoint) continue;
    r.hi = std::min(r.hi, kMaxCodepoint);
    if (r.lo < kSurrogateLo && r.hi > kSurrogateHi) {  // straddles the surrogates: two pieces
      cut.push_back({r.lo, kSurrogateLo - 1});
      cut.push_back({kSurrogateHi + 1, r.hi});
      continue;
    }
    if (r.lo >= kSurrogateLo && r.lo <= kSurrogateHi) r.lo = kSurrogateHi + 1;
    if (r.hi >= kSurrogateLo && r.hi <= kSurrogateHi) r.hi = kSurrogateLo - 1;
    if (r.lo <= r.hi) cut.push_back(r);
  }
  std::sort(cut.begin(), cut.end(), [](auto a, auto b) { return a.lo < b.lo; });
  std::vector<CodepointRange> merged;
  for (auto r : cut) {
    if (!merged.empty() && r.lo <= merged.back().hi + 1) merged.back().hi = std::max(merged.back().hi, r.hi);
    else merged.push_back(r);
  }
  return merged;
}

std::vector<CodepointRange> complement(std::vector<CodepointRange> ranges) {
  std::vector<CodepointRange> out;
  char32_t next = 0;
  for (auto r : normalize(std::move(ranges))) {
    if (r.lo > next) out.push_back({next, r.lo - 1});
    next = r.hi + 1;
  }
  if (next <= kMaxCodepoint) out.push_back({next, kMaxCodepoint});
  return normalize(out);
}

std::vector<ByteRangeSequence> utf8_sequences(char32_t lo, char32_t hi) {
  std::vector<ByteRangeSequence> out;
  split(lo, hi, out);
  return out;
}

}  // namespace lmforge::structured
