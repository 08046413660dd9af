#include "lmforge/train/openmp_env.h"

#include <unistd.h>

#include <cstdlib>

namespace lmforge {

void prefer_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // Only reached when the exec failed (no /proc, say): carry on, libgomp keeps its default.
}

const char* openmp_wait_policy() {
  const char* p = std::getenv("OMP_WAIT_POLICY");
  return p ? p : "default";
}

}  // namespace lmforge
