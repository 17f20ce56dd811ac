#!/usr/bin/env bash
# The default tiny run in f32 (built-in WebGPU) and in mixed precision (Dawn's tensor cores), side by side
# with the same seed, then `cli.ts eval` of each (512 samples, eval seeds 0 and 1) with its own provider and
# precision. Needs a GPU whose Dawn adapter offers f16 subgroup matrices.
#
# usage: [M=minutes] bash bench/quality_pair.sh [RUNS_DIR]
#   M caps each training process (both are then resumed to their end); logs go to $OUT (or RUNS_DIR).
set -uo pipefail
runs=${1:-runs/quality_pair}
out=${OUT:-$runs}
mkdir -p "$runs" "$out"
train() { # name flags...
  local name=$1; shift
  deno run -A cli.ts train --ckpt "$runs/$name" --samples 0 --log-every 200 ${M:+--minutes "$M"} "$@" \
    >>"$out/train_$name.log" 2>&1
  echo "train $name: exit $?"
}
f32=(--gpu deno --precision f32) mixed=(--gpu dawn --precision mixed)
train f32 "${f32[@]}" &
train mixed "${mixed[@]}" &
wait
if [ -n "${M:-}" ]; then # a capped run goes on to its end (a finished one stops at once)
  M="" train f32 "${f32[@]}" &
  M="" train mixed "${mixed[@]}" &
  wait
fi
for seed in 0 1; do
  deno run -A cli.ts eval --ckpt "$runs/f32" --n 512 --seed $seed "${f32[@]}" 2>&1 | tail -n 1 >>"$out/eval_f32.jsonl" &
  deno run -A cli.ts eval --ckpt "$runs/mixed" --n 512 --seed $seed "${mixed[@]}" 2>&1 | tail -n 1 >>"$out/eval_mixed.jsonl" &
  wait
done
for name in f32 mixed; do
  grep -E "^step" "$out/train_$name.log" | tail -n 1
  cut -c1-400 "$out/eval_$name.jsonl"
done
