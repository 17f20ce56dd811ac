/**
 * Optimiser kernels over a flat arena: gradNormInto (reads 4 B per element), adamwUpdate with clipping
 * (reads params, grads, m, v and writes params, m, v: 28 B per element), both together (32 B), and
 * scaleInto (8 B). 32Mi elements (the seed's ≈ 32M parameters, 128 MiB per arena) on a GPU; 1Mi on a CPU
 * adapter (isFallbackAdapter, or llvmpipe/lavapipe in the description), where only the code path matters.
 *
 * Before timing, one step on constant arenas is checked against the f32 restatement of PyTorch in
 * tests/ref/adamw.ts. Then GPU time per kernel (timestamp queries, when granted) is printed with GB/s;
 * `deno bench` reports wall time per iteration, each iteration waiting for the GPU.
 *
 * Run: `XDG_RUNTIME_DIR=/tmp deno bench -A bench/adamw_bench.ts`
 */
import { Engine } from "../src/tensor/engine.ts";
import { adamwUpdate, gradNormInto, scaleInto } from "../src/tensor/ops/adamw.ts";
import { adamwStepRef } from "../tests/ref/adamw.ts";

const engine = await Engine.create();
const { gpu } = engine.runtime;
const cpu = gpu.adapter.info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(gpu.description);
const n = cpu ? 1 << 20 : 32 << 20;
const arenas = {
  params: engine.empty([n], "f32", "params"),
  grads: engine.empty([n], "f32", "grads"),
  m: engine.zeros([n], "f32", "m"),
  v: engine.zeros([n], "f32", "v"),
};
engine.fill(arenas.params, 0.5);
engine.fill(arenas.grads, 1e-3);
const norm = engine.empty([1], "f32", "grad norm");
const hyper = { lr: 1e-4, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 1e-4, maxNorm: 1 };

// Validate once: every element sees the same inputs, so elements 0 and n−1 stand for all.
gradNormInto(norm, arenas.grads);
adamwUpdate(arenas, norm, { ...hyper, step: 1 });
const gotNorm = (await norm.read())[0]!;
const expectNorm = 1e-3 * Math.sqrt(n);
if (Math.abs(gotNorm - expectNorm) > 1e-5 * expectNorm) {
  throw new Error(`Cannot bench adamw: norm is ${gotNorm}, expected ${expectNorm}`);
}
const ref = { params: new Float64Array([0.5]), m: new Float64Array(1), v: new Float64Array(1) };
adamwStepRef(ref, [1e-3], { ...hyper, step: 1, precision: "f32", norm: gotNorm });
for (
  const [name, t, want] of [["params", arenas.params, ref.params[0]!], ["m", arenas.m, ref.m[0]!]] as const
) {
  const all = await t.read();
  for (const i of [0, n - 1]) {
    if (Math.abs(all[i]! - want) > 2e-7 * Math.abs(want)) {
      throw new Error(`Cannot bench adamw: ${name}[${i}] is ${all[i]}, expected ${want}`);
    }
  }
}

const BYTES: Record<string, number> = {
  adamw_norm_partial: 4 * n,
  adamw_update_clipped: 28 * n,
  adamw_scale: 8 * n,
};
let step = 2;
if (gpu.features.timestamps) {
  const reps = 5;
  const timings = await engine.runtime.profile(() => {
    for (let r = 0; r < reps; r++) {
      gradNormInto(norm, arenas.grads);
      adamwUpdate(arenas, norm, { ...hyper, step: step++ });
      scaleInto(arenas.grads, 1);
    }
  });
  const best = new Map<string, number>();
  for (const { name, ns } of timings) best.set(name, Math.min(best.get(name) ?? Infinity, ns));
  console.log(`adamw on "${gpu.description}", ${n} elements (${(4 * n / 2 ** 20).toFixed(0)} MiB per arena)`);
  for (const [name, ns] of best) {
    const bytes = BYTES[name];
    const rate = bytes === undefined ? "" : `, ${(bytes / ns).toFixed(1)} GB/s`;
    console.log(`  ${name}: ${(ns / 1e3).toFixed(1)} µs GPU (best of ${reps})${rate}`);
  }
}

Deno.bench({
  name: `gradNormInto ${n} elements (${4 * n} B read)`,
  group: "adamw",
  async fn() {
    gradNormInto(norm, arenas.grads);
    await engine.runtime.sync();
  },
});

Deno.bench({
  name: `adamwUpdate clipped ${n} elements (${28 * n} B moved)`,
  group: "adamw",
  baseline: true,
  async fn() {
    adamwUpdate(arenas, norm, { ...hyper, step: step++ });
    await engine.runtime.sync();
  },
});

Deno.bench({
  name: `gradNormInto + adamwUpdate ${n} elements (${32 * n} B moved)`,
  group: "adamw",
  async fn() {
    gradNormInto(norm, arenas.grads);
    adamwUpdate(arenas, norm, { ...hyper, step: step++ });
    await engine.runtime.sync();
  },
});

Deno.bench({
  name: `scaleInto ${n} elements (${8 * n} B moved)`,
  group: "adamw",
  async fn() {
    scaleInto(arenas.grads, 1);
    await engine.runtime.sync();
  },
});
