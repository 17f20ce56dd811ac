#!/usr/bin/env bash
# Trains variants of a preset on the built-in corpus side by side (one process each; the small models
# leave the GPU mostly idle) and evaluates each with several sampler settings.
#
# usage: bash bench/quality_sweep.sh OUT EPOCHS "name|train flags" ...
#   EVALS="|--temperature 0.5|--method ddim"   eval flag sets, separated by "|" (default: one plain eval)
#   N=128                                      unconditional samples per eval
# Each run leaves OUT/NAME (checkpoint without optimizer state), OUT/NAME.train.log and
# OUT/NAME.eval.jsonl (one JSON line per eval flag set, the flags under "sampler").
set -u
out=$1
epochs=$2
shift 2
mkdir -p "$out"
IFS='|' read -r -a evals <<<"${EVALS:-}"
[ ${#evals[@]} -eq 0 ] && evals=("")
for spec in "$@"; do
  name=${spec%%|*}
  flags=${spec#*|}
  (
    # shellcheck disable=SC2086 # flags are words
    deno run -A cli.ts train --ckpt "$out/$name" --epochs "$epochs" --samples 0 --log-every 200 $flags \
      >"$out/$name.train.log" 2>&1
    for sampler in "${evals[@]}"; do
      # shellcheck disable=SC2086
      line=$(deno run -A cli.ts eval --ckpt "$out/$name" --n "${N:-128}" $sampler 2>&1 | tail -n 1)
      echo "{\"sampler\":\"$sampler\",\"report\":$line}" >>"$out/$name.eval.jsonl"
    done
    rm -f "$out/$name/optimizer.safetensors"
    echo "$name done"
  ) &
done
wait
