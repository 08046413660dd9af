// The CLI runs its OpenMP loops with the PASSIVE wait policy unless the user chose one.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "common/run.h"

namespace {

// Sets (or, with nullopt, unsets) OMP_WAIT_POLICY for the processes this test starts, and puts
// the test process's own value back afterwards.
class ScopedWaitPolicy {
 public:
  explicit ScopedWaitPolicy(const std::optional<std::string>& value) {
    if (const char* old = std::getenv("OMP_WAIT_POLICY")) old_ = old;
    if (value)
      ::setenv("OMP_WAIT_POLICY", value->c_str(), 1);
    else
      ::unsetenv("OMP_WAIT_POLICY");
  }
  ~ScopedWaitPolicy() {
    if (old_)
      ::setenv("OMP_WAIT_POLICY", old_->c_str(), 1);
    else
      ::unsetenv("OMP_WAIT_POLICY");
  }

 private:
  std::optional<std::string> old_;
};

TEST(OpenmpWaitPolicy, CliDefaultsToPassive) {
  ScopedWaitPolicy unset(std::nullopt);
  const auto r = lmforge::test::run_cli("--version");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("OpenMP wait policy: PASSIVE"), std::string::npos) << r.out;
}

TEST(OpenmpWaitPolicy, UsersChoiceIsKept) {
  ScopedWaitPolicy active(std::string("ACTIVE"));
  const auto r = lmforge::test::run_cli("--version");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("OpenMP wait policy: ACTIVE"), std::string::npos) << r.out;
}

TEST(OpenmpWaitPolicy, ArgumentsSurviveTheReexec) {
  ScopedWaitPolicy unset(std::nullopt);
  const auto r = lmforge::test::run_cli("generate --model /no/such/model-dir -p 'a b'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/no/such/model-dir"), std::string::npos) << r.err;
}

}  // namespace
