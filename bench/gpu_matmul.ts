/**
 * GPU benchmark of the matmul kernels (kernels/matmul.ts) for the device machine: validates every tile
 * configuration once against a float64 CPU reference on a small random problem (all four transpose
 * cases, odd sizes), then times the model's shapes and 4096³ for each configuration and for the
 * launcher's own choice ("auto"), by timestamp queries (median over reps) and by wall clock
 * (`onSubmittedWorkDone` over the same reps). Large results are spot-checked against float64 dot
 * products. Prints a table and JSON lines (also to $OUT/gpu_matmul.jsonl when OUT is set).
 *
 *   deno run -A bench/gpu_matmul.ts [--reps 5] [--gpu deno|dawn] [--rounds 3] [--quick] [--shapes square,lm_head]
 *     [--configs "auto,auto flat"] (exact labels) [--scale 0.0625]
 *   python3 bench/torch_matmul.py        # the PyTorch fp32 / TF32 peer on the same shapes
 *
 * Shapes are written M×N×K (C is M×N, K reduced); B·L = 256·64 = 16384 rows; D = 512, FFN 2048, V = 8000.
 */
// deno-lint-ignore-file no-console
import { MATMUL_TILES, type MatmulLayout, matmulSharedBytes, type MatmulTile } from "../kernels/matmul.ts";
import { requestGpu } from "../src/gpu/device.ts";
import { GpuRuntime } from "../src/gpu/runtime.ts";
import { Engine } from "../src/tensor/engine.ts";
import { matmulInto, type MatmulIntoOptions } from "../src/tensor/ops/matmul.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { MATMUL_SHAPES as SHAPES, type MatmulShape as Shape } from "./_matmul_shapes.ts";
import { random } from "./_random.ts";
import { median, timeReps } from "./_timing.ts";
import { benchArgs } from "./_args.ts";

const args = benchArgs("deno", {
  reps: { type: "string", default: "5" },
  rounds: { type: "string", default: "3" },
  configs: { type: "string" },
  quick: { type: "boolean", default: false },
  shapes: { type: "string" },
  scale: { type: "string", default: "1" },
});
const REPS = Number(args.reps);

interface Config {
  label: string;
  tile?: MatmulTile;
  splitK?: number;
  layout?: MatmulLayout;
}

/** "auto" is the launcher's own choice; "flat" pins the flat workgroup layout, "sN" the K-splits. */
const CONFIGS: Config[] = [
  { label: "auto" },
  { label: "auto flat", layout: "flat" },
  { label: "128x128x8 8x8", tile: MATMUL_TILES.large },
  { label: "128x128x8 8x8 flat", tile: MATMUL_TILES.large, layout: "flat" },
  { label: "128x128x16 8x8", tile: { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 } },
  { label: "64x64x8 4x4", tile: MATMUL_TILES.small },
  { label: "64x64x16 4x4", tile: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 } },
  { label: "128x64x8 8x4", tile: { bm: 128, bn: 64, bk: 8, tm: 8, tn: 4 } },
  { label: "64x64x8 8x8 (64)", tile: { bm: 64, bn: 64, bk: 8, tm: 8, tn: 8 } },
  { label: "64x128x8 8x8", tile: { bm: 64, bn: 128, bk: 8, tm: 8, tn: 8 } },
  { label: "128x64x8 8x8", tile: { bm: 128, bn: 64, bk: 8, tm: 8, tn: 8 } },
  { label: "128x256x8 8x16", tile: { bm: 128, bn: 256, bk: 8, tm: 8, tn: 16 } },
  { label: "256x128x8 16x8", tile: { bm: 256, bn: 128, bk: 8, tm: 16, tn: 8 } },
  { label: "64x64x8 4x4 s2", tile: MATMUL_TILES.small, splitK: 2 },
  { label: "64x64x8 4x4 s8", tile: MATMUL_TILES.small, splitK: 8 },
  { label: "64x64x8 4x4 s16", tile: MATMUL_TILES.small, splitK: 16 },
  { label: "64x64x16 4x4 s4", tile: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 }, splitK: 4 },
  { label: "64x64x16 4x4 s8", tile: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 }, splitK: 8 },
  { label: "64x64x16 4x4 s16", tile: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 }, splitK: 16 },
  {
    label: "64x64x32 4x4 s4 flat",
    tile: { bm: 64, bn: 64, bk: 32, tm: 4, tn: 4 },
    splitK: 4,
    layout: "flat",
  },
  {
    label: "64x64x32 4x4 s8 flat",
    tile: { bm: 64, bn: 64, bk: 32, tm: 4, tn: 4 },
    splitK: 8,
    layout: "flat",
  },
  { label: "32x64x16 4x4 s4", tile: { bm: 32, bn: 64, bk: 16, tm: 4, tn: 4 }, splitK: 4 },
  { label: "32x64x16 4x4 s8", tile: { bm: 32, bn: 64, bk: 16, tm: 4, tn: 4 }, splitK: 8 },
  { label: "32x32x16 4x4 s1", tile: { bm: 32, bn: 32, bk: 16, tm: 4, tn: 4 }, splitK: 1 },
  { label: "32x32x16 4x4 s4", tile: { bm: 32, bn: 32, bk: 16, tm: 4, tn: 4 }, splitK: 4 },
  { label: "s2", splitK: 2 },
  { label: "s8", splitK: 8 },
  { label: "s32", splitK: 32 },
];

