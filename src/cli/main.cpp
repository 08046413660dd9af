// lmforge <subcommand> ...: a thin CLI over the library. Every failure the user can cause ends as
// one line "error: ..." on stderr. Exit codes: 2 for usage errors (unknown subcommand or flag, a
// missing or malformed flag value: anything the command-line parser refuses), 1 for everything
// else (bad files, bad values found while running, interrupted training).
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "cli/usage.h"
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
  // Named explicitly so that --help reads "Usage: lmforge ..." wherever the binary lives.
  CLI::App app{"lmforge: GPT-2 / GPT-J text generation, identical to Hugging Face transformers", "lmforge"};
  app.require_subcommand(1);
  app.footer("Exit status: 0 on success, 2 for a usage error (unknown subcommand or flag, missing or malformed "
             "value), 1 for any other error. Errors are one line on stderr: `error: ...`.");
  app.set_version_flag("--version", std::string("lmforge 0.1.0 (OpenMP wait policy: ") +
                                        lmforge::openmp_wait_policy() + ")");
  std::vector<std::pair<CLI::App*, Command*>> subs;
  for (Command* c : registry()) {
    CLI::App* sub = app.add_subcommand(c->name, c->description);
    c->setup(*sub);
    add_shared_checks(*sub);
    subs.emplace_back(sub, c);
  }
  if (const std::string msg = check_subcommand(app, argc, argv); !msg.empty()) {
    std::cerr << "error: " << msg << "\n";
    return kExitUsage;
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
    std::cerr << "error: " << describe_parse_error(app, e) << "\n";
    return kExitUsage;
  }
  if (!pending_model_error().empty()) {
    std::cerr << "error: " << pending_model_error() << "\n";
    return kExitFailure;
  }
  try {
    for (auto& [sub, cmd] : subs)
      if (sub->parsed()) return cmd->run();
  } catch (const lmforge::Error& e) {
    std::cout.flush();
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "error: internal: " << e.what() << "\n";
    return kExitFailure;
  }
  return kExitFailure;
}
