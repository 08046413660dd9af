#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and runs one of them.
#   fuzz/run.sh TARGET SECONDS [extra libFuzzer flags]     e.g. fuzz/run.sh fuzz_pickle 60
#   fuzz/run.sh list                                       the targets
# Build folder: build-fuzz/ (or $LMFORGE_FUZZ_BUILD). The corpus grows in build-fuzz/corpus/TARGET,
# seeded from the test fixtures and from fuzz/regressions/TARGET (inputs that once crashed: they are
# replayed first) and fuzz/seeds/TARGET (hand-written inputs). A crash, leak, timeout (> 1 s per input) or out-of-memory (> 2 GB) fails the run
# (exit status non-zero) and leaves the input in build-fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(fuzz_pickle fuzz_zip fuzz_safetensors fuzz_torch_bin fuzz_config fuzz_tokenizer fuzz_tokenizer_files
  fuzz_generation_config fuzz_sharded_index fuzz_lora fuzz_csv fuzz_yaml fuzz_serve_request fuzz_http)
if [ "${1:-}" = list ]; then printf '%s\n' "${targets[@]}"; exit 0; fi
target=${1:?usage: fuzz/run.sh TARGET SECONDS (fuzz/run.sh list)}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS}
shift 2
[[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz/run.sh: unknown target '$target' (fuzz/run.sh list)" >&2; exit 2; }
command -v clang++ >/dev/null || { echo "fuzz/run.sh: needs clang++ (Debian clang) and libFuzzer (libclang-rt-14-dev)" >&2; exit 2; }

build=${LMFORGE_FUZZ_BUILD:-build-fuzz}
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DLMFORGE_FUZZ=ON -DLMFORGE_BUILD_TESTS=OFF -DLMFORGE_BUILD_BENCH=OFF -DLMFORGE_MPI=OFF >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target "$target" >/dev/null

corpus=$build/corpus/$target
artifacts=$build/artifacts/$target
mkdir -p "$corpus" "$artifacts"
models=tests/data/models
sep=$'\n#lmforge-fuzz-next-file#\n'  # fuzz/fuzz_util.h: several files in one input
seed() {  # copies fixture files into the corpus once
  [ -n "$(ls -A "$corpus")" ] && return 0
  [ -d "fuzz/seeds/$target" ] && cp fuzz/seeds/"$target"/* "$corpus"/
  case $target in
    fuzz_pickle)
      for m in "$models"/*/; do
        [ -f "$m/pytorch_model.bin" ] || continue
        unzip -p "$m/pytorch_model.bin" '*/data.pkl' > "$corpus/$(basename "$m").pkl" 2>/dev/null || true
      done ;;
    fuzz_zip | fuzz_torch_bin)
      for m in gpt2-bf16 gpt2-f16; do cp "$models/$m/pytorch_model.bin" "$corpus/$m.bin"; done ;;
    fuzz_safetensors)
      for m in gpt2-bf16 gpt2-f16; do cp "$models/$m/model.safetensors" "$corpus/$m.safetensors"; done ;;
    fuzz_config)
      for m in "$models"/*/; do cp "$m/config.json" "$corpus/$(basename "$m").json"; done ;;
    fuzz_tokenizer)
      i=0
      while IFS= read -r line && [ $i -lt 64 ]; do
        printf '%s' "$line" > "$corpus/case$i.txt"
        i=$((i + 1))
      done < tests/data/tokenizer/cases.jsonl ;;
    fuzz_generation_config)
      for m in "$models"/*/; do cp "$m/generation_config.json" "$corpus/$(basename "$m").json"; done ;;
    fuzz_sharded_index)
      cp "$models"/gpt2-sharded/*.index.json "$corpus"/ ;;
    fuzz_lora)
      for m in gpt2-tiny gptj-tiny; do
        a=tests/data/lora/$m/adapter
        { cat "$a/adapter_config.json"; printf '%s' "$sep"; cat "$a/adapter_model.safetensors"; } > "$corpus/$m"
      done ;;
  esac
}
seed
dict=()
case $target in
  fuzz_safetensors | fuzz_config | fuzz_generation_config | fuzz_sharded_index | fuzz_tokenizer_files | fuzz_lora | \
    fuzz_serve_request) dict=(-dict=fuzz/json.dict) ;;
  fuzz_pickle) dict=(-dict=fuzz/pickle.dict) ;;
  fuzz_http) dict=(-dict=fuzz/http.dict) ;;
esac
regressions=()
[ -d "fuzz/regressions/$target" ] && regressions=("fuzz/regressions/$target")
exec "$build/$target" "$corpus" "${regressions[@]}" "${dict[@]}" -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 \
  -max_len=131072 -print_final_stats=1 -artifact_prefix="$artifacts/" "$@"
