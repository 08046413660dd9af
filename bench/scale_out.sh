#!/usr/bin/env bash
# Scale-out on one machine (docs/SCALE_OUT.md, "Measured"): 2 mpirun ranks x 1 thread against one
# process x 2 threads, interleaved round by round, for
#   - finetune of the GPT-2 124M shape (random weights written by make_random_checkpoint), the
#     same global batch both ways (4 rows x 2 micro-batches), tokens/s and, under mpirun, the
#     all-reduce's share of the training time (finetune's own closing line);
#   - synth (sampling, batches of 4) of the same model: wall time;
# then bench_allreduce over shared memory (OpenMPI's default on one host) and TCP loopback.
#
#   bench/scale_out.sh            # BUILD=build WORK=/tmp/lmforge-scale-out STEPS=6 ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
W=${WORK:-/tmp/lmforge-scale-out}
STEPS=${STEPS:-6}
ROUNDS=${ROUNDS:-2}
CSV=data/brown/brown_news.csv
[ -f "$CSV" ] || { echo "error: $CSV missing: run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$W"
[ -f "$W/gpt2/config.json" ] || "$B/make_random_checkpoint" --preset gpt2 --dtype float32 --out "$W/gpt2" >/dev/null
MPI="mpirun --oversubscribe --allow-run-as-root --bind-to none -np 2"
LF="$B/lmforge"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores; $($LF --version)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

finetune() {  # $1 = label, $2 = launcher prefix, $3 = accumulation, $4 = threads
  rm -rf "$W/ft"
  local line
  line=$($2 "$LF" finetune --model "$W/gpt2" --data_path "$CSV" --save_path "$W/ft" --max_steps "$STEPS" \
    --per_device_train_batch_size 4 --gradient_accumulation_steps "$3" --threads "$4" --logging_steps 1 \
    --save_steps 0 --evaluation_strategy no --validation_fraction 0.01 --seed 1 </dev/null 2>&1 |
    grep -E "training time|data parallel over" | tr '\n' ' ')
  echo "finetune $1: $line"
}

synth() {  # $1 = label, $2 = launcher prefix, $3 = threads
  local t0 t1
  t0=$(date +%s.%N)
  $2 "$LF" synth --model "$W/gpt2" --prompt_file examples/prompts.csv --num_samples 16 --batch_size 4 \
    --max_length_buffer 24 --seed 1 --threads "$3" --format jsonl --output "$W/synth.jsonl" \
    --overwrite_output_dir </dev/null >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "synth $1: $(echo "$t1 - $t0" | bc) s wall"
}

for r in $(seq "$ROUNDS"); do
  echo "-- round $r"
  finetune "1 process x 2 threads" "" 2 2
  finetune "2 ranks x 1 thread" "$MPI" 1 1
  synth "1 process x 2 threads" "" 2
  synth "2 ranks x 1 thread" "$MPI" 1
done
echo "-- all-reduce, shared memory (vader)"
$MPI "$B/bench_allreduce" --max_mb 512
echo "-- all-reduce, TCP over loopback"
$MPI --mca btl self,tcp --mca btl_tcp_if_include lo "$B/bench_allreduce" --max_mb 512
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
