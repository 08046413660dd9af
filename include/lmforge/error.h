#pragma once
// One error type for everything a user can get wrong. The message is a single line that names
// the file, key or flag at fault; the CLI prints it as "error: <message>" and exits non-zero.
#include <stdexcept>
#include <string>

namespace lmforge {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lmforge
