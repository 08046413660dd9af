#pragma once
// The OpenMP wait policy of the training step's parallel loops (and of OpenBLAS's OpenMP build).
//
// libgomp's default lets idle threads spin for a while at every barrier. A training step has
// hundreds of short parallel regions, so on a machine where other processes also want the cores
// the spinning threads burn the time slices the working threads need: measured 15-28 % of the
// idle-machine speed under load, against 1.5-1.8x that with OMP_WAIT_POLICY=PASSIVE, and no
// measurable cost of PASSIVE on an idle machine (docs/PERFORMANCE.md). libgomp reads the variable
// only once, when it is loaded, so a process that wants PASSIVE must set it and exec itself again.

namespace lmforge {

// When OMP_WAIT_POLICY is unset: sets it to PASSIVE and re-executes this program (/proc/self/exe)
// with the same arguments; does not return then. A user's own OMP_WAIT_POLICY is left alone, and
// if the exec fails the program simply goes on with libgomp's default.
void prefer_passive_openmp_wait(char** argv);

// The policy this process runs under: the value of OMP_WAIT_POLICY, or "default".
const char* openmp_wait_policy();

}  // namespace lmforge
