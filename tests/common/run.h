#pragma once
// Runs the lmforge binary for CLI tests and captures what it printed.
#include <string>

namespace lmforge::test {

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `LMFORGE_CLI <args>` through /bin/sh (args are pasted as written: quote them).
RunResult run_cli(const std::string& args);

}  // namespace lmforge::test
