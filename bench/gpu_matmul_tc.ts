/**
 * GPU benchmark of the tensor-core products (kernels/matmul_tc.ts, `mixed` precision on Dawn) for the
 * device machine. First validates the launcher's products against float64 references at odd sizes — all
 * four transpose cases, the epilogues, split-K — checking both the f16-operand numerics (operands
 * rounded to f16, sums compared tightly) and the distance from exact f32 operands; then times the
 * 4096³ product and the model's shapes (training, and sampling at batch 1, 8 and 64) for each tile and for
 * the f32 (SIMT) kernels pinned to their large and small tiles, by timestamp queries and wall clock: the
 * configurations take turns over the rounds, and each keeps its fastest round's median.
 *
 *   deno run -A bench/gpu_matmul_tc.ts [--reps 20] [--rounds 3] [--shapes square,lm_head] [--gpu dawn] [--peers]
 *
 * `--peers` runs `bench/torch_matmul.py` in the same call and prints, per shape, ours beside cuBLAS in fp16
 * and TF32 with the ratios.
 *
 * Shapes are written M×N×K (C is M×N, K reduced).
 */
// deno-lint-ignore-file no-console
import {
  TENSOR_CORE_TILES,
  tensorCoreMatmulKernel,
  tensorCoreSharedBytes,
  type TensorCoreTile,
} from "../kernels/matmul_tc.ts";
import { Engine } from "../src/tensor/engine.ts";
import { writeHalves } from "../src/tensor/ops/_halves.ts";
import { matmulInto, type MatmulIntoOptions } from "../src/tensor/ops/matmul.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import {
  MATMUL_SHAPES,
  type MatmulShape,
  refEntry,
  sampledError,
  sampledVerdict,
  toF16,
} from "./_matmul_shapes.ts";
import { random } from "./_random.ts";
import { median, timeReps } from "./_timing.ts";
import { type Comparison, peerMs, printComparison, runPeer } from "./_peers.ts";
import { erf } from "../tests/ref/gelu.ts";
import { benchArgs } from "./_args.ts";

const args = benchArgs("dawn", {
  reps: { type: "string", default: "20" },
  rounds: { type: "string", default: "3" },
  shapes: { type: "string" },
  tiles: { type: "string" },
  peers: { type: "boolean", default: false },
});
const REPS = Number(args.reps), ROUNDS = Number(args.rounds);
const engine = await Engine.create({ gpu: args.gpu, precision: "mixed" });
const runtime = engine.runtime, gpu = runtime.gpu;
const info = gpu.adapter.info as unknown as Record<string, unknown>;
console.log(JSON.stringify({
  what: "adapter",
  description: gpu.description,
  provider: gpu.provider,
  backend: gpu.backend,
  features: gpu.features,
  subgroupMinSize: info.subgroupMinSize,
  subgroupMaxSize: info.subgroupMaxSize,
  maxComputeWorkgroupStorageSize: gpu.limits.maxComputeWorkgroupStorageSize,
  maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize,
}));

