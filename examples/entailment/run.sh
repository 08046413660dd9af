#!/usr/bin/env bash
# The reference notebook's story on MNLI-style entailment, offline, in about ten minutes on 2 cores:
# a language model that was never taught the task scores about chance zero-shot and few-shot; the
# same model fine-tuned on the task's training text (`mnli hypothesis: H premise: P target: label`)
# scores far above chance on held-out rows -- in generate mode (the notebook's: generate, parse the
# answer) and in log-likelihood mode (lm-evaluation-harness's multiple choice).
#   1. set up and build the lmforge binary (only it);
#   2. build the Brown entailment set (examples/entailment/make_dataset.mjs: NOT MNLI, a stand-in
#      generated from Brown corpus sentences; see examples/entailment/README.md for its limits);
#   3. create a small GPT-J-architecture model from scratch and pretrain it on Brown running text
#      (the sentences of passages that give no evaluation row);
#   4. evaluate it zero-shot and 3-shot, both modes;
#   5. turn the training split into fine-tuning text (`lmforge task --write_training_csv`) and
#      fine-tune the model on it;
#   6. evaluate the fine-tuned model the same way, then print the accuracy table.
# Environment:
#   MODEL=path     a real checkpoint (HF GPT-2/GPT-J folder or cached name): no init, no pretraining
#   TRAIN=path     labelled training split (e.g. GLUE MNLI train.tsv, or the HF glue/mnli JSONL);
#                  also the few-shot pool
#   EVAL=path      evaluated split (e.g. GLUE MNLI dev_mismatched.tsv)
#   LIMIT=N        evaluate only the first N rows
#   FT_ROWS=N      fine-tune on N training rows, drawn at random (default: all of them)
#   FT_EPOCHS, FT_LR  fine-tuning epochs and peak learning rate (defaults: 3 and 2e-3 from scratch,
#                  1 and 5e-5 with MODEL)
#   SKIP_FINETUNE=1  evaluate MODEL only (e.g. a checkpoint already fine-tuned on MNLI)
#   SEED=N         the generated data set's seed (default 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target lmforge_cli
lmforge=build/lmforge
out=out/entailment
template=examples/tasks/mnli_finetune.yaml
mkdir -p $out/results
rm -f $out/results/*.json
start=$SECONDS
step() { echo; echo "== $1  [$(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s]"; }

step "1. the Brown entailment set (a stand-in for MNLI; see examples/entailment/README.md)"
node examples/entailment/make_dataset.mjs --out $out/data --seed "${SEED:-1}"
train=${TRAIN:-$out/data/train.jsonl}
eval=${EVAL:-$out/data/validation.jsonl}
echo "training rows: $train; evaluated rows: $eval${LIMIT:+ (first $LIMIT)}"

if [ -n "${MODEL:-}" ]; then
  base=$MODEL
  step "2. model: $MODEL (no pretraining)"
else
  base=$out/pretrained
  step "2. a GPT-J-architecture model from scratch, pretrained on Brown running text"
  # 6 layers x 128 wide, 4 heads of 32 (rotary on 16 of their dimensions), GPT-2's tokenizer:
  # 14 M parameters, 13 M of them the embedding and the output layer. The depth is cheap on a CPU:
  # the 50400-word output layer is most of each step's work.
  rm -rf $out/init $out/pretrained $out/finetuned
  $lmforge init --preset gpt-j-6b --n_layer 6 --n_embd 128 --n_head 4 --rotary_dim 16 \
    --n_positions 256 --tokenizer data/gpt2-tokenizer --save_path $out/init --seed 1
  # Running text: consecutive Brown sentences packed into 128-token blocks, as a causal LM is
  # pretrained; pretrain.csv holds no sentence of an evaluated passage and none used in train.
  $lmforge finetune --model $out/init --data_path $out/data/pretrain.csv --text_column text \
    --prefix '' --suffix '' --max_rows 8000 --sample first --packing true --block_size 128 \
    --validation_fraction 0.05 --num_epochs 1 --lr 2e-3 --warmup_steps 30 \
    --per_device_train_batch_size 16 --seed 1 --save_steps 0 --logging_steps 25 --save_path $base
fi

# evaluate NAME MODEL: both modes, zero-shot and 3-shot (examples drawn from the training split),
# the fine-tuning format's template; one JSON summary per run in $out/results.
evaluate() {
  local name=$1 model=$2 k mode
  for k in 0 3; do
    for mode in generate loglikelihood; do
      local flags=(--model "$model" --data "$eval" --template $template --mode $mode --json
                   --output $out/results/$name-$k-shot-$mode.predictions.jsonl)
      [ "$k" -gt 0 ] && flags+=(--num_fewshot "$k" --fewshot_file "$train")
      [ $mode = generate ] && flags+=(--output_length 5)
      [ -n "${LIMIT:-}" ] && flags+=(--limit "$LIMIT")
      $lmforge task "${flags[@]}" > $out/results/$name-$k-shot-$mode.json
      node -e '
        const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const pct = (x) => (100 * x).toFixed(1) + " %";
        console.log(`${process.argv[2].padEnd(40)} accuracy ${pct(j.accuracy)}` +
          (j.acc_norm !== undefined ? `, acc_norm ${pct(j.acc_norm)}` : "") +
          (j.unmatched !== undefined ? `, ${j.unmatched}/${j.scored} answers match no label` : "") +
          ` (${j.seconds.toFixed(1)} s)`);' \
        $out/results/$name-$k-shot-$mode.json "$name, $k-shot, $mode"
    done
  done
}

step "3. before fine-tuning: zero-shot and 3-shot"
evaluate base "$base"

if [ -n "${SKIP_FINETUNE:-}" ]; then
  tuned=
else
  step "4. fine-tuning on the training split in the notebook's format"
  $lmforge task --data "$train" --template $template --write_training_csv $out/train_text.csv
  head -3 $out/train_text.csv
  if [ -n "${MODEL:-}" ]; then epochs=${FT_EPOCHS:-1} lr=${FT_LR:-5e-5}; else epochs=${FT_EPOCHS:-3} lr=${FT_LR:-2e-3}; fi
  tuned=$out/finetuned
  if [ "$(realpath -m "$base")" = "$(realpath -m $tuned)" ]; then
    echo "error: MODEL is $tuned, which this step overwrites; copy it elsewhere first" >&2; exit 1
  fi
  rm -rf $tuned
  $lmforge finetune --model "$base" --data_path $out/train_text.csv --text_column text --prefix '' \
    --suffix '' --max_rows "${FT_ROWS:-0}" --sample random --validation_fraction 0.05 \
    --num_epochs "$epochs" --lr "$lr" --warmup_steps 20 --per_device_train_batch_size 16 --seed 1 \
    --save_steps 0 --logging_steps 50 --save_path $tuned
  step "5. after fine-tuning: zero-shot and 3-shot"
  evaluate finetuned $tuned
fi

step "6. accuracy on $eval (chance: 33.3 % on balanced labels)"
node -e '
  const fs = require("fs"), dir = process.argv[1];
  const read = (f) => fs.existsSync(`${dir}/${f}.json`) ? JSON.parse(fs.readFileSync(`${dir}/${f}.json`, "utf8")) : null;
  const pct = (x) => (100 * x).toFixed(1).padStart(5) + " %";
  console.log("| model | examples | generate: accuracy (no label) | log-likelihood: acc | acc_norm |");
  console.log("|---|---|---|---|---|");
  for (const name of ["base", "finetuned"]) for (const k of [0, 3]) {
    const g = read(`${name}-${k}-shot-generate`), l = read(`${name}-${k}-shot-loglikelihood`);
    if (!g || !l) continue;
    console.log(`| ${name === "base" ? "before fine-tuning" : "fine-tuned"} | ${k}-shot | ` +
      `${pct(g.accuracy)} (${g.unmatched}/${g.scored}) | ${pct(l.accuracy)} | ${pct(l.acc_norm)} |`);
  }' $out/results
echo "summaries and per-row predictions: $out/results/; total $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s after the build"
