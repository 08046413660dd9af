// lmforge serve under faults: a SIGTERM while the models load, and slow clients (slow-loris) that
// must be cut off by the read timeout without holding up anyone else.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
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
  // config.json is a named pipe nobody writes: loading blocks on it until the process ends.
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("serve-fifo-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ASSERT_EQ(mkfifo((dir / "config.json").c_str(), 0600), 0);
  const auto start = Clock::now();
  // A server that ignored the signal is killed after 15 s (exit 137), so the test cannot hang.
  const auto r = test::run_command("(" + std::string(LMFORGE_CLI) + " serve --port 0 --model " + dir.string() +
                                   " & pid=$!; sleep 1; kill -TERM $pid; (sleep 15; kill -KILL $pid) >/dev/null 2>&1 & "
                                   "wait $pid)");
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::filesystem::remove_all(dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("SIGTERM while loading the models"), std::string::npos) << r.err;
  EXPECT_LT(seconds, 10) << "the server waited for the load to end";
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
