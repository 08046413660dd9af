#pragma once
// Helpers shared by the tasks data-layer tests.
#include <string>

#include "common/error_of.h"

namespace lmforge::tasks {

// The built-in templates shipped in examples/tasks/.
inline const std::string kExamples = std::string(LMFORGE_SOURCE_DIR) + "/examples/tasks/";

using test::error_of;

}  // namespace lmforge::tasks
