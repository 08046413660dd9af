// lmforge <subcommand> ...: a thin CLI over the library. Every failure the user can cause ends as
// one line "error: ..." on stderr and exit code 1 (2 for command-line syntax errors).
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "lmforge/error.h"
#include "lmforge/train/openmp_env.h"

namespace lmforge::cli {

Command::Command(std::string n, std::string d, std::function<void(CLI::App&)> s, std::function<int()> r)
    : name(std::move(n)), description(std::move(d)), setup(std::move(s)), run(std::move(r)) {
  registry().push_back(this);
}

std::vector<Command*>& registry() {
  static std::vector<Command*> commands;
  return commands;
}

}  // namespace lmforge::cli

int main(int argc, char** argv) {
  using namespace lmforge::cli;
  lmforge::prefer_passive_openmp_wait(argv);  // may re-exec this program; see openmp_env.h
  CLI::App app{"lmforge: GPT-2 / GPT-J text generation, identical to Hugging Face transformers"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("lmforge 0.1.0 (OpenMP wait policy: ") +
                                        lmforge::openmp_wait_policy() + ")");
  std::vector<std::pair<CLI::App*, Command*>> subs;
  for (Command* c : registry()) {
    CLI::App* sub = app.add_subcommand(c->name, c->description);
    c->setup(*sub);
    subs.emplace_back(sub, c);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  try {
    for (auto& [sub, cmd] : subs)
      if (sub->parsed()) return cmd->run();
  } catch (const lmforge::Error& e) {
    std::cout.flush();
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "error: internal: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
