#pragma once
// Runs `lmforge serve ... --port 0` as a child process for the tests: reads its one listening line
// for the port, talks to it with httplib's client, and stops it with SIGTERM.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmforge::test {

// The lmforge binary the tests built (bench/bench_serve.cpp, which shares this class, passes its own).
inline std::string default_lmforge_binary() {
#ifdef LMFORGE_CLI
  return LMFORGE_CLI;
#else
  return "lmforge";
#endif
}

class ServeProcess {
 public:
  // `args` after `serve --port 0`; one compute thread unless they say --threads.
  explicit ServeProcess(const std::vector<std::string>& args, const std::string& binary = default_lmforge_binary()) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      std::vector<std::string> all{binary, "serve", "--port", "0"};
      if (std::find(args.begin(), args.end(), "--threads") == args.end()) all.insert(all.end(), {"--threads", "1"});
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
    char line[512] = {0};
    if (!fgets(line, sizeof line, out_)) throw std::runtime_error("lmforge serve printed no listening line");
    line_ = line;
    const std::string marker = "lmforge serve: listening on http://127.0.0.1:";
    if (line_.rfind(marker, 0) != 0) throw std::runtime_error("unexpected first line: " + line_);
    port_ = std::stoi(line_.substr(marker.size()));
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_) fclose(out_);
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& line() const { return line_; }
  std::unique_ptr<httplib::Client> client(const std::string& key = "") const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(60, 0);
    if (!key.empty()) c->set_bearer_token_auth(key.c_str());
    return c;
  }
  // A sample's value in GET /metrics (name without labels), or -1 when it is not there.
  double metric(const std::string& name, const std::string& key = "") const {
    auto r = client(key)->Get("/metrics");
    if (!r) return -1;
    const size_t at = r->body.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stod(r->body.substr(at + name.size() + 2));
  }
  // POST `body` as JSON to `path`.
  httplib::Result post(const std::string& path, const nlohmann::json& body, const std::string& key = "") const {
    return client(key)->Post(path.c_str(), body.dump(), "application/json");
  }
  // SIGTERM, then the exit status (-1 when it did not exit normally).
  int terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::string line_;
  int port_ = 0;
  bool exited_ = false;
};

}  // namespace lmforge::test
