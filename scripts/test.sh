#!/usr/bin/env bash
# Sets up a fresh machine, builds, and runs every test twice: a Release build, then a build under
# AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMFORGE_SANITIZE=ON -DLMFORGE_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
# -LE mpi: LeakSanitizer reports the memory OpenMPI itself holds until exit (not ours) in an MPI run; the
# Release run above covers them, and the mpi-free code paths (world of one) run here.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE mpi
echo "all tests passed (release and asan+ubsan)"
