#include "structured/quantifier.h"

#include <string>

namespace lmforge::structured {

std::optional<Quantifier> parse_quantifier(Scanner& in) {
  if (in.eat('*')) return Quantifier{0, -1};
  if (in.eat('+')) return Quantifier{1, -1};
  if (in.eat('?')) return Quantifier{0, 1};
  if (!in.eat('{')) return std::nullopt;
  Quantifier q{in.number(), 0};
  q.max = q.min;
  if (in.eat(',')) q.max = in.peek() == '}' ? -1 : in.number();
  in.expect('}', "to close the {m,n} repetition");
  if (q.max >= 0 && q.max < q.min) in.fail("repetition {" + std::to_string(q.min) + "," + std::to_string(q.max) + "} has max < min");
  if (q.min > kMaxRepeat || q.max > kMaxRepeat) in.fail("repetition bound over " + std::to_string(kMaxRepeat));
  return q;
}

}  // namespace lmforge::structured
