/**
 * Where a tensor-core tile's time goes (kernels/matmul_tc.ts, Dawn with subgroup matrices). For each shape
 * and tile, times by timestamp queries (the variants take turns over 4 rounds of 10 reps; each keeps its
 * fastest round's median, and the table shows its slowest round against that):
 *
 * - `full`: the kernel the launcher runs (checked against float64 of the f16-rounded operands);
 * - `no global loads`: the same with the operand loads returning a constant, so what is left is staging
 *   into workgroup memory, the fragment loads and the multiply-accumulates;
 * - `no staging`: nothing stored to workgroup memory, so the global loads die with it and what is left is
 *   the fragment loads and the multiply-accumulates (on whatever workgroup memory holds);
 * - `half the stores`: two of each invocation's four staged halves stored (the products are wrong): if the
 *   staging time is the stores' issue rate, it halves;
 * - `f16 registers`, `b interleaved`, `both`: candidate schedules, checked like `full` (staging registers
 *   held as f16; each B fragment loaded next to its multiply-accumulates);
 * - `bias`, `bias gelu pre`: the epilogues that go through a per-subgroup f32 staging block, and the same
 *   with the accumulators starting from the bias (`first`: a bias-only tile wholly inside C is stored
 *   straight from its fragments) and with a row of fragments staged per round (`strips`), all checked.
 *
 * Dawn runs without its shader robustness by default (src/gpu/device.ts); run it again with `DIFFLM_DEBUG=1`
 * (robustness on; each dispatch then also flushes, outside the timed passes) to see what Dawn's bounds checks
 * (subgroup-matrix loads predicated, indices clamped) cost, or with
 * `DIFFLM_DAWN_TOGGLES=disable_workgroup_init` to see what zeroing workgroup memory costs.
 *
 *   deno run -A bench/gpu_matmul_tc_anatomy.ts [--shapes square,"ffn up fwd"] [--tiles large,small]
 *     [--epilogues | --epilogues-only]
 *
 * `--shapes` picks products of bench/_matmul_shapes.ts by a part of their names.
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
import type { KernelSpec } from "../src/gpu/kernel.ts";
import { debugLevel } from "../src/host.ts";
import { Engine } from "../src/tensor/engine.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { benchArgs } from "./_args.ts";
import { MATMUL_SHAPES, type MatmulShape, sampledError, sampledVerdict, toF16 } from "./_matmul_shapes.ts";
import { random } from "./_random.ts";
import { median, timeReps } from "./_timing.ts";

const args = benchArgs("dawn", {
  shapes: { type: "string", default: "square,ffn up fwd,attn qkv,ffn down fwd" },
  tiles: { type: "string", default: "large,128x128 2x4 s2" },
  epilogues: { type: "boolean", default: false },
  "epilogues-only": { type: "boolean", default: false },
});
const withEpilogues = args.epilogues || args["epilogues-only"];

const TILES: Record<string, TensorCoreTile> = {
  ...TENSOR_CORE_TILES,
  "128x128 2x4 s2": { bm: 128, bn: 128, bk: 32, wm: 2, wn: 4, stages: 2 },
  "128x128 2x2 s2": { bm: 128, bn: 128, bk: 32, wm: 2, wn: 2, stages: 2 },
  "128x256x16 2x4 s2": { bm: 128, bn: 256, bk: 16, wm: 2, wn: 4, stages: 2 },
  "256x128 4x2 s1": { bm: 256, bn: 128, bk: 32, wm: 4, wn: 2, stages: 1 },
};

/** Timed rounds per variant, the variants taking turns. */
const ROUNDS = 4;

/** Edits of the generated WGSL; each must change it, or the kernel's shape has moved under the bench. */
const EDITS: Record<string, (code: string) => string> = {
  "no global loads": (code) =>
    code.replace(
      /(fn load_[ab]\([^)]*\) -> vec4f \{)/g,
      // A condition the compiler cannot fold keeps the bindings statically used.
      "$1\n  if (row != 0xffffffffu) { return vec4f(f32(col)); }",
    ),
  "no staging": (code) => code.replace(/^\s*[AB]s\[at \+ \du\] = h\.[xyzw];$/gm, ""),
  // Two of every four staged halves (wrong products): whether the stores' count sets the staging time.
  "half the stores": (code) => code.replace(/^\s*[AB]s\[at \+ [23]u\] = h\.[zw];$/gm, ""),
  // Candidates (checked like "full"): the next step's operands held as f16 instead of f32 between load
  // and staging (half the registers across the multiply), and each B fragment loaded just before the
  // multiply-accumulates that use it (fewer fragments live at once).
  "f16 registers": f16Registers,
  "b interleaved": interleaveRightFragments,
  "both": (code) => interleaveRightFragments(f16Registers(code)),
};