/** A pinned configuration: the tile, and whether the operands are f16 copies made beforehand. */
interface Pinned {
  tile: TensorCoreTile;
  halves: boolean;
}
const f32Tiles: Record<string, TensorCoreTile> = {
  ...TENSOR_CORE_TILES,
  "128x128x32 2x4 s2": { bm: 128, bn: 128, bk: 32, wm: 2, wn: 4, stages: 2 },
  "128x128x32 4x2 s2": { bm: 128, bn: 128, bk: 32, wm: 4, wn: 2, stages: 2 },
  "128x128x16 2x2 s2": { bm: 128, bn: 128, bk: 16, wm: 2, wn: 2, stages: 2 },
  "64x128x32 2x2 s2": { bm: 64, bn: 128, bk: 32, wm: 2, wn: 2, stages: 2 },
  "128x128x32 2x2 s2": { bm: 128, bn: 128, bk: 32, wm: 2, wn: 2, stages: 2 },
  // Candidates around the large tile: half the barriers per K, and smaller workgroups (more of them per
  // compute unit).
  "128x128x64 2x2 s1": { bm: 128, bn: 128, bk: 64, wm: 2, wn: 2, stages: 1 },
  "128x64x32 2x1 s1": { bm: 128, bn: 64, bk: 32, wm: 2, wn: 1, stages: 1 },
  "64x128x32 1x2 s1": { bm: 64, bn: 128, bk: 32, wm: 1, wn: 2, stages: 1 },
  // The large tile launched in groups of tile rows (reuse of A rows and B columns in cache).
  "large g4": { ...TENSOR_CORE_TILES.large, group: 4 },
  "large g8": { ...TENSOR_CORE_TILES.large, group: 8 },
  // Two stages with the K loop unrolled by two steps, so that each step reads a constant stage.
  "large s2u": { ...TENSOR_CORE_TILES.large, stages: 2, unrolled: true },
  "medium s2u": { ...TENSOR_CORE_TILES.medium, stages: 2, unrolled: true },
  "small u": { ...TENSOR_CORE_TILES.small, unrolled: true },
};
// f16 operands (converted by TO_HALVES before timing): staged like the f32 tiles, or loaded straight
// from storage ("direct").
const halfTiles: Record<string, TensorCoreTile> = {
  "h large": TENSOR_CORE_TILES.large,
  "h large g8": { ...TENSOR_CORE_TILES.large, group: 8 },
  "h small": TENSOR_CORE_TILES.small,
  "h 128x128x32 2x2 s2": { bm: 128, bn: 128, bk: 32, wm: 2, wn: 2, stages: 2 },
  "h large s2u": { ...TENSOR_CORE_TILES.large, stages: 2, unrolled: true },
  "h 128x128x64 2x2 s1": { bm: 128, bn: 128, bk: 64, wm: 2, wn: 2, stages: 1 },
  "d 128x256x32 2x4": { bm: 128, bn: 256, bk: 32, wm: 2, wn: 4, stages: 1, direct: true },
  "d 128x128x32 2x2": { bm: 128, bn: 128, bk: 32, wm: 2, wn: 2, stages: 1, direct: true },
  "d 128x128x16 2x2": { bm: 128, bn: 128, bk: 16, wm: 2, wn: 2, stages: 1, direct: true },
  "d 64x64x32 1x1": { bm: 64, bn: 64, bk: 32, wm: 1, wn: 1, stages: 1, direct: true },
  "d 128x64x32 2x1": { bm: 128, bn: 64, bk: 32, wm: 2, wn: 1, stages: 1, direct: true },
  "d 64x128x32 1x2": { bm: 64, bn: 128, bk: 32, wm: 1, wn: 2, stages: 1, direct: true },
  "d 256x128x32 4x2": { bm: 256, bn: 128, bk: 32, wm: 4, wn: 2, stages: 1, direct: true },
  "d 64x64x32 2x2": { bm: 64, bn: 64, bk: 32, wm: 2, wn: 2, stages: 1, direct: true },
};
const TILES: Record<string, Pinned> = Object.fromEntries([
  ...Object.entries(f32Tiles).map(([label, tile]) => [label, { tile, halves: false }]),
  ...Object.entries(halfTiles).map(([label, tile]) => [label, { tile, halves: true }]),
]);
// Without subgroup matrices only "auto" runs: the launcher's emulated f16-operand product.
if (!gpu.features.subgroupMatrix) {
  console.log("no subgroup matrices on this device: timing the launcher only");
}
const tiles = Object.entries(TILES).filter(([label, { tile }]) => {
  if (!gpu.features.subgroupMatrix) return false;
  if (args.tiles && !args.tiles.split(",").includes(label)) return false;
  const bytes = tensorCoreSharedBytes(tile, { transB: true });
  if (bytes > gpu.limits.maxComputeWorkgroupStorageSize) {
    console.log(`skip ${label}: ${bytes} bytes of workgroup memory`);
  }
  return bytes <= gpu.limits.maxComputeWorkgroupStorageSize;
});

const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

