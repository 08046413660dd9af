#!/usr/bin/env bash
# The CI smoke run (scripts/test.sh): every fuzz target for SECONDS on its seed corpus, one line each;
# any crash, leak, timeout (> 1 s per input) or out-of-memory (> 2 GB) fails it with the end of that
# target's log. Builds in $LMFORGE_FUZZ_BUILD (default build-fuzz) as fuzz/run.sh does.
#   fuzz/smoke.sh SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: fuzz/smoke.sh SECONDS}
build=${LMFORGE_FUZZ_BUILD:-build-fuzz}
logs=$build/fuzz-logs
mkdir -p "$logs"
failed=0
for target in $(fuzz/run.sh list); do
  log=$logs/$target.txt
  if fuzz/run.sh "$target" "$seconds" > "$log" 2>&1; then
    # libFuzzer's final stats: "stat::number_of_executed_units: N"; coverage from its last status line.
    execs=$(sed -n 's/^stat::number_of_executed_units: //p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    echo "fuzz smoke: $target: ${execs:-?} executions, coverage ${cov:-?}, no findings"
  else
    echo "fuzz smoke: $target FAILED (log: $log); its end:" >&2
    tail -40 "$log" >&2
    failed=1
  fi
done
exit $failed
