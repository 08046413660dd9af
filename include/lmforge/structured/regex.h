#pragma once
// Regular expressions compiled to the byte-level grammar (a regular grammar: the matcher's states
// stay finitely many). The whole output must match (anchored at both ends; a leading ^ and a
// trailing $ are accepted and change nothing). Supported: literals (UTF-8), escapes (\n \t \xHH
// \uHHHH, \. etc.), classes [a-z0-9_] with ranges and ^ negation, \d \w \s \D \W \S, `.` (any
// character but newline), alternation |, groups ( ) and (?: ), and * + ? {m} {m,} {m,n} (a lazy `?`
// suffix is accepted: it does not change which whole strings match). Not supported (an error names
// it): backreferences, lookaround, anchors elsewhere, word boundaries, possessive quantifiers.
#include <string_view>

#include "lmforge/structured/grammar.h"

namespace lmforge::structured {

// Throws lmforge::Error "regex: <problem> at line 1, column C".
Grammar regex_to_grammar(std::string_view pattern);

}  // namespace lmforge::structured
