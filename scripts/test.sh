#!/usr/bin/env bash
# Sets up a fresh machine, builds, and runs every test twice: a Release build (GCC), then a clang build
# under AddressSanitizer + UndefinedBehaviorSanitizer, which also runs every fuzz target for 10 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

# The sanitizer build: clang with AddressSanitizer + UndefinedBehaviorSanitizer and libFuzzer's coverage
# instrumentation (LMFORGE_FUZZ=ON), so one build runs every test and then every fuzz target.
# -O1 -g1: half the compile time of RelWithDebInfo's -O2 -g under the sanitizers, line numbers kept for
# the reports.
CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DLMFORGE_FUZZ=ON -DLMFORGE_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
# -LE mpi: LeakSanitizer reports the memory OpenMPI itself holds until exit (not ours) in an MPI run; the
# Release run above covers them, and the mpi-free code paths (world of one) run here.
# -LE lower_isa_rerun: the bf16 training suites again at lower ISA levels (4+ minutes under the
# sanitizers); the Release run covers them, and `train` runs them here at the machine's level.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE "mpi|lower_isa_rerun"
# Every parser's fuzz target for a short fixed time on its seed corpus and regression inputs
# (fuzz/README.md; docs/RELIABILITY.md has the long runs).
LMFORGE_FUZZ_BUILD=build-asan fuzz/smoke.sh 10
echo "all tests passed (release, asan+ubsan, fuzz smoke)"
