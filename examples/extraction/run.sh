#!/usr/bin/env bash
# Seed 004's photo-metadata extraction task end to end, offline, in about 27 minutes on 2 cores:
# the seed fine-tunes GPT-J-6B with run_clm.py on train.csv/val.csv, then samples the answer to
# `bos + " " + prompt` and reads description, title, agency, photographer and date out of it. Here
# the same steps run on the synthetic data set of make_dataset.mjs with a small GPT-J-architecture
# model trained from scratch (see examples/extraction/README.md for the design and measured results):
#   1. the data: train.csv and validation.csv (seed SEED), and unpaired pretraining text from another
#      seed (prompts of some records and answers of others, never a prompt with its answer);
#   2. a random GPT-J (`lmforge init --preset gpt-j-6b`, GPT-2's tokenizer from tests/data/tokenizer);
#   3. full fine-tuning of it on train.csv (run_clm.py's interface, one record per sequence with eos);
#   4. a base for LoRA: the random GPT-J pretrained on the unpaired text (it knows both sides of the
#      format, not the mapping), then a LoRA adapter trained on train.csv on top of it;
#   5. `lmforge merge` of base + adapter;
#   6. for every model (random init, full fine-tune, LoRA base, LoRA unmerged via --adapter, LoRA
#      merged): `generate --fields` on every validation prompt, greedy and with the seed's sampling,
#      scored with `eval fields`; the merged model's greedy answers must equal the unmerged ones;
#   7. the table: per-field and all-fields exact match, training time and final validation loss,
#      printed and written to $OUT/results.md.
# Environment:
#   LMFORGE=path   a built lmforge binary (default: build build/lmforge, only the CLI)
#   OUT=dir        output folder (default out/extraction, git-ignored); this script's earlier
#                  outputs there are deleted first
#   SEED=N         data seed (default 1); the pretraining text uses SEED+1
#   FULL_STEPS, BASE_STEPS, LORA_STEPS   optimizer steps of the three trainings (defaults below)
set -euo pipefail
if [ -n "${LMFORGE:-}" ]; then  # a path (relative to the caller's directory) or a command on PATH
  lmforge=$(command -v "$LMFORGE") || { echo "error: LMFORGE=$LMFORGE: not found" >&2; exit 1; }
  lmforge=$(realpath "$lmforge")
fi
cd "$(dirname "$0")/../.."
if [ -z "${LMFORGE:-}" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" --target lmforge_cli
  lmforge=build/lmforge
fi
out=${OUT:-out/extraction}
seed=${SEED:-1}
full_steps=${FULL_STEPS:-5000}
base_steps=${BASE_STEPS:-400}
lora_steps=${LORA_STEPS:-5000}
data=$out/data
res=$out/results
tokenizer=tests/data/tokenizer   # GPT-2's vocab.json + merges.txt (the same bytes as data/gpt2-tokenizer)
# The seed's inference: do_sample with temperature and num_return_sequences (values not given in
# the seed: 0.9 and 3 here), HF's defaults otherwise (top_k 50, top_p 1); max_new_tokens 80 holds
# the longest answer (65 tokens) and its eos.
sampling=(--do_sample --temperature 0.9 --num_return_sequences 3 --seed 1)
max_new=80
rm -rf $data $res $out/{init,full,base,lora,lora-merged,eval-init,eval-base,results.md}
mkdir -p $data $res
: > $res/timings.tsv
start=$SECONDS
step() { echo; echo "== $1  [$(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s]"; }
timed() {  # timed NAME COMMAND...: run, and record its wall time in results/timings.tsv
  local name=$1 t0=$SECONDS; shift
  "$@"
  printf '%s\t%s\n' "$name" $((SECONDS - t0)) >> $res/timings.tsv
}

# CSV reading for the small node steps below (RFC 4180: quoted fields, "" inside quotes).
csv_js='
const fs = require("fs");
function readCsv(file) {
  const s = fs.readFileSync(file, "utf8"), rows = [];
  let row = [], f = "", q = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) { if (c !== "\"") f += c; else if (s[i + 1] === "\"") { f += "\""; i++; } else q = false; }
    else if (c === "\"") q = true;
    else if (c === ",") { row.push(f); f = ""; }
    else if (c === "\n") { row.push(f); rows.push(row); row = []; f = ""; }
    else if (c !== "\r") f += c;
  }
  if (f !== "" || row.length) { row.push(f); rows.push(row); }
  const head = rows.shift();
  return rows.map((r) => Object.fromEntries(head.map((k, i) => [k, r[i]])));
}
const csvLine = (s) => "\"" + s.replace(/"/g, "\"\"") + "\"";
'