const gpu = await requestGpu({ provider: args.gpu });
const runtime = new GpuRuntime(gpu);
const engine = new Engine(runtime);
const out = Deno.env.get("OUT");
const jsonl: string[] = [];
const emit = (record: Record<string, unknown>) => {
  const line = JSON.stringify(record);
  jsonl.push(line);
  // With OUT set the lines go to $OUT/gpu_matmul.jsonl and only the table is printed.
  if (!out || record.what !== "matmul") console.log(line);
};
emit({
  what: "adapter",
  description: gpu.description,
  backend: gpu.backend,
  f16: gpu.features.f16,
  timestamps: gpu.features.timestamps,
  maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize,
  maxComputeWorkgroupStorageSize: gpu.limits.maxComputeWorkgroupStorageSize,
  maxComputeInvocationsPerWorkgroup: gpu.limits.maxComputeInvocationsPerWorkgroup,
  maxBindingsPerBindGroup: gpu.limits.maxBindingsPerBindGroup,
  adapterInfo: {
    vendor: gpu.adapter.info.vendor,
    architecture: gpu.adapter.info.architecture,
    device: gpu.adapter.info.device,
    description: gpu.adapter.info.description,
  },
  features: [...gpu.adapter.features].sort(),
});
const configs = CONFIGS.filter((c) => {
  if (!c.tile) return true;
  const fits = matmulSharedBytes(c.tile, c.layout) <= gpu.limits.maxComputeWorkgroupStorageSize &&
    (c.tile.bm / c.tile.tm) * (c.tile.bn / c.tile.tn) <= gpu.limits.maxComputeInvocationsPerWorkgroup;
  if (!fits) console.log(`skip ${c.label}: over this device's workgroup limits`);
  return fits;
}).filter((c) => !args.configs || args.configs.split(",").some((l) => c.label === l.trim()))
  .slice(0, args.quick ? 4 : undefined);

/** C[m, n] in float64 from the stored layouts. */
function refEntry(a: Float32Array, b: Float32Array, s: Shape, m: number, n: number): number {
  let sum = 0;
  for (let k = 0; k < s.K; k++) {
    const av = a[s.transA ? k * s.M + m : m * s.K + k]!;
    const bv = b[s.transB ? n * s.K + k : k * s.N + n]!;
    sum += av * bv;
  }
  return sum;
}

/** Largest |got − ref| / (Σ|a·b| + tiny) over sampled entries: f32 error relative to the term sizes. */
function spotCheck(c: Float32Array, a: Float32Array, b: Float32Array, s: Shape, samples: number): number {
  let worst = 0;
  let seed = 12345;
  for (let i = 0; i < samples; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const m = seed % s.M;
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const n = seed % s.N;
    const want = refEntry(a, b, s, m, n);
    const got = c[m * s.N + n]!;
    const err = Number.isNaN(got) ? Infinity : Math.abs(got - want) / Math.sqrt(s.K);
    worst = Math.max(worst, err);
  }
  return worst;
}

function options(s: Shape, c: Config): MatmulIntoOptions {
  return { transA: s.transA, transB: s.transB, tile: c.tile, splitK: c.splitK, layout: c.layout };
}

// 1. Validation at odd sizes, every configuration and transpose case.
{
  let failures = 0;
  for (const c of configs) {
    for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      for (const [M, N, K] of [[301, 203, 181], [260, 196, 1028]] as const) {
        const s: Shape = { name: "check", M, N, K, transA, transB };
        const a = random(M * K, M + K), b = random(K * N, N + 7);
        await engine.tidy(async () => {
          const at = engine.tensor(a, transA ? [K, M] : [M, K]);
          const bt = engine.tensor(b, transB ? [N, K] : [K, N]);
          const ct = engine.empty([M, N]);
          engine.fill(ct, NaN);
          matmulInto(ct, at, bt, options(s, c));
          const got = (await ct.read()) as Float32Array;
          const err = spotCheck(got, a, b, s, 400);
          if (!(err < 1e-5)) {
            failures++;
            console.log(
              `FAIL ${c.label} ${transA ? "T" : "N"}${transB ? "T" : "N"} ${M}x${N}x${K}: err ${err}`,
            );
          }
        });
      }
    }
  }
  emit({ what: "validation", configs: configs.length, failures });
}

