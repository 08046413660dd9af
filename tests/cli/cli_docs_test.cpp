// docs/CLI.md is the flag reference; it must say what the binary's --help says, so that it cannot
// drift. Each "## `lmforge X`" (or "### `lmforge X Y`") heading is followed by a ```text block that
// must equal `lmforge X --help`, and every subcommand --help lists has a section.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "common/run.h"

namespace lmforge {
namespace {

using test::run_cli;

// heading command ("" for plain lmforge, "generate", "eval rouge") -> fenced text.
std::map<std::string, std::string> documented_help() {
  std::ifstream in(std::string(LMFORGE_SOURCE_DIR) + "/docs/CLI.md");
  EXPECT_TRUE(in) << "docs/CLI.md is missing (scripts/cli_docs.sh writes it)";
  std::map<std::string, std::string> out;
  std::string line, current;
  bool in_block = false, have = false;
  const std::regex heading(R"(^#{2,3} `lmforge ?(.*)`$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (!in_block && std::regex_match(line, m, heading)) {
      current = m[1].str();
      have = true;
    } else if (have && !in_block && line == "```text") {
      in_block = true;
      out[current].clear();
    } else if (in_block && line == "```") {
      in_block = have = false;
    } else if (in_block) {
      out[current] += line + "\n";
    }
  }
  return out;
}

// Names listed under "Subcommands:" in a --help text.
std::vector<std::string> listed_subcommands(const std::string& help) {
  std::vector<std::string> names;
  std::istringstream in(help);
  std::string line;
  bool on = false;
  while (std::getline(in, line)) {
    if (line == "Subcommands:") on = true;
    else if (on && line.rfind("  ", 0) == 0 && line.size() > 2 && line[2] != ' ')
      names.push_back(line.substr(2, line.find(' ', 2) - 2));
    else if (on && line.empty()) on = false;
  }
  return names;
}

TEST(CliDocs, EverySubcommandsHelpIsInDocsCliMdVerbatim) {
  const auto docs = documented_help();
  const auto check = [&](const std::string& cmd) {
    const auto r = run_cli(cmd + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    auto it = docs.find(cmd);
    if (it == docs.end()) {
      ADD_FAILURE() << "docs/CLI.md has no section for `lmforge " << cmd << "`: run scripts/cli_docs.sh";
      return r.out;
    }
    EXPECT_EQ(it->second, r.out) << "docs/CLI.md is out of date for `lmforge " << cmd << "`: run scripts/cli_docs.sh";
    return r.out;
  };
  const std::string top = check("");
  const auto subs = listed_subcommands(top);
  EXPECT_GE(subs.size(), 9u) << top;
  size_t sections = 1;
  for (const auto& s : subs) {
    ++sections;
    for (const auto& inner : listed_subcommands(check(s))) {
      ++sections;
      check(s + " " + inner);
    }
  }
  EXPECT_EQ(docs.size(), sections) << "docs/CLI.md documents a subcommand the binary does not have";
}

}  // namespace
}  // namespace lmforge
