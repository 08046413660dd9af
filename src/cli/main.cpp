// lmforge <subcommand> ...: a thin CLI over the library. Every failure the user can cause ends as
// one line "error: ..." on stderr. Exit codes: 2 for usage errors (unknown subcommand or flag, a
// missing or malformed flag value: anything the command-line parser refuses), 1 for everything
// else (bad files, bad values found while running, interrupted training).
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

#include <unistd.h>

#include "cli/command.h"
#include "cli/usage.h"
#include "lmforge/dist/world.h"
#include "lmforge/error.h"
#include "lmforge/kernels/kernels.h"
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

namespace {

// One write per error line: mpirun forwards a rank's stderr in the chunks it was written in, and
// its abort banner (another rank exited non-zero) would otherwise land inside the line.
void print_error_line(const std::string& message) {
  const std::string line = "error: " + message + "\n";
  std::cerr.flush();
  if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
    // stderr is gone: nothing else can report it
  }
}

// Under mpirun every rank parses the same command line and meets the same usage errors: rank 0
// alone prints them, so the user reads one line, not one per rank.
int usage_error(const std::string& message) {
  if (lmforge::dist::launch_rank() == 0) print_error_line(message);
  return kExitUsage;
}

// A failed command. In a distributed job the rank ends every other rank too (they would wait for
// its results); before MPI starts the failure is the same on every rank, so rank 0 prints it.
int failure(const std::string& message) {
  lmforge::dist::abort_job(message, kExitFailure);  // returns only outside a distributed job
  std::cout.flush();
  if (lmforge::dist::launch_rank() == 0) print_error_line(message);
  return kExitFailure;
}

// The subcommands that split their rows across mpirun ranks (docs/SCALE_OUT.md). Any other, started
// N times by mpirun, would do the same work N times and write the same files at once.
bool shares_work(const std::string& name, const CLI::App& sub) {
  if (name == "synth" || name == "task" || name == "finetune" || name == "quantize") return true;
  if (name == "generate") return sub.get_option("--benchmark_mode")->count() == 0;  // a benchmark times one process
  return name == "eval" && sub.get_subcommand("perplexity")->parsed();
}

}  // namespace

}  // namespace lmforge::cli

int main(int argc, char** argv) {
  using namespace lmforge::cli;
  lmforge::prefer_passive_openmp_wait(argv);  // may re-exec this program; see openmp_env.h
  // Named explicitly so that --help reads "Usage: lmforge ..." wherever the binary lives.
  CLI::App app{"lmforge: GPT-2 / GPT-J text generation, identical to Hugging Face transformers", "lmforge"};
  app.require_subcommand(1);
  app.footer("Exit status: 0 on success, 2 for a usage error (unknown subcommand or flag, missing or malformed "
             "value), 1 for any other error. Errors are one line on stderr: `error: ...`.\n"
             "Environment: LMFORGE_ISA=portable|avx2|avx512 lowers the CPU kernel path (the best the CPU has by "
             "default; --version names the one in use).");
  app.set_version_flag("--version", std::string("lmforge 0.1.0 (kernels: ") + lmforge::kernels::isa_description() +
                                        "; OpenMP wait policy: " + lmforge::openmp_wait_policy() + ")");
  if (const std::string bad = lmforge::kernels::isa_env_error(); !bad.empty())
    return usage_error("LMFORGE_ISA=" + bad + ": expected portable, avx2 or avx512");
  std::vector<std::pair<CLI::App*, Command*>> subs;
  for (Command* c : registry()) {
    CLI::App* sub = app.add_subcommand(c->name, c->description);
    c->setup(*sub);
    add_shared_checks(*sub);
    subs.emplace_back(sub, c);
  }
  if (const std::string msg = check_subcommand(app, argc, argv); !msg.empty()) return usage_error(msg);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(describe_parse_error(app, e));
  }
  if (!pending_model_error().empty()) return failure(pending_model_error());
  try {
    for (auto& [sub, cmd] : subs)
      if (sub->parsed()) {
        if (lmforge::dist::launch_size() > 1 && !shares_work(cmd->name, *sub))
          return usage_error(cmd->name == "generate"
                                 ? "lmforge generate --benchmark_mode times one process; run it without mpirun"
                                 : "lmforge " + cmd->name + " does not split its work across mpirun ranks (finetune, "
                                   "synth, task, quantize, generate and eval perplexity do; docs/SCALE_OUT.md): run "
                                   "it without mpirun");
        const int rc = cmd->run();
        lmforge::dist::finalize();
        return rc;
      }
  } catch (const lmforge::Error& e) {
    return failure(e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    // The OS refused a path (too long, no permission, ...): what() names the call, the reason and
    // the path, which is the one line the user needs.
    return failure(e.what());
  } catch (const std::exception& e) {
    return failure(std::string("internal: ") + e.what());
  }
  return kExitFailure;
}
