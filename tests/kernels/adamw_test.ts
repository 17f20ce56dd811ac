import { deepStrictEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, randn } from "../_check.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { adamwUpdate, emaUpdate, gradNormInto, scaleInto } from "../../src/tensor/ops/adamw.ts";
import { type AdamwRefState, adamwStepRef, gradNormRef } from "../ref/adamw.ts";

/** Every 97th element is padding: zero parameter and zero gradient, which must stay zero. */
function padded(data: Float32Array<ArrayBuffer>): Float32Array<ArrayBuffer> {
  for (let i = 5; i < data.length; i += 97) data[i] = 0;
  return data;
}

interface StepCase {
  /** How clipping is set up: maxNorm = factor · true norm, or no norm tensor at all. */
  clip: "active" | "inactive" | "none";
  step: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * Runs `cases` as consecutive optimiser steps with fresh random gradients, comparing after each step
 * with the float64 reference (state carried in float64 from the start) and with the f32 restatement of
 * PyTorch (started from the GPU's state and norm before the step).
 */
async function runSteps(engine: Engine, n: number, cases: StepCase[], chunkElements?: number): Promise<void> {
  const chunk = chunkElements === undefined ? {} : { chunkElements };
  await engine.tidy(async () => {
    const p0 = padded(randn(n, 11 * n + 1));
    const arenas = {
      params: engine.tensor(p0, [n]),
      grads: engine.empty([n]),
      m: engine.zeros([n]),
      v: engine.zeros([n]),
    };
    const norm = engine.empty([1]);
    const ref64: AdamwRefState = {
      params: Float64Array.from(p0),
      m: new Float64Array(n),
      v: new Float64Array(n),
    };
    for (const [k, c] of cases.entries()) {
      const label = `n=${n} step=${c.step} clip=${c.clip}`;
      const g = padded(randn(n, 13 * n + k, 1 + k));
      arenas.grads.write(g);
      const before: AdamwRefState = {
        params: Float64Array.from(await arenas.params.read()),
        m: Float64Array.from(await arenas.m.read()),
        v: Float64Array.from(await arenas.v.read()),
      };
      const exact = gradNormRef(g);
      const maxNorm = c.clip === "active" ? 0.25 * exact : c.clip === "inactive" ? 4 * exact + 1 : 1;
      gradNormInto(norm, arenas.grads, chunk);
      adamwUpdate(arenas, c.clip === "none" ? null : norm, { ...c, maxNorm, ...chunk });
      const gpuNorm = (await norm.read())[0]!;
      assertClose([gpuNorm], [exact], { atol: 0, rtol: 2e-6, name: `norm ${label}` });
      const refMaxNorm = c.clip === "none" ? null : maxNorm;
      adamwStepRef(ref64, g, { ...c, maxNorm: refMaxNorm });
      adamwStepRef(before, g, { ...c, maxNorm: refMaxNorm, precision: "f32", norm: gpuNorm });
      const [p, m, v] = [await arenas.params.read(), await arenas.m.read(), await arenas.v.read()];
      // Against PyTorch's f32 order of operations: an ulp or two.
      assertClose(p, before.params, { atol: 1e-9, rtol: 3e-7, name: `params vs f32 ${label}` });
      assertClose(m, before.m, { atol: 1e-12, rtol: 3e-7, name: `m vs f32 ${label}` });
      assertClose(v, before.v, { atol: 1e-14, rtol: 3e-7, name: `v vs f32 ${label}` });
      // Against the mathematics: f32 accuracy of each quantity's scale.
      assertClose(p, ref64.params, { atol: 1e-6, rtol: 1e-6, name: `params vs f64 ${label}` });
      assertClose(m, ref64.m, { atol: 1e-7, rtol: 1e-5, name: `m vs f64 ${label}` });
      assertClose(v, ref64.v, { atol: 1e-9, rtol: 1e-5, name: `v vs f64 ${label}` });
      for (let i = 5; i < n; i += 97) assert(p[i] === 0 && m[i] === 0 && v[i] === 0, `padding ${i} ${label}`);
    }
  });
}

const hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
const CASES: StepCase[] = [
  { ...hyper, clip: "active", step: 1 },
  { ...hyper, clip: "inactive", step: 2 },
  { ...hyper, clip: "none", step: 3 },
  { ...hyper, clip: "active", step: 40 },
];

for (const n of [1, 37, 1000, 70001]) {
  Deno.test(
    { name: `adamwUpdate and gradNormInto match the references over 4 steps at n=${n}`, ignore },
    async () => {
      await runSteps(await testEngine(), n, CASES);
    },
  );
  // Chunks of 320 elements (5 × 64) split tiles; 4160 (4096 + 64) puts a tile boundary inside each chunk.
  const chunkElements = n <= 1000 ? 320 : 4160;
  Deno.test(
    {
      name: `adamwUpdate and gradNormInto match the references at n=${n} in chunks of ${chunkElements}`,
      ignore,
    },
    async () => {
      await runSteps(await testEngine(), n, CASES, chunkElements);
    },
  );
}

Deno.test(
  { name: "adamwUpdate matches the references with the seed's hyper-parameters", ignore },
  async () => {
    const seed = { lr: 1e-4, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 1e-4 };
    await runSteps(await testEngine(), 4099, [
      { ...seed, clip: "active", step: 1 },
      { ...seed, clip: "active", step: 2 },
      { ...seed, clip: "inactive", step: 3 },
    ]);
  },
);

Deno.test(
  { name: "adamwUpdate follows torch.lerp's other branch when 1 − beta1 >= 0.5", ignore },
  async () => {
    const odd = { lr: 3e-3, beta1: 0.3, beta2: 0.5, eps: 1e-6, weightDecay: 0 };
    await runSteps(await testEngine(), 517, [
      { ...odd, clip: "none", step: 1 },
      { ...odd, clip: "active", step: 2 },
    ], 128);
  },
);

Deno.test({ name: "gradNormInto writes 0 for an empty arena and the norm of a view", ignore }, async () => {
  const engine = await testEngine();
  await engine.tidy(async () => {
    const norm = engine.empty([1]);
    gradNormInto(norm, engine.empty([0]));
    assertEquals(Array.from(await norm.read()), [0]);
    // Rows 64 … 64+299 of a [500, 1] arena: a view at an aligned byte offset.
    const data = randn(500, 3, 1e-3);
    gradNormInto(norm, engine.tensor(data, [500, 1]).rows(64, 300), { chunkElements: 64 });
    assertClose(await norm.read(), [gradNormRef(data.subarray(64, 364))], {
      atol: 0,
      rtol: 2e-6,
      name: "norm",
    });
  });
});

Deno.test({ name: "scaleInto multiplies in place, chunk by chunk", ignore }, async () => {
  const engine = await testEngine();
  await engine.tidy(async () => {
    const n = 70001;
    const data = randn(n, 5);
    const x = engine.tensor(data, [n]);
    scaleInto(x, 0.125, { chunkElements: 1024 });
    scaleInto(x, 1 / 3);
    const want = Float64Array.from(data, (d) => Math.fround(Math.fround(d * 0.125) * Math.fround(1 / 3)));
    assertClose(await x.read(), want, { atol: 0, rtol: 0, name: "scaled" });
  });
});

Deno.test({ name: "emaUpdate matches the float64 average over steps, chunk by chunk", ignore }, async () => {
  const engine = await testEngine();
  await engine.tidy(async () => {
    const n = 70001;
    const start = randn(n, 6);
    const average = engine.tensor(start, [n]);
    const want = Float64Array.from(start);
    for (const [k, decay] of [0, 0.9, 0.999].entries()) {
      const weights = randn(n, 7 + k);
      emaUpdate(engine.tensor(weights, [n]), average, decay, k === 2 ? {} : { chunkElements: 1024 });
      for (let i = 0; i < n; i++) want[i] = want[i]! + (1 - decay) * (weights[i]! - want[i]!);
    }
    assertClose(await average.read(), want, { atol: 1e-6, rtol: 1e-6, name: "average" });
  });
  engine.tidy(() => {
    const a = engine.zeros([10]), b = engine.zeros([12]);
    assertThrows(() => emaUpdate(a, b, 0.9), /average has 12 elements, expected 10/);
    assertThrows(() => emaUpdate(a, a, 1), /decay is 1/);
  });
});

Deno.test({ name: "adamw launchers reject bad arenas and chunk sizes", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    const a = engine.zeros([10]);
    const options = { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1, maxNorm: 1 };
    assertThrows(
      () =>
        adamwUpdate(
          { params: a, grads: engine.zeros([11]), m: engine.zeros([10]), v: engine.zeros([10]) },
          null,
          options,
        ),
      TypeError,
    );
    const arenas = { params: a, grads: engine.zeros([10]), m: engine.zeros([10]), v: engine.zeros([10]) };
    assertThrows(() => adamwUpdate(arenas, null, { ...options, step: 0 }), RangeError);
    assertThrows(() => gradNormInto(engine.zeros([1]), a, { chunkElements: 100 }), RangeError);
    assertThrows(() => gradNormInto(engine.zeros([1], "i32"), a), TypeError);
    assertThrows(() => scaleInto(engine.tensor(new Float32Array(80), [80]).rows(1, 10), 2), RangeError);
  });
});
