#pragma once
// Each subcommand lives in its own file and registers itself here:
//   static lmforge::cli::Command cmd{"tokenize", "Encode text or decode ids", setup, run};
// `setup` adds the options to the subcommand's CLI::App; `run` executes after parsing and returns the
// exit code. Errors are thrown as lmforge::Error and printed by main() as one line.
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace lmforge::cli {

struct Command {
  Command(std::string name, std::string description, std::function<void(CLI::App&)> setup,
          std::function<int()> run);
  std::string name, description;
  std::function<void(CLI::App&)> setup;
  std::function<int()> run;
};

std::vector<Command*>& registry();

}  // namespace lmforge::cli
