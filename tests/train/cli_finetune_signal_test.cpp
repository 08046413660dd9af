// Ctrl-C safe training, through the real binary and a real signal: SIGINT stops `lmforge finetune`
// after the current step with a resumable checkpoint, a message and exit code 1; the printed
// resume command finishes the run with exactly the weights and losses of an uninterrupted one.
// The handler itself: the first signal is only recorded, a second one kills at once.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "lmforge/train/train_state.h"
#include "lmforge/train/trainer.h"
#include "train/news_csv.h"

extern char** environ;

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Starts argv[0] with stdout/stderr into files, SIGINT/SIGTERM at their defaults and unblocked
// (whatever the test runner inherited), and returns its pid.
pid_t spawn(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, none;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return rc == 0 ? pid : -1;
}

// waitpid with a deadline; a child still running then is killed and reported as -1.
int wait_status(pid_t pid, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(2ms);
  }
  return status;
}

// Runs a shell command line (as a user would paste it) and returns its exit code.
int run_shell(const std::string& line, const fs::path& dir) {
  const pid_t pid = spawn({"/bin/sh", "-c", line}, dir / "sh.out", dir / "sh.err");
  const int status = wait_status(pid, 300s);
  return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::map<int64_t, double> train_losses(const fs::path& metrics) {
  std::map<int64_t, double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

class CliFinetuneSignal : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_cli_finetune_signal_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    csv_ = test::write_news_csv(dir_, 200);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A 1-layer, 16-wide model (GPT-2's 50257-token head): a step takes 15-40 ms on a busy 2-core
  // machine, so kMaxSteps leaves the signal, sent after step 1, seconds to arrive.
  std::vector<std::string> finetune_args(const fs::path& save) const {
    return {LMFORGE_CLI, "finetune", "--init", "random", "--tokenizer", (test::data_dir() / "tokenizer").string(),
            "--n_layer", "1", "--n_embd", "16", "--n_head", "2", "--n_positions", "32", "--data_path", csv_.string(),
            "--save_path", save.string(), "--max_rows", "200", "--lr", "0.02", "--max_steps",
            std::to_string(kMaxSteps), "--logging_steps", "1", "--save_steps", "0", "--threads", "1"};
  }
  static constexpr int kMaxSteps = 150;
  fs::path dir_, csv_;
};

// Polls until metrics.jsonl has a record (training has started) or the child has ended.
bool wait_for_training(const fs::path& metrics, pid_t pid) {
  for (int i = 0; i < 30000; ++i) {
    std::error_code ec;
    const auto size = fs::file_size(metrics, ec);
    if (!ec && size > 0) return true;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) != 0) return false;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

TEST_F(CliFinetuneSignal, CtrlCSavesAResumableCheckpointAndResumeMatchesAnUninterruptedRun) {
  const fs::path save = dir_ / "out";
  const pid_t pid = spawn(finetune_args(save), dir_ / "run.out", dir_ / "run.err");
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for_training(save / "metrics.jsonl", pid)) << read_text(dir_ / "run.err");
  ASSERT_EQ(kill(pid, SIGINT), 0);
  const int status = wait_status(pid, 120s);
  const std::string err = read_text(dir_ / "run.err");
  ASSERT_TRUE(status >= 0 && WIFEXITED(status)) << "did not exit normally: " << err;
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;

  // "interrupted after step N of 150; resumable checkpoint: <save>/checkpoint-N"
  const auto ck = latest_checkpoint(save);
  ASSERT_TRUE(ck) << err;
  const std::string name = ck->filename().string();
  const int64_t step = std::stoll(name.substr(name.find('-') + 1));
  EXPECT_LT(step, kMaxSteps) << "the run ended before the signal arrived";
  EXPECT_NE(err.find("(SIGINT): saving a resumable checkpoint; press Ctrl-C again to abort at once"), std::string::npos)
      << err;
  EXPECT_NE(err.find("interrupted after step " + std::to_string(step) + " of " + std::to_string(kMaxSteps) +
                     "; resumable checkpoint: " + ck->string() + "\n"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("error:"), std::string::npos) << err;
  for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "vocab.json"})
    EXPECT_TRUE(fs::exists(*ck / f)) << f;
  EXPECT_EQ(list_checkpoints(save).size(), 1u);
  EXPECT_FALSE(fs::exists(save / "model.safetensors"));  // no final model from an unfinished run
  EXPECT_TRUE(fs::exists(save / "lmforge_output.json"));

  // The printed command, pasted into a shell, finishes the run.
  const std::string tag = "to resume: ";
  const size_t at = err.find(tag);
  ASSERT_NE(at, std::string::npos) << err;
  const std::string resume = err.substr(at + tag.size(), err.find('\n', at) - at - tag.size());
  EXPECT_NE(resume.find(" --resume_from_checkpoint latest"), std::string::npos) << resume;
  ASSERT_EQ(run_shell(resume, dir_), 0) << resume << "\n" << read_text(dir_ / "sh.err");
  EXPECT_NE(read_text(dir_ / "sh.err").find("resumed from " + ck->string() + " at step " + std::to_string(step)),
            std::string::npos);

  // The same run without the interruption.
  std::string plain;
  for (const auto& a : finetune_args(dir_ / "plain")) plain += "'" + a + "' ";
  ASSERT_EQ(run_shell(plain, dir_), 0) << read_text(dir_ / "sh.err");
  EXPECT_EQ(read_text(save / "model.safetensors"), read_text(dir_ / "plain" / "model.safetensors"));
  const auto got = train_losses(save / "metrics.jsonl"), want = train_losses(dir_ / "plain" / "metrics.jsonl");
  EXPECT_EQ(got.size(), static_cast<size_t>(kMaxSteps));
  EXPECT_EQ(got, want);
}

TEST(StopSignal, FirstSignalIsOnlyRecordedAndTheHandlersAreRestored) {
  struct sigaction before{};
  sigaction(SIGTERM, nullptr, &before);
  {
    StopSignalHandlers handlers;
    EXPECT_EQ(stop_signal(), 0);
    std::raise(SIGTERM);
    EXPECT_EQ(stop_signal(), SIGTERM);  // and this process still runs
  }
  EXPECT_EQ(stop_signal(), 0);  // so a later finetune() in this process is not stopped by it
  struct sigaction after{};
  sigaction(SIGTERM, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

TEST(StopSignal, AnIgnoredSignalStaysIgnored) {
  struct sigaction ignore{}, old{}, now{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ignore, &old);
  {
    StopSignalHandlers handlers;
    sigaction(SIGINT, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_IGN);
  }
  sigaction(SIGINT, &old, nullptr);
}

TEST(StopSignalDeathTest, SecondCtrlCKillsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        StopSignalHandlers handlers;
        std::raise(SIGINT);
        if (stop_signal() != SIGINT) std::_Exit(3);
        std::raise(SIGINT);
        std::_Exit(4);  // not reached: the second SIGINT has its default action
      },
      ::testing::KilledBySignal(SIGINT), "");
  // SIGINT then SIGTERM: the second signal of any kind ends the process.
  EXPECT_EXIT(
      {
        StopSignalHandlers handlers;
        std::raise(SIGINT);
        std::raise(SIGTERM);
        std::_Exit(4);
      },
      ::testing::KilledBySignal(SIGTERM), "");
}

}  // namespace
}  // namespace lmforge
