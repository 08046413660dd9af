#pragma once
// Runs the lmforge binary for CLI tests and captures what it printed.
#include <string>
#include <vector>

namespace lmforge::test {

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `LMFORGE_CLI <args>` through /bin/sh (args are pasted as written: quote them).
RunResult run_cli(const std::string& args);
// Runs any shell command line the same way (e.g. mpirun with the binary).
RunResult run_command(const std::string& command);

// Token ids as one quoted shell argument, e.g. "'1 2 3'".
std::string ids_arg(const std::vector<int>& ids);
int count_lines(const std::string& s);

}  // namespace lmforge::test