// 1. Validation through the launcher: odd sizes, transposes, epilogues and split-K.
{
  let failures = 0, checks = 0, worstF16 = 0, worstExact = 0;
  const cases: [number, number, number][] = [
    [37, 53, 29],
    [301, 203, 181],
    [260, 196, 1028],
    [64, 1536, 512],
    [
      512,
      33,
      4100,
    ],
  ];
  for (const [M, N, K] of cases) {
    for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      for (const epilogue of ["none", "bias gelu pre", "accumulate"] as const) {
        const s: MatmulShape = { name: "check", M, N, K, transA, transB };
        const a = random(M * K, M + K + 3),
          b = random(K * N, N + 11),
          bias = random(N, 5),
          prior = random(M * N, 9);
        const a16 = toF16(a), b16 = toF16(b);
        await engine.tidy(async () => {
          const at = engine.tensor(a, transA ? [K, M] : [M, K]);
          const bt = engine.tensor(b, transB ? [N, K] : [K, N]);
          const ct = engine.tensor(epilogue === "accumulate" ? prior : new Float32Array(M * N).fill(NaN), [
            M,
            N,
          ]);
          const pre = engine.tensor(new Float32Array(M * N).fill(NaN), [M, N]);
          const options: MatmulIntoOptions = { transA, transB };
          if (epilogue === "bias gelu pre") {
            Object.assign(options, { bias: engine.tensor(bias, [N]), activation: "gelu", pre });
          }
          if (epilogue === "accumulate") options.accumulate = true;
          matmulInto(ct, at, bt, options);
          const got = (await ct.read()) as Float32Array;
          let worst = 0, exact = 0;
          for (let i = 0; i < 200; i++) {
            const m = (i * 7919 + 13) % M, n = (i * 104729 + 7) % N;
            const finish = (v: number) =>
              epilogue === "bias gelu pre"
                ? gelu(v + bias[n]!)
                : epilogue === "accumulate"
                ? v + prior[m * N + n]!
                : v;
            const want16 = finish(refEntry(a16, b16, s, m, n).sum),
              want = finish(refEntry(a, b, s, m, n).sum);
            const v = got[m * N + n]!;
            worst = Math.max(worst, Number.isFinite(v) ? Math.abs(v - want16) / Math.sqrt(K) : Infinity);
            exact = Math.max(exact, Number.isFinite(v) ? Math.abs(v - want) / Math.sqrt(K) : Infinity);
          }
          checks++;
          worstF16 = Math.max(worstF16, worst);
          worstExact = Math.max(worstExact, exact);
          // f32 sums of exact f16 products: errors far under f16's own 2^-11 relative rounding.
          if (!(worst < 2e-5)) {
            failures++;
            console.log(
              `FAIL ${transA ? "T" : "N"}${transB ? "T" : "N"} ${M}x${N}x${K} ${epilogue}: err ${worst}`,
            );
          }
        });
      }
    }
  }
  console.log(JSON.stringify({ what: "validation", checks, failures, worstF16, worstExact }));
}

// 2. Timing.
function pinned(
  { tile, halves }: Pinned,
  s: MatmulShape,
  operands: { a: Tensor; b: Tensor; a16: Tensor; b16: Tensor },
  c: Tensor,
): () => void {
  const spec = tensorCoreMatmulKernel({ transA: s.transA, transB: s.transB, vec4: true, tile, halves });
  const uniforms = { M: s.M, N: s.N, K: s.K, strideA: 0, strideB: 0, strideC: 0, splits: 1, kChunk: s.K };
  const a = halves ? operands.a16 : operands.a, b = halves ? operands.b16 : operands.b;
  return () =>
    runtime.dispatch(spec, { a, b, c }, uniforms, [Math.ceil(s.N / tile.bn), Math.ceil(s.M / tile.bm), 1]);
}

/** The f16 copy of an operand (what `halves` tiles read), and its conversion to time on its own. */
function f16Copy(x: Tensor): { copy: Tensor; convert: () => void } {
  const copy = engine.empty([Math.ceil(x.size / 2)], "u32", "f16 operand");
  const convert = () => writeHalves(engine, x, copy);
  convert();
  return { copy, convert };
}