// 2. Timing: configurations interleaved over rounds (clocks drift under sustained FMA load, and the
// first use of fresh buffers can be slow), median of all reps of all rounds per configuration.
/** Spot check from two 64-row slices of C (first and last rows), read back without the rest. */
async function checkSlices(c: Tensor, a: Float32Array, b: Float32Array, s: Shape): Promise<number> {
  let worst = 0;
  for (const start of [0, Math.max(0, Math.floor((s.M - 64) / 64) * 64)]) {
    const count = Math.min(64, s.M - start);
    const got = (await c.rows(start, count).read()) as Float32Array;
    for (let i = 0; i < 32; i++) {
      const m = start + ((i * 37) % count), n = (i * 7919) % s.N;
      const want = refEntry(a, b, s, m, n);
      const v = got[(m - start) * s.N + n]!;
      worst = Math.max(worst, Number.isNaN(v) ? Infinity : Math.abs(v - want) / Math.sqrt(s.K));
    }
  }
  return worst;
}

const only = args.shapes?.split(",");
// --scale shrinks every dimension (to a multiple of 4), for trying the script on a CPU adapter.
const scale = Number(args.scale);
const scaled = (d: number) => scale === 1 ? d : Math.max(4, Math.round((d * scale) / 4) * 4);
const ROUNDS = Number(args.rounds);
const rows: string[][] = [];
for (const full of SHAPES.filter((x) => !only || only.some((o) => x.name.includes(o)))) {
  const s = { ...full, M: scaled(full.M), N: scaled(full.N), K: scaled(full.K) };
  const a = random(s.M * s.K, 1), b = random(s.K * s.N, 2);
  const at = engine.tensor(a, s.transA ? [s.K, s.M] : [s.M, s.K]);
  const bt = engine.tensor(b, s.transB ? [s.N, s.K] : [s.K, s.N]);
  const ct = engine.empty([s.M, s.N]);
  const flop = 2 * s.M * s.N * s.K;
  const results = configs.map(() => ({ gpu: [] as number[], wall: [] as number[], err: NaN, failed: "" }));
  for (const [i, cfg] of configs.entries()) {
    try {
      engine.fill(ct, NaN);
      matmulInto(ct, at, bt, options(s, cfg));
      results[i]!.err = await checkSlices(ct, a, b, s);
      matmulInto(ct, at, bt, options(s, cfg));
    } catch (e) {
      results[i]!.failed = (e as Error).message.split("\n")[0]!;
    }
  }
  await runtime.sync();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, cfg] of configs.entries()) {
      if (results[i]!.failed) continue;
      const { gpu: g, wallMs } = await timeReps(runtime, () => matmulInto(ct, at, bt, options(s, cfg)), REPS);
      results[i]!.gpu.push(...g);
      results[i]!.wall.push(wallMs);
    }
  }
  for (const [i, cfg] of configs.entries()) {
    const r = results[i]!;
    if (r.failed) {
      console.log(`error ${s.name} ${cfg.label}: ${r.failed}`);
      continue;
    }
    const gpuMs = median(r.gpu), wallMs = median(r.wall);
    const tflops = flop / ((Number.isNaN(gpuMs) ? wallMs : gpuMs) * 1e-3) / 1e12;
    emit({
      what: "matmul",
      shape: s.name,
      M: s.M,
      N: s.N,
      K: s.K,
      transA: !!s.transA,
      transB: !!s.transB,
      config: cfg.label,
      gpuMs: +gpuMs.toFixed(4),
      gpuMinMs: +Math.min(...r.gpu).toFixed(4),
      wallMs: +wallMs.toFixed(4),
      tflops: +tflops.toFixed(2),
      wallTflops: +(flop / (wallMs * 1e-3) / 1e12).toFixed(2),
      err: +r.err.toExponential(2),
    });
    rows.push([
      s.name,
      `${s.M}x${s.N}x${s.K}`,
      cfg.label,
      gpuMs.toFixed(3),
      wallMs.toFixed(3),
      tflops.toPrecision(3),
      r.err < 1e-5 ? "ok" : `BAD ${r.err.toExponential(1)}`,
    ]);
  }
  at.dispose();
  bt.dispose();
  ct.dispose();
  runtime.trim();
}

const header = ["shape", "MxNxK", "config", "gpu ms", "wall ms", "TFLOP/s", "check"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(
  `\n${gpu.description} (${gpu.backend}), median of ${ROUNDS}×${REPS} reps (timestamp queries), ` +
    `wall = ${REPS} back-to-back reps / ${REPS}`,
);
for (const r of [header, ...rows]) console.log(r.map((v, i) => v.padEnd(widths[i]!)).join("  "));
if (out) await Deno.writeTextFile(`${out}/gpu_matmul_${gpu.backend}.jsonl`, jsonl.join("\n") + "\n");