step "1. data: make_dataset.mjs seed $seed (train.csv, validation.csv) and unpaired pretraining text (seed $((seed + 1)))"
node examples/extraction/make_dataset.mjs --out $data --seed "$seed" --train 20000 --validation 200
node examples/extraction/make_dataset.mjs --out $data/pretrain-source --seed $((seed + 1)) --train 0 --validation 6000
# prompts.csv: the seed's generation input, bos + " " + prompt (the tokenizer reads <|endoftext|>
# as the special token). pretrain.csv: the prompts of the first half of the other seed's records
# and the answers of the second half, each a row, shuffled: both sides of the format, no prompt
# with its answer.
node -e "$csv_js"'
const [val, src, prompts, pretrain] = process.argv.slice(1);
fs.writeFileSync(prompts, "prompt\n" + readCsv(val).map((r) => csvLine("<|endoftext|> " + r.prompt) + "\n").join(""));
const recs = readCsv(src), half = recs.length >> 1;
const rows = recs.slice(0, half).map((r) => r.prompt).concat(recs.slice(half).map((r) => r.target));
let x = 12345;  // a fixed shuffle (32-bit LCG)
for (let i = rows.length - 1; i > 0; i--) {
  x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
  const j = x % (i + 1); [rows[i], rows[j]] = [rows[j], rows[i]];
}
fs.writeFileSync(pretrain, "text\n" + rows.map((r) => csvLine(r) + "\n").join(""));
console.log(`${prompts}: ${readCsv(val).length} prompts; ${pretrain}: ${half} prompts + ${recs.length - half} answers of other records`);
' $data/validation.csv $data/pretrain-source/validation.csv $data/prompts.csv $data/pretrain.csv

step "2. a random GPT-J-architecture model"
# 8 layers x 64 wide, 4 heads of 16 (rotary on 8 of their dimensions), context 256 (every record
# fits), GPT-2's tokenizer and exactly its 50257 ids (with GPT-J's 50400 rows an untrained model
# writes ids that have no token and decode as nothing): 6.9 M parameters, 6.4 M of them the
# embedding and the output layer.
$lmforge init --preset gpt-j-6b --n_layer 8 --n_embd 64 --n_head 4 --rotary_dim 8 --vocab_size 50257 \
  --n_positions 256 --tokenizer $tokenizer --save_path $out/init --seed 1

# Every training row is bos + " " + record + eos (--prefix '<|endoftext|> ', one record per sequence,
# right-padded): exactly the seed's generation input followed by its answer and the end. The loss
# is on the answer only (--response_template ' <END>', TRL's completion-only loss): the prompt is
# given at generation time, and its noisy OCR text is two thirds of every row. The validation loss
# is then the answer tokens' mean too.
rows=(--data_path $data/train.csv --text_column text --prefix '<|endoftext|> ' --suffix '' --max_rows 0
      --response_template ' <END>' --validation_file $data/validation.csv)

step "3. full fine-tuning from scratch on train.csv ($full_steps steps)"
timed full $lmforge finetune --model_name_or_path $out/init "${rows[@]}" --do_train --do_eval \
  --evaluation_strategy steps --eval_steps 1000 --output_dir $out/full --per_device_train_batch_size 4 \
  --learning_rate 3e-3 --warmup_steps 30 --max_steps "$full_steps" --logging_steps 50 --save_steps 0 --seed 1

step "4a. the LoRA base: the random model pretrained on the unpaired text ($base_steps steps)"
timed base $lmforge finetune --model_name_or_path $out/init --data_path $data/pretrain.csv \
  --text_column text --prefix ' ' --suffix '' --max_rows 0 --packing true --block_size 256 \
  --validation_fraction 0.05 --do_train --do_eval --evaluation_strategy no --output_dir $out/base \
  --per_device_train_batch_size 4 --learning_rate 3e-3 --warmup_steps 30 --max_steps "$base_steps" \
  --logging_steps 50 --save_steps 0 --seed 1

step "4b. LoRA on the base, on train.csv ($lora_steps steps)"
timed lora $lmforge finetune --model_name_or_path $out/base --lora --lora_r 16 --lora_alpha 32 \
  --lora_target q_proj,k_proj,v_proj,out_proj,fc_in,fc_out "${rows[@]}" --do_train --do_eval \
  --evaluation_strategy steps --eval_steps 1000 --output_dir $out/lora --per_device_train_batch_size 4 \
  --learning_rate 5e-3 --warmup_steps 30 --max_steps "$lora_steps" --logging_steps 50 --save_steps 0 --seed 1

step "5. merge the adapter into the base"
$lmforge merge --model $out/base --adapter $out/lora --save_path $out/lora-merged

# The task's validation loss of the two untrained models (finetune --do_eval alone).
for m in init base; do
  $lmforge finetune --model_name_or_path $out/$m "${rows[@]}" --do_eval --output_dir $out/eval-$m