const only = args.shapes?.split(",");
const rows: string[][] = [];
const launcher: Comparison[] = [];
for (const s of MATMUL_SHAPES.filter((x) => !only || only.some((o) => x.name.includes(o)))) {
  const a = random(s.M * s.K, 1), b = random(s.K * s.N, 2);
  const at = engine.tensor(a, s.transA ? [s.K, s.M] : [s.M, s.K]);
  const bt = engine.tensor(b, s.transB ? [s.N, s.K] : [s.K, s.N]);
  const ct = engine.empty([s.M, s.N]);
  const flop = 2 * s.M * s.N * s.K;
  const ah = f16Copy(at), bh = f16Copy(bt);
  const operands = { a: at, b: bt, a16: ah.copy, b16: bh.copy };
  const runs: [string, () => void][] = [
    ["auto", () => matmulInto(ct, at, bt, { transA: s.transA, transB: s.transB })],
    // The f32 (SIMT) kernels on the same operands, split over K as the launcher would: where they beat
    // the tensor-core tiles (few rows, short K), the planner should take them.
    ...(["large", "small"] as const).map((tile) =>
      [`simt ${tile}`, () => matmulInto(ct, at, bt, { transA: s.transA, transB: s.transB, tile })] as [
        string,
        () => void,
      ]
    ),
    ...tiles.map(([label, t]) => [label, pinned(t, s, operands, ct)] as [string, () => void]),
    // The conversions a product on f16 copies adds (both operands), timed alone.
    ["to_halves a+b", () => (ah.convert(), bh.convert())],
  ];
  const results = runs.map(() => ({ gpu: [] as number[], wall: [] as number[], err: NaN }));
  const a16 = toF16(a), b16 = toF16(b);
  for (const [i, [label, run]] of runs.entries()) {
    if (label.startsWith("to_halves")) continue;
    engine.fill(ct, NaN);
    run();
    const got = (await ct.rows(0, Math.min(64, s.M)).read()) as Float32Array;
    results[i]!.err = sampledError(got, a16, b16, s);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, [, run]] of runs.entries()) {
      const { gpu: g, wallMs } = await timeReps(runtime, run, REPS);
      results[i]!.gpu.push(median(g));
      results[i]!.wall.push(wallMs);
    }
  }
  for (const [i, [label]] of runs.entries()) {
    const r = results[i]!;
    // The card's clocks drift between slow and fast phases that outlast one configuration's reps (the
    // first configuration of a shape once ran 4× slower than the same kernel pinned): the configurations
    // take turns over the rounds, and each keeps its fastest round.
    const gpuMs = Math.min(...r.gpu), wallMs = Math.min(...r.wall);
    const spread = Math.max(...r.gpu) / gpuMs;
    const tflops = flop / ((Number.isNaN(gpuMs) ? wallMs : gpuMs) * 1e-3) / 1e12;
    console.log(
      JSON.stringify({
        what: "matmul_tc",
        shape: s.name,
        M: s.M,
        N: s.N,
        K: s.K,
        config: label,
        gpuMs,
        wallMs,
        tflops,
        spread,
        err: r.err,
      }),
    );
    if (label === "auto") launcher.push({ work: `${s.name} ${s.M}×${s.N}×${s.K}`, ours: gpuMs, peers: {} });
    rows.push([
      s.name,
      `${s.M}x${s.N}x${s.K}`,
      label,
      gpuMs.toFixed(3),
      wallMs.toFixed(3),
      tflops.toPrecision(3),
      Number.isNaN(spread) ? "-" : spread.toFixed(2),
      label.startsWith("to_halves") ? "-" : sampledVerdict(r.err),
    ]);
  }
  for (const t of [at, bt, ct, ah.copy, bh.copy]) t.dispose();
  runtime.trim();
}
const header = ["shape", "MxNxK", "tile", "gpu ms", "wall ms", "TFLOP/s", "slowest/fastest", "check"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(
  `\n${gpu.description} (${gpu.provider}, ${gpu.backend}), the fastest of ${ROUNDS} rounds' medians of ${REPS} reps`,
);
for (const r of [header, ...rows]) console.log(r.map((v, i) => v.padEnd(widths[i]!)).join("  "));

if (args.peers) {
  const records = await runPeer("torch_matmul.py", ["--reps", "20"]);
  for (const row of launcher) {
    const shape = row.work.slice(0, row.work.lastIndexOf(" "));
    row.peers["cuBLAS fp16"] = peerMs(records, { what: "torch_matmul", shape, mode: "fp16" });
    row.peers["cuBLAS TF32"] = peerMs(records, { what: "torch_matmul", shape, mode: "tf32" });
  }
  printComparison(
    `${gpu.description} (${gpu.provider}): the launcher's choice; ratio = ours / theirs`,
    launcher,
  );
}
