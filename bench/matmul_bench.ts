/**
 * matmul on the model's shapes (B·L = 16384 rows, D = 512, FFN 2048, V = 8000): the forward products of
 * `linear` (NT), the input gradients (NN) and the weight gradients (TN, split-K), each through the
 * launcher's own tile choice. Shapes are written M×N×K (C is M×N, K reduced).
 *
 * Size: `DIFFLM_BENCH_SCALE=full` runs the model's sizes, `small` cuts the 16384 rows (and the K of the
 * weight gradients) to 1024, a number sets those rows directly. The default is `small` on a CPU adapter
 * (isFallbackAdapter, or llvmpipe/lavapipe in the description), where only the code path matters, and
 * `full` elsewhere. Products larger than one storage binding (16384×8000 f32 is 524 MB; lavapipe binds
 * 128 MiB) run in row chunks inside `matmulInto`.
 *
 * Before the benches, each shape is spot-checked against float64 dot products and timed by timestamp
 * queries (when granted); that GPU time and its TFLOP/s are printed and put in the bench name.
 * `deno bench` then reports wall time per iteration, each iteration waiting for the GPU.
 * For the full table with tile sweeps and the PyTorch peer, run bench/gpu_matmul.ts and
 * bench/torch_matmul.py on the GPU machine.
 *
 * Run: `XDG_RUNTIME_DIR=/tmp deno bench -A bench/matmul_bench.ts`
 */
// deno-lint-ignore-file no-console
import { readEnv } from "../src/host.ts";
import { Engine } from "../src/tensor/engine.ts";
import { matmulInto } from "../src/tensor/ops/matmul.ts";
import { random } from "./_random.ts";
import type { MatmulShape } from "./_matmul_shapes.ts";

const engine = await Engine.create();
const { gpu } = engine.runtime;
const cpu = gpu.adapter.info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(gpu.description);
const setting = readEnv("DIFFLM_BENCH_SCALE") ?? (cpu ? "small" : "full");
const rows = setting === "full" ? 16384 : setting === "small" ? 1024 : Number(setting);
if (!Number.isInteger(rows) || rows <= 0) {
  throw new TypeError(
    `Cannot bench matmul: DIFFLM_BENCH_SCALE is "${setting}", expected full, small or rows`,
  );
}

const R = rows;
const shapes: MatmulShape[] = [
  { name: "linear 512→512 fwd (NT)", M: R, N: 512, K: 512, transB: true },
  { name: "ffn up 512→2048 fwd (NT)", M: R, N: 2048, K: 512, transB: true },
  { name: "ffn down 2048→512 fwd (NT)", M: R, N: 512, K: 2048, transB: true },
  { name: "lm_head 512→8000 fwd (NT)", M: R, N: 8000, K: 512, transB: true },
  { name: "ffn up dx (NN)", M: R, N: 512, K: 2048 },
  { name: "ffn up dW (TN)", M: 2048, N: 512, K: R, transA: true },
  { name: "lm_head dW (TN)", M: 8000, N: 512, K: R, transA: true },
];
if (setting === "full") shapes.unshift({ name: "square", M: 4096, N: 4096, K: 4096 });

console.log(`matmul bench on ${gpu.description}: rows ${R} (DIFFLM_BENCH_SCALE=${setting})`);
for (const s of shapes) {
  const a = random(s.M * s.K, 1), b = random(s.K * s.N, 2);
  const at = engine.tensor(a, s.transA ? [s.K, s.M] : [s.M, s.K]);
  const bt = engine.tensor(b, s.transB ? [s.N, s.K] : [s.K, s.N]);
  const ct = engine.empty([s.M, s.N]);
  const run = () => matmulInto(ct, at, bt, { transA: s.transA, transB: s.transB });
  const flop = 2 * s.M * s.N * s.K;
  const label = `${s.name} ${s.M}×${s.N}×${s.K}`;
  // Validate a few entries (first and last 64 rows) against float64 dot products.
  run();
  for (const start of [0, Math.max(0, Math.floor((s.M - 64) / 64) * 64)]) {
    const count = Math.min(64, s.M - start);
    const got = await ct.rows(start, count).read();
    for (let i = 0; i < 16; i++) {
      const m = start + ((i * 37) % count), n = (i * 7919) % s.N;
      let want = 0;
      for (let k = 0; k < s.K; k++) {
        want += a[s.transA ? k * s.M + m : m * s.K + k]! * b[s.transB ? n * s.K + k : k * s.N + n]!;
      }
      if (!(Math.abs(got[(m - start) * s.N + n]! - want) <= 1e-5 * Math.sqrt(s.K) + 1e-5 * Math.abs(want))) {
        throw new Error(
          `Cannot bench matmul ${label}: C[${m},${n}] is ${got[(m - start) * s.N + n]}, expected ${want}`,
        );
      }
    }
  }
  let tag = "";
  if (gpu.features.timestamps) {
    const reps = cpu ? 1 : 10;
    const timings = await engine.runtime.profile(() => {
      for (let r = 0; r < reps; r++) run();
    });
    const ms = timings.reduce((x, t) => x + t.ns, 0) / reps / 1e6;
    const tflops = flop / (ms * 1e-3) / 1e12;
    tag = ` (${tflops >= 0.1 ? tflops.toFixed(1) : tflops.toPrecision(2)} TFLOP/s GPU)`;
    console.log(
      `matmul ${label}: ${ms.toFixed(3)} ms GPU, ${tflops.toPrecision(3)} TFLOP/s, ${
        (flop / 1e9).toFixed(2)
      } GFLOP`,
    );
  }
  Deno.bench({
    name: `${label}${tag}`,
    group: "matmul",
    n: cpu ? 3 : 30,
    warmup: cpu ? 1 : 5,
    async fn() {
      run();
      await engine.runtime.sync();
    },
  });
}