done

# generate NAME MODEL-FLAGS...: greedy and sampled answers for every validation prompt, scored.
generate() {
  local name=$1 d; shift
  $lmforge generate "$@" --prompt_file $data/prompts.csv --prompt_column prompt --max_new_tokens $max_new \
    --fields > $res/$name-greedy.jsonl
  $lmforge generate "$@" --prompt_file $data/prompts.csv --prompt_column prompt --max_new_tokens $max_new \
    "${sampling[@]}" --fields > $res/$name-sampled.jsonl
  for d in greedy sampled; do
    $lmforge eval fields --predictions $res/$name-$d.jsonl --references $data/validation.csv --json > $res/$name-$d.json
  done
}
step "6. generate and score: greedy, and sampled (${sampling[*]})"
generate init --model $out/init
generate full --model $out/full
generate base --model $out/base
generate lora --model $out/base --adapter $out/lora
generate lora-merged --model $out/lora-merged
# The merged model must answer exactly as the unmerged adapter does (greedy).
node -e "$csv_js"'
const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n");
const a = read(process.argv[1]), b = read(process.argv[2]);
const diff = a.filter((l, i) => l !== b[i]).length + Math.abs(a.length - b.length);
console.log(`LoRA merged vs unmerged, greedy: ${a.length - diff} of ${a.length} answers identical`);
if (diff) { console.error("error: lmforge merge changed greedy answers"); process.exit(1); }
' $res/lora-greedy.jsonl $res/lora-merged-greedy.jsonl

step "7. results (exact match on the $(($(wc -l < $data/validation.csv) - 1)) validation records)"
node -e "$csv_js"'
const dir = process.argv[1], out = process.argv[2];
const rd = (f) => JSON.parse(fs.readFileSync(f, "utf8"));
const ex = (f) => fs.existsSync(f);
const t = Object.fromEntries(fs.readFileSync(`${dir}/results/timings.tsv`, "utf8").trim().split("\n").map((l) => l.split("\t")));
const loss = (m) => ex(`${dir}/${m}/eval_results.json`) ? rd(`${dir}/${m}/eval_results.json`).eval_loss.toFixed(3) : "";
const steps = (m) => {  // the optimizer steps of a training run, from its metrics.jsonl
  const f = `${dir}/${m}/metrics.jsonl`;
  if (!ex(f)) return null;
  const tr = fs.readFileSync(f, "utf8").trim().split("\n").map(JSON.parse).filter((r) => r.type === "train");
  return tr.length ? tr[tr.length - 1].step : null;
};
const mmss = (s) => s === undefined ? "-" : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
const pct = (x) => x === null ? "n/a" : (100 * x).toFixed(1) + " %";
const fields = ["rewrite", "title", "agency", "photographer", "date"];
const models = [
  ["init", "random init (before full fine-tuning)", "eval-init", undefined],
  ["full", "full fine-tune from scratch", "full", t.full],
  ["base", "LoRA base: pretrained on unpaired text (before LoRA)", "eval-base", t.base],
  ["lora", "LoRA (unmerged, --adapter)", "lora", t.lora],
  ["lora-merged", "LoRA merged (lmforge merge)", "lora", undefined]];
const L = [];
L.push("| model | decoding | " + fields.join(" | ") + " | all fields |");
L.push("|---|---|" + fields.map(() => "---|").join("") + "---|");
for (const [m, label] of models) for (const d of ["greedy", "sampled"]) {
  const j = rd(`${dir}/results/${m}-${d}.json`);
  const cell = (f) => { const x = j.fields[f]; return x.with_value.total === x.total ? pct(x.accuracy) : `${pct(x.accuracy)} (${pct(x.with_value.accuracy)})`; };
  L.push(`| ${label} | ${d === "greedy" ? "greedy" : "sampled (3 per prompt)"} | ` + fields.map(cell).join(" | ") + ` | ${pct(j.all_fields.accuracy)} |`);
}
L.push("");
L.push("Per field: exact match over all rows (in brackets: over the rows whose reference has a value). Sampled: each of the 3 sequences per prompt scored alone.");
L.push("");
L.push("| model | training | wall time | validation loss (validation.csv) |");
L.push("|---|---|---|---|");
for (const [m, label, lossDir, secs] of models) {
  if (m === "lora-merged") continue;
  const n = steps(m);
  L.push(`| ${label} | ${n === null ? "none" : n + " steps"} | ${mmss(secs === undefined ? undefined : +secs)} | ${loss(lossDir)} |`);
}
const text = L.join("\n") + "\n";
fs.writeFileSync(out, text);
process.stdout.write(text);
' $out $out/results.md
echo "table: $out/results.md; predictions and summaries: $res/; total $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s after the build"
