#include "common/run.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace lmforge::test {

RunResult run_cli(const std::string& args) {
  // Standard input is /dev/null unless `args` redirects it (a later "< file" wins): generate reads
  // prompts from a stdin that is not a terminal, and the test runner's may be a pipe left open.
  return run_command(std::string(LMFORGE_CLI) + " </dev/null " + args);
}

RunResult run_command(const std::string& command) {
  char tmpl[] = "/tmp/lmforge-cli-err-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd >= 0) close(fd);
  const std::string cmd = command + " 2>" + tmpl;
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(tmpl);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  std::remove(tmpl);
  return r;
}

std::string ids_arg(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return '\'' + s + '\'';
}

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace lmforge::test
