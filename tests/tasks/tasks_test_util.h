#pragma once
// Helpers shared by the tasks data-layer tests.
#include <string>

#include "lmforge/error.h"

namespace lmforge::tasks {

// The built-in templates shipped in examples/tasks/.
inline const std::string kExamples = std::string(LMFORGE_SOURCE_DIR) + "/examples/tasks/";

// The message of the lmforge::Error that f() throws, or "" when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace lmforge::tasks
