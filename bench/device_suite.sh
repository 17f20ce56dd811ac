#!/usr/bin/env bash
# The device machine's benchmark and Dawn test suite, in one call (see bench/RESULTS.md for the tables it
# feeds). From the project root, after `source .carry/device_env.sh`:
#   bash bench/device_suite.sh [probe] [latency] [tests] [matmul] [train] [plans] [peers] [passes] [anatomy]
#     [epilogues] [steps]   (no argument: all)
# Logs go to $OUT (or /tmp/difflm-suite) and a summary to stdout.
set -uo pipefail
out=${OUT:-/tmp/difflm-suite}; mkdir -p "$out"
want() { [ $# -eq 0 ] || [ -z "${parts:-}" ] || [[ " $parts " == *" $1 "* ]]; }
parts="$*"
run() { local name=$1; shift; echo "== $name"; timeout "${LIMIT:-300}" "$@" > "$out/$name.log" 2>&1; echo "(exit $?)"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if want probe; then
  # Dawn with only --allow-ffi (what `deno task train` grants), then with every permission.
  run provider_ffi deno run --cached-only --allow-ffi bench/gpu_provider.ts
  run provider_all deno run --cached-only -A bench/gpu_provider.ts
  cut -c1-400 "$out/provider_ffi.log" "$out/provider_all.log"
fi
if want latency; then
  for gpu in deno dawn; do
    run "latency_$gpu" deno run --cached-only -A bench/gpu_dispatch_latency.ts --n 4000 --gpu $gpu
    grep -E "dispatch_chain|api_latency" "$out/latency_$gpu.log" | cut -c1-600
  done
fi
if want tests; then
  DIFFLM_TEST_DAWN=1 run dawn_tests deno test --cached-only -A ${TEST_FILTER:+--filter "$TEST_FILTER"} \
    tests/kernels/matmul_mixed_test.ts tests/train/mixed_training_test.ts
  grep -E "^ok|FAILED|\.\.\. (ok|FAILED)" "$out/dawn_tests.log" | grep -v ignored | tail -20
fi
if want matmul; then
  run matmul_tc deno run --cached-only -A bench/gpu_matmul_tc.ts --reps 20 --rounds 2 --peers \
    ${MATMUL_SHAPES:+--shapes "$MATMUL_SHAPES"} ${MATMUL_TILES:+--tiles "$MATMUL_TILES"}
  grep -v '^{"what":"matmul_tc"' "$out/matmul_tc.log" | tail -80
fi
if want train; then
  run train_f32 deno run --cached-only -A bench/gpu_train_step.ts --gpu deno --precision f32 --steps 10 --sample
  grep -E "train_step|sample_200" "$out/train_f32.log"
  # The same f32 kernels through Dawn: separates the provider's cost from the tensor-core kernels'.
  run train_dawn_f32 deno run --cached-only -A bench/gpu_train_step.ts --gpu dawn --precision f32 --steps 10 \
    --sample ${PROFILE:+--sample-profile}
  grep -E "train_step|sample_200|^sampling at|^\| (matmul|attention)" "$out/train_dawn_f32.log" | head -60
  LIMIT=540 run train_mixed deno run --cached-only -A bench/gpu_train_step.ts --gpu dawn --precision mixed --steps 20 \
    --sample --peers ${PROFILE:+--profile --sample-profile}
  grep -v '^{"what":"peer"' "$out/train_mixed.log" | tail -70
fi
if want plans; then
  # The tensor-core plans side by side (TensorCorePolicy, `--tc`), each a training step and sampling at
  # batch 1, 8 and 64, the default first and again last (the card's clock moves within a call). PLANS
  # overrides the list: by default the candidates not yet timed against the default (accumulators that
  # start from the bias, epilogues staged a row of fragments at a time, both, medium tiles only where they
  # fill the card, 8-subgroup 128×128 tiles where those nearly fill it, and the first four with the
  # 256×128 tile).
  for tc in "" ${PLANS:-biasfirst strips biasfirst,strips medium large8 tall,medium,biasfirst,strips} "again"; do
    name="plan_${tc:-default}"; name=${name//[,=]/_} # commas are not carried back in file names
    [ "$tc" = again ] && tc=""
    run "$name" deno run --cached-only -A bench/gpu_train_step.ts --gpu dawn --precision mixed \
      --steps 20 --sample --sample-batches 1,8,64 ${tc:+--tc $tc}
    grep -E "train_step|sample_200" "$out/$name.log"
  done
fi
if want peers; then
  # The PyTorch peers alone (the TF32 sampling graph, the eager bf16-autocast step twice), for
  # the plans above.
  run peers python3 bench/strong_torch.py cuda quick
  cat "$out/peers.log"
fi
if want passes; then
  # Why a Dawn step's wall time exceeds its kernels': one compute pass per submission, a pass per 8
  # dispatches, a pass per dispatch, and Dawn with validation and workgroup zeroing off too (shader
  # robustness is off by default); the card's clocks are logged meanwhile (passes_clocks.csv).
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,utilization.gpu,clocks_throttle_reasons.active \
    --format=csv -lms 500 > "$out/passes_clocks.csv" 2>&1 &
  smi=$!
  for per in all 8 1 toggles; do
    flag=(); toggles=""
    case $per in all) ;; toggles) toggles=skip_validation,disable_workgroup_init ;;
      *) flag=(--pass-dispatches "$per") ;; esac
    DIFFLM_DAWN_TOGGLES=$toggles run "passes_$per" deno run --cached-only -A bench/gpu_train_step.ts --gpu dawn \
      --precision mixed --steps 12 --sample --sample-batches 8,64 --profile "${flag[@]}"
    grep -E "train_step|sample_200|^per-kernel" "$out/passes_$per.log"
  done
  kill $smi
fi
if want anatomy; then
  # Where a tensor-core tile's time goes (global loads, staging, epilogues), as Dawn runs by default
  # (shader robustness off), then with robustness on (DIFFLM_DEBUG=1).
  run anatomy deno run --cached-only -A bench/gpu_matmul_tc_anatomy.ts --epilogues
  grep -A40 "^shape " "$out/anatomy.log"
  DIFFLM_DEBUG=1 run anatomy_robust deno run --cached-only -A bench/gpu_matmul_tc_anatomy.ts
  grep -A40 "^shape " "$out/anatomy_robust.log"
fi
if want epilogues; then
  # The epilogues alone (bias; bias, GELU and the pre-activation), each as the launcher has it, with the
  # accumulators starting from the bias, with a row of fragments staged per round, and with both.
  run anatomy_epilogues deno run --cached-only -A bench/gpu_matmul_tc_anatomy.ts --epilogues-only \
    --shapes "${EPILOGUE_SHAPES:-ffn up fwd,attn qkv,ffn down fwd,b64}" --tiles "${EPILOGUE_TILES:-large,small,medium}"
  grep -A80 "^shape " "$out/anatomy_epilogues.log"
fi
if want steps; then
  # Where mixed-precision sampling's and training's time goes in place: each kernel's dispatches doubled
  # in turn (bench/step_anatomy.ts).
  LIMIT=560 run step_anatomy deno run --cached-only -A bench/step_anatomy.ts --gpu dawn --precision mixed \
    --sample-batches "${ANATOMY_BATCHES-1,8,64}" --train-steps "${ANATOMY_TRAIN_STEPS-10}" ${ANATOMY_TC:+--tc "$ANATOMY_TC"}
  grep -v '^{' "$out/step_anatomy.log"
fi
