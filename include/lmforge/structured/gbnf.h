#pragma once
// GBNF, llama.cpp's grammar format (docs/STRUCTURED.md has the full syntax):
//   root  ::= "{" ws pair ("," ws pair)* "}"     # comments run to the end of the line
//   pair  ::= [a-z]+ ":" ws [0-9]{1,3}
//   ws    ::= [ \t\n]*
// Rules are `name ::= alternatives`; elements are "literals", [classes] (ranges, ^ negation,
// escapes), `.` (any character), rule references and ( groups ), each optionally followed by
// * + ? {m} {m,} {m,n}. Newlines are not significant: a rule ends where the next `name ::=` starts.
// The grammar must define `root`; the whole output must match it.
#include <string_view>

#include "lmforge/structured/grammar.h"

namespace lmforge::structured {

// Throws lmforge::Error "grammar: <problem> at line L, column C" (or naming the rule).
Grammar parse_gbnf(std::string_view text);

}  // namespace lmforge::structured
