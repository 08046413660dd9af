#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, then generate.
#   MODEL=path/to/hf-gpt2-folder scripts/demo.sh   uses a real checkpoint;
#   without MODEL a random-weight GPT-2 (124M shape, real GPT-2 tokenizer) is written first, so the
#   output is fluent-looking nonsense but every code path a real model takes is exercised.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=${MODEL:-}
if [ -z "$model" ]; then
  model=out/random-gpt2
  [ -f $model/model.safetensors ] || build/lmforge init --save_path $model --preset gpt2 --tokenizer data/gpt2-tokenizer
fi
build/lmforge inspect "$model" | head -20
build/lmforge generate --model "$model" --prompt "I am a large language model" --num_beams 5 \
  --num_return_sequences 5 --no_repeat_ngram_size 2 --early_stopping --max_length 40
build/lmforge generate --model "$model" --prompt "Transformers are the" --max_new_tokens 8 --show_choices 5
build/lmforge generate --model "$model" --prompt "Farmers" --do_sample --top_k 50 --top_p 0.95 \
  --temperature 0.8 --max_new_tokens 30 --seed 1
