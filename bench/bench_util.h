#pragma once
// Small helpers for the benchmarks in bench/ (header-only: every bench/*.cpp is its own program).
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lmforge/error.h"

namespace lmforge::bench {

// The machine's 1, 5 and 15-minute load averages, as /proc/loadavg gives them.
inline std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// "a,b,,c" -> {"a", "b", "c"}: a flag's comma-separated list.
inline std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');)
    if (!x.empty()) v.push_back(x);
  return v;
}

// Reads `--flag value` and bare `--flag` arguments in order:
//   for (FlagReader f(argc, argv); f.next();) if (f.is("--reps")) reps = f.integer(); else ...
class FlagReader {
 public:
  FlagReader(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() { return ++i_ < argc_; }
  bool is(const char* name) const { return flag() == name; }
  std::string flag() const { return argv_[i_]; }
  std::string value() {
    if (i_ + 1 >= argc_) throw Error(flag() + " needs a value");
    return argv_[++i_];
  }
  int integer() {
    const std::string flag_name = flag(), v = value();
    return to_int(flag_name, v);
  }
  // `v` as an int, else one error naming the flag.
  static int to_int(const std::string& flag_name, const std::string& v) {
    size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size()) throw Error(flag_name + ": expected an integer, got '" + v + "'");
    return n;
  }

 private:
  int argc_, i_ = 0;
  char** argv_;
};

}  // namespace lmforge::bench
