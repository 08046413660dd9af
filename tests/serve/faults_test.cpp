// lmforge serve under faults: a SIGTERM while the models load, and slow clients (slow-loris) that
// must be cut off by the read timeout without holding up anyone else.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "common/run.h"
#include "serve/serve_process.h"

namespace lmforge {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
const std::string kModel = std::string(LMFORGE_TEST_DATA) + "/models/gpt2-tiny";

TEST(ServeFaults, SigtermWhileTheModelLoadsExitsAtOnce) {
  // config.json is a named pipe: the load blocks reading it while this test holds its write end
  // open without writing. The signal goes only once the server is known to be in that read (a
  // fixed sleep raced the start-up of a sanitizer build, whose signal mask was not set yet).
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("serve-fifo-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path fifo = dir / "config.json", err = dir / "stderr.txt";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(e, 2);
    execl(LMFORGE_CLI, LMFORGE_CLI, "serve", "--port", "0", "--model", dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Opening the write end without blocking succeeds once the server has the read end open.
  int writer = -1;
  for (int i = 0; i < 600 && writer < 0; ++i) {
    writer = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (writer < 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(writer, 0) << "the server never opened config.json";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // into its read()
  const auto start = Clock::now();
  kill(pid, SIGTERM);
  int status = -1;
  for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (seconds >= 10) {  // still loading: it waited for the load, which never ends while we hold the pipe
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  close(writer);
  std::ifstream in(err);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  EXPECT_LT(seconds, 10) << "the server waited for the load to end";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << ": " << text;
  EXPECT_NE(text.find("SIGTERM while loading the models"), std::string::npos) << text;
}

// A TCP connection to the server that sends `data` and then nothing.
int stalled_connection(int port, const std::string& data) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
  if (!data.empty() && write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) return -1;
  return fd;
}

// Seconds until the server closes `fd` (reads until EOF or error), at most `limit`.
double seconds_until_closed(int fd, double limit) {
  const auto start = Clock::now();
  timeval tv{static_cast<time_t>(limit), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(ServeFaults, SlowClientsAreCutOffAndOthersAreServed) {
  test::ServeProcess s({"--model", kModel, "--read_timeout", "1"});
  // Half a request line; headers without their end; a body shorter than its Content-Length.
  const std::string partial_body = json{{"prompt", "Hello"}, {"max_tokens", 4}}.dump();
  std::vector<int> slow = {
      stalled_connection(s.port(), "POST /v1/comp"),
      stalled_connection(s.port(), "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"),
      stalled_connection(s.port(), "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   "Content-Length: 500\r\n\r\n" + partial_body)};
  for (int fd : slow) ASSERT_GE(fd, 0);
  // Meanwhile a well-behaved client gets its answer.
  auto ok = s.post("/v1/completions", json{{"prompt", "Hello"}, {"max_tokens", 4}, {"temperature", 0}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  for (int fd : slow) EXPECT_LT(seconds_until_closed(fd, 15), 4) << "a stalled connection was kept open";
  auto after = s.post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}, {"temperature", 0}});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(ServeFaults, ClientLeavingANonStreamedRequestCancelsIt) {
  // One request at a time: the victim waits behind a long one, and its client hangs up meanwhile.
  test::ServeProcess s({"--model", kModel, "--max_batch", "1"});
  const double before = s.metric("lmforge_cancelled_requests_total");
  ASSERT_GE(before, 0);
  std::thread blocker([&] {
    auto r = s.post("/v1/completions", json{{"prompt", "Hello"}, {"max_tokens", 120}, {"n", 16}, {"logprobs", 5},
                                            {"temperature", 0.9}});
    EXPECT_TRUE(r && r->status == 200);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string body = json{{"prompt", "Hello"}, {"max_tokens", 100}, {"temperature", 0.9}}.dump();
  const int fd = stalled_connection(s.port(), "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                              "application/json\r\nContent-Length: " +
                                                  std::to_string(body.size()) + "\r\n\r\n" + body);
  ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  close(fd);
  blocker.join();
  for (int i = 0; i < 50 && s.metric("lmforge_cancelled_requests_total") == before; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(s.metric("lmforge_cancelled_requests_total"), before + 1) << "the abandoned request was not cancelled";
  auto after = s.post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}, {"temperature", 0}});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST(ServeFaults, RequestTimeoutEndsLongRequestsWith408) {
  test::ServeProcess s({"--model", kModel, "--request_timeout", "0.3"});
  // ~2 s of work for this model and machine: 16 rows of 120 tokens with log-probs.
  const json slow{{"prompt", "Hello"}, {"max_tokens", 120}, {"n", 16}, {"logprobs", 5}, {"temperature", 0.9}};
  auto r = s.post("/v1/completions", slow);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "request_timeout");
  EXPECT_NE(json::parse(r->body)["error"]["message"].get<std::string>().find("--request_timeout (0.3 s)"), std::string::npos);
  // Streamed: the error arrives as an event after whatever was sent.
  json streamed = slow;
  streamed["stream"] = true;
  auto st = s.post("/v1/completions", streamed);
  ASSERT_TRUE(st);
  EXPECT_NE(st->body.find("request_timeout"), std::string::npos);
  // A short one still fits.
  auto ok = s.post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}, {"temperature", 0}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

}  // namespace
}  // namespace lmforge