/** Holds the staging registers as f16: converted when loaded instead of when stored (the same values). */
function f16Registers(code: string): string {
  return code
    .replace(/var ([ab]r\d+) = vec4f\(0\.0\);/g, "var $1 = vec4<f16>(0.0);")
    .replace(/([ab]r\d+) = (load_[ab]\([^;]*\));/g, "$1 = vec4<f16>($2);")
    .replace(/let h = vec4<f16>\(([ab]r\d+)\);/g, "let h = $1;");
}

/** Variants that compute the product itself, checked against float64. */
const CHECKED = new Set(["full", "f16 registers", "b interleaved", "both"]);

/** Reorders each run of multiply-accumulates by B fragment and loads each B fragment just before its run. */
function interleaveRightFragments(code: string): string {
  const rightLoad = /^\s*let (b\d+_\d+) = subgroupMatrixLoad<subgroup_matrix_right/;
  const mma = /^\s*acc\d+_\d+ = subgroupMatrixMultiplyAccumulate\(a\d+_\d+, (b\d+_\d+), /;
  const loads = new Map<string, string>();
  const out: string[] = [];
  let run: string[] = [];
  const flush = () => {
    const byFragment = Map.groupBy(run, (line) => line.match(mma)![1]!);
    for (const [fragment, lines] of byFragment) out.push(loads.get(fragment)!, ...lines);
    run = [];
  };
  for (const line of code.split("\n")) {
    const load = line.match(rightLoad);
    if (load) loads.set(load[1]!, line);
    else if (mma.test(line)) run.push(line);
    else {
      if (run.length > 0) flush();
      out.push(line);
    }
  }
  return out.join("\n");
}

const engine = await Engine.create({ gpu: args.gpu, precision: "mixed" });
// Dawn keeps its shader robustness on only when debugging (src/gpu/device.ts).
const robustness = debugLevel() > 0;
const toggles = Deno.env.get("DIFFLM_DAWN_TOGGLES") ?? "";
const runtime = engine.runtime, gpu = runtime.gpu;
if (!gpu.features.subgroupMatrix) {
  console.error(`${gpu.description} (${gpu.provider}) has no subgroup matrices: nothing to take apart`);
  Deno.exit(1);
}
console.log(JSON.stringify({
  what: "adapter",
  description: gpu.description,
  provider: gpu.provider,
  toggles,
  robustness,
}));

const uniformsOf = (s: MatmulShape) => ({
  M: s.M,
  N: s.N,
  K: s.K,
  strideA: 0,
  strideB: 0,
  strideC: 0,
  splits: 1,
  kChunk: s.K,
});

// The card idles at low clocks between short bursts: run the square product for a while first.
{
  const s = { name: "square", M: 4096, N: 4096, K: 4096 };
  const a = engine.tensor(random(s.M * s.K, 1), [s.M, s.K]),
    b = engine.tensor(random(s.K * s.N, 2), [s.K, s.N]);
  const c = engine.empty([s.M, s.N]);
  const spec = tensorCoreMatmulKernel({ vec4: true });
  const grid: [number, number, number] = [
    s.N / TENSOR_CORE_TILES.large.bn,
    s.M / TENSOR_CORE_TILES.large.bm,
    1,
  ];
  for (let i = 0; i < 300; i++) runtime.dispatch(spec, { a, b, c }, uniformsOf(s), grid);
  await runtime.sync();
  for (const t of [a, b, c]) t.dispose();
}

const rows: string[][] = [];
const wanted = args.shapes.split(",");
const shapes = MATMUL_SHAPES.filter((x) => wanted.some((w) => x.name.includes(w)));
if (shapes.length === 0) throw new TypeError(`--shapes ${args.shapes} names none of bench/_matmul_shapes.ts`);
for (const s of shapes) {
  const aHost = random(s.M * s.K, 1), bHost = random(s.K * s.N, 2);
  const a16 = toF16(aHost), b16 = toF16(bHost);
  const a = engine.tensor(aHost, s.transA ? [s.K, s.M] : [s.M, s.K]);
  const b = engine.tensor(bHost, s.transB ? [s.N, s.K] : [s.K, s.N]);
  const biasHost = random(s.N, 3);
  const bias = engine.tensor(biasHost, [s.N]);
  const c = engine.empty([s.M, s.N]), pre = engine.empty([s.M, s.N]);
  const flop = 2 * s.M * s.N * s.K;
  for (const tileName of args.tiles.split(",")) {
    const tile = TILES[tileName];
    if (!tile) throw new TypeError(`unknown tile ${tileName}: one of ${Object.keys(TILES).join(", ")}`);
    if (tensorCoreSharedBytes(tile, s) > gpu.limits.maxComputeWorkgroupStorageSize) {
      console.log(`skip ${tileName} on ${s.name}: too much workgroup memory`);
      continue;
    }
    const base = tensorCoreMatmulKernel({ transA: s.transA, transB: s.transB, vec4: true, tile });
    const variants: [string, KernelSpec, Record<string, Tensor>][] = [["full", base, { a, b, c }]];
    for (const [edit, apply] of args["epilogues-only"] ? [] : Object.entries(EDITS)) {
      const edited = apply(base.code);
      if (edited === base.code) throw new Error(`edit "${edit}" no longer changes ${base.name}`);
      // The entry point is the kernel's name: rename both, so the pipeline cache keeps them apart.
      const name = `${base.name}_${edit.replaceAll(" ", "_")}`;
      const code = edited.replace(`fn ${base.name}(`, `fn ${name}(`);
      variants.push([edit, { ...base, name, code }, { a, b, c }]);
    }
    if (withEpilogues) {
      const variant = { transA: s.transA, transB: s.transB, vec4: true, tile, bias: true };
      const limit = gpu.limits.maxComputeWorkgroupStorageSize;
      for (const staging of ["", "first", "strips", "first strips"]) {
        const options = { biasFirst: staging.includes("first"), strips: staging.includes("strips") };
        if (tensorCoreSharedBytes(tile, { ...s, ...variant, ...options }) > limit) continue;
        const suffix = staging ? ` ${staging}` : "";
        variants.push([`bias${suffix}`, tensorCoreMatmulKernel({ ...variant, ...options }), {
          a,
          b,
          c,
          bias,
        }]);
        variants.push([
          `bias gelu pre${suffix}`,
          tensorCoreMatmulKernel({ ...variant, ...options, gelu: true, pre: true }),
          { a, b, c, bias, pre },
        ]);
      }
    }
    const grid: [number, number, number] = [Math.ceil(s.N / tile.bn), Math.ceil(s.M / tile.bm), 1];
    const runs = variants.map(([label, spec, bindings]) => ({
      label,
      run: () => runtime.dispatch(spec, bindings, uniformsOf(s), grid),
      check: "-",
      rounds: [] as number[],
    }));
    for (const v of runs) {
      engine.fill(c, NaN);
      engine.fill(pre, NaN);
      v.run();
      if (CHECKED.has(v.label)) {
        const worst = sampledError((await c.rows(0, Math.min(64, s.M)).read()) as Float32Array, a16, b16, s);
        v.check = sampledVerdict(worst);
      } else if (v.label.startsWith("bias")) {
        // The product is what the epilogue wrote (the pre-activation where GELU follows) less the bias.
        const out = v.label.includes("pre") ? pre : c;
        const top = Float32Array.from((await out.rows(0, Math.min(64, s.M)).read()) as Float32Array);
        for (let i = 0; i < top.length; i++) top[i]! -= biasHost[i % s.N]!;
        v.check = sampledVerdict(sampledError(top, a16, b16, s));
      }
    }
    // The card's clocks drift between slow and fast phases that outlast one variant's reps: the variants
    // take turns over several rounds, and each keeps its fastest round's median.
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of runs) v.rounds.push(median((await timeReps(runtime, v.run, 10)).gpu));
    }
    for (const v of runs) {
      const label = v.label, check = v.check, ms = Math.min(...v.rounds);
      const spread = Math.max(...v.rounds) / ms;
      console.log(
        JSON.stringify({ what: "anatomy", shape: s.name, tile: tileName, variant: label, ms, spread, check }),
      );
      rows.push([
        s.name,
        `${s.M}x${s.N}x${s.K}`,
        tileName,
        label,
        ms.toFixed(3),
        (flop / ms / 1e9).toFixed(1),
        spread.toFixed(2),
        check,
      ]);
    }
  }
  for (const t of [a, b, c, pre, bias]) t.dispose();
  runtime.trim();
}
const header = ["shape", "MxNxK", "tile", "variant", "gpu ms", "TFLOP/s", "slowest/fastest", "check"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(
  `\n${gpu.description} (${gpu.provider}), toggles: ${toggles || "none"}, robustness ${
    robustness ? "on" : "off"
  }`,
);
for (const r of [header, ...rows]) console.log(r.map((v, i) => v.padEnd(widths[i]!)).join("  "));
