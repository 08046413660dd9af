// Every example command in the README works: the ```sh blocks are run as written, with the
// demo's paths pointed at a small stand-in (a 48-row headline CSV and the test tokenizer; the
// README's own finetune command makes the model, with the demo's shape and context of 64). A block
// whose first line is "# needs: ..." names a model the test does not have and is skipped.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/run.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> readme_sh_blocks() {
  std::ifstream in(fs::path(LMFORGE_SOURCE_DIR) / "README.md");
  std::vector<std::string> blocks;
  std::string line, block;
  bool on = false;
  while (std::getline(in, line)) {
    if (!on && line == "```sh") on = true, block.clear();
    else if (on && line == "```") on = false, blocks.push_back(block);
    else if (on) block += line + "\n";
  }
  return blocks;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

TEST(CliReadme, EveryExampleCommandWorksOnTheDemoModel) {
  const fs::path dir = fs::temp_directory_path() / ("lmforge-readme-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "bin");
  fs::create_directories(dir / "out");
  fs::create_symlink(LMFORGE_CLI, dir / "bin" / "lmforge");
  {
    std::ofstream csv(dir / "news.csv");
    csv << "headline_text\n";
    const char* w[] = {"the city", "council", "police", "the school board", "farmers", "rain", "budget", "court"};
    for (int i = 0; i < 64; ++i) csv << w[i % 8] << " " << w[(i * 3 + 1) % 8] << " plan " << i << "\n";
  }
  std::vector<std::string> blocks = readme_sh_blocks();
  ASSERT_GE(blocks.size(), 8u);
  // The block that trains out/demo/model runs first: the others use its model.
  std::stable_partition(blocks.begin(), blocks.end(), [](const std::string& b) {
    return b.find("lmforge finetune") != std::string::npos && b.find("--save_path out/demo/model") != std::string::npos;
  });
  ASSERT_NE(blocks[0].find("lmforge finetune"), std::string::npos) << "the README has no finetune example writing out/demo/model";
  int ran = 0;
  for (std::string b : blocks) {
    if (b.rfind("# needs:", 0) == 0) continue;
    const std::string original = b;
    replace_all(b, "data/brown/brown_news.csv", (dir / "news.csv").string());
    replace_all(b, "data/gpt2-tokenizer", std::string(LMFORGE_TEST_DATA) + "/tokenizer");
    replace_all(b, "out/demo", (dir / "out").string());
    const fs::path script = dir / "block.sh";
    std::ofstream(script) << "set -e\ncd '" << LMFORGE_SOURCE_DIR << "'\nexport PATH='" << (dir / "bin").string()
                          << "':$PATH\n" << b;
    const std::string cmd = "bash '" + script.string() + "' </dev/null > '" + (dir / "log").string() + "' 2>&1";
    const int status = std::system(cmd.c_str());
    std::ifstream log(dir / "log");
    std::stringstream text;
    text << log.rdbuf();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "README example failed:\n" << original << "\n" << text.str();
    ++ran;
  }
  EXPECT_GE(ran, 7);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lmforge
