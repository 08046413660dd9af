#pragma once
// The postfix repetition operators GBNF and regular expressions share: * + ? {m} {m,} {m,n}.
#include <optional>

#include "structured/scanner.h"

namespace lmforge::structured {

struct Quantifier {
  int min, max;  // max < 0: unbounded
};

// Consumes a quantifier at the cursor, if there is one. Bounds past kMaxRepeat are refused: each
// bounded repetition becomes that many grammar elements.
inline constexpr int kMaxRepeat = 1000;
std::optional<Quantifier> parse_quantifier(Scanner& in);

}  // namespace lmforge::structured
