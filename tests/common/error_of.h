#pragma once
// The message of the lmforge::Error that f() throws, or "" when it throws none: for tests that
// check an error's wording.
#include <string>

#include "lmforge/error.h"

namespace lmforge::test {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace lmforge::test
