#!/usr/bin/env bash
# The main job on a fresh machine, offline, in a few minutes on 2 cores: fine-tune GPT-2 on a
# headline CSV, then generate synthetic headlines that never copy a training row:
#   1. set up and build the lmforge binary (only it: the tests and benchmarks are not needed here);
#   2. train a small GPT-2 from scratch (real GPT-2 tokenizer) on a news-text CSV -- by default the
#      press sentences of the Brown corpus that setup builds (data/brown/brown_news.csv);
#   3. generate synthetic rows from it with `lmforge synth`, drop any that copy the training rows
#      (privacy guard) and print the synthetic-set report;
#   4. show generation itself: beam search and the per-step top-5 choices;
#   5. quantize it to INT8 with the accuracy check against fp32 (perplexity of held-out rows
#      within 1 %), then generate from the quantized folder and time fp32 against int8 in the
#      benchmark mode.
# MODEL=path/to/hf-gpt2-folder fine-tunes that checkpoint instead of training from scratch;
# DATA=path/to/your.csv (column headline_text, or set COLUMN) uses your own rows.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target lmforge_cli
lmforge=build/lmforge
data=${DATA:-data/brown/brown_news.csv}
column=${COLUMN:-headline_text}
out=out/demo
mkdir -p $out

echo "== 1. training on $data"
common=(--data_path "$data" --text_column "$column" --save_path $out/model --max_rows 5000 --seed 1
        --save_steps 0 --logging_steps 20 --per_device_train_batch_size 16)
if [ -n "${MODEL:-}" ]; then
  $lmforge finetune --model "$MODEL" "${common[@]}" --num_epochs 1 --lr 5e-5
else
  $lmforge finetune --init random --n_layer 2 --n_embd 128 --n_head 4 --n_positions 64 \
    --tokenizer data/gpt2-tokenizer "${common[@]}" --num_epochs 2 --lr 2e-3 --warmup_steps 20
fi
echo "loss curve: $out/model/loss_curve.png (metrics: $out/model/metrics.jsonl)"

echo "== 2. synthetic rows, privacy guard against the training rows, report"
printf 'prompt\nthe city\npresident\nthe school board\npolice\nthe new\n' > $out/prompts.csv
$lmforge synth --model $out/model --prompt_file $out/prompts.csv --num_samples 20 \
  --min_length 4 --max_length_buffer 20 --top_k 50 --top_p 0.95 --temperature 0.9 --seed 7 \
  --reference_data "$data" --column "$column" --report $out/report.json --output $out/synthetic.json
echo "first rows of $out/synthetic.json:"
head -c 600 $out/synthetic.json; echo

echo "== 3. generation: beam search and the top-5 choices per step"
$lmforge generate --model $out/model --prompt "|HEADLINE| the city" --num_beams 5 \
  --num_return_sequences 3 --no_repeat_ngram_size 2 --early_stopping --max_new_tokens 16
$lmforge generate --model $out/model --prompt "|HEADLINE| police" --max_new_tokens 4 --show_choices 5

echo "== 4. INT8 quantization with an accuracy check, then benchmark mode fp32 vs int8"
# The held-out rows, their column and the text format come from the model's training record.
$lmforge quantize --model $out/model --save_path $out/model-int8 --tolerance 0.01
$lmforge generate --model $out/model-int8 --prompt "|HEADLINE| the city" --max_new_tokens 16
for m in $out/model $out/model-int8; do
  $lmforge generate --model $m --benchmark_mode --benchmark_seq_length 32 --benchmark_iters 5
done
