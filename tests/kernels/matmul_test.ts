import assert from "node:assert/strict";
import { ignore, mixedTestEngine, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randn } from "../_check.ts";
import { parseBindings } from "../../src/gpu/kernel.ts";
import type { KernelSpec } from "../../src/gpu/kernel.ts";
import {
  biasGradKernel,
  MATMUL_TILES,
  matmulKernel,
  type MatmulLayout,
  matmulReduceKernel,
  matmulSharedBytes,
  type MatmulTile,
} from "../../kernels/matmul.ts";
import {
  biasGradInto,
  linear,
  linearConcat,
  linearParts,
  matmul,
  matmulInto,
  matmulResidual,
  matmulShape,
} from "../../src/tensor/ops/matmul.ts";
import { attention } from "../../src/tensor/ops/attention.ts";
import { add, concat } from "../../src/tensor/ops/elementwise.ts";
import { layerNormFilm } from "../../src/tensor/ops/layer_norm.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { columnSumRef, matmulRef, type MatmulSizes } from "../ref/matmul.ts";
import { assertSameBits, fusedAndUnfused, type SplitProductCase } from "./_split_product.ts";

interface Case extends MatmulSizes {
  bias?: boolean;
  gelu?: boolean;
  pre?: boolean;
  /** Multiply by GELU' of a random pre-activation (GELU's backward in the epilogue). */
  geluGrad?: boolean;
  accumulate?: boolean;
  tile?: "large" | "small" | MatmulTile;
  splitK?: number;
  layout?: MatmulLayout;
  atol?: number;
}

const describe = (c: Case) =>
  `${c.transA ? "T" : "N"}${c.transB ? "T" : "N"} M=${c.M} N=${c.N} K=${c.K}` +
  `${(c.batch ?? 1) > 1 ? ` batch=${c.batch}` : ""}${c.bias ? " +bias" : ""}${c.gelu ? " +gelu" : ""}` +
  `${c.pre ? "(pre)" : ""}${c.geluGrad ? " ·gelu'" : ""}${c.accumulate ? " +=" : ""}${
    c.tile ? ` tile=${JSON.stringify(c.tile)}` : ""
  }` +
  `${c.splitK ? ` splitK=${c.splitK}` : ""}${c.layout ? ` layout=${c.layout}` : ""}`;

/** Runs one product on the GPU (outputs poisoned) and compares with the float64 reference. */
async function check(c: Case, seed: number): Promise<void> {
  const engine = await testEngine();
  const { M, N, K, batch = 1, transA = false, transB = false } = c;
  const a = randn(batch * M * K, seed);
  const b = randn(batch * K * N, seed + 1);
  const bias = c.bias ? randn(N, seed + 2) : undefined;
  const initial = c.accumulate ? randn(batch * M * N, seed + 3) : undefined;
  // Pre-activations over GELU's curved range (GELU' runs from about -0.1 to 1.1 there).
  const geluGrad = c.geluGrad ? randn(batch * M * N, seed + 4, 2) : undefined;
  const lead = batch > 1 ? [batch] : [];
  await engine.tidy(async () => {
    const at = engine.tensor(a, [...lead, ...(transA ? [K, M] : [M, K])]);
    const bt = engine.tensor(b, [...lead, ...(transB ? [N, K] : [K, N])]);
    const out = initial ? engine.tensor(initial, [...lead, M, N]) : engine.empty([...lead, M, N]);
    const pre = c.pre ? engine.empty([...lead, M, N]) : undefined;
    matmulInto(out, at, bt, {
      transA,
      transB,
      bias: bias ? engine.tensor(bias, [N]) : undefined,
      activation: c.gelu ? "gelu" : undefined,
      pre,
      geluGrad: geluGrad ? engine.tensor(geluGrad, [...lead, M, N]) : undefined,
      accumulate: c.accumulate,
      tile: c.tile,
      splitK: c.splitK,
      layout: c.layout,
    });
    const want = matmulRef(a, b, { batch, M, N, K, transA, transB, bias, gelu: c.gelu, geluGrad, initial });
    const tol = { atol: c.atol ?? 1e-4, rtol: 1e-4 };
    assertClose(await out.read(), want.out, { ...tol, name: `out ${describe(c)}` });
    if (pre) assertClose(await pre.read(), want.pre, { ...tol, name: `pre ${describe(c)}` });
  });
}

const cases: Case[] = [];
// Every transpose case on both tiles and both layouts: odd sizes (scalar storage) and multiples of 4
// (vec4 storage), none a multiple of a tile.
for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
  for (const tile of ["large", "small"] as const) {
    for (const layout of ["rows", "flat"] as const) {
      cases.push({ M: 37, N: 29, K: 53, transA, transB, tile, layout });
      cases.push({ M: 68, N: 44, K: 52, transA, transB, tile, layout });
    }
  }
}
// Epilogues, batches, split-K and edge sizes; a tile with two load slots per invocation.
const deep: MatmulTile = { bm: 64, bn: 128, bk: 16, tm: 4, tn: 8 };
cases.push(
  { M: 37, N: 29, K: 53, transB: true, tile: deep },
  { M: 68, N: 44, K: 52, tile: deep },
  { M: 67, N: 130, K: 36, transA: true, tile: deep },
  { M: 67, N: 130, K: 36, transA: true, tile: deep, layout: "flat" },
  { M: 130, N: 260, K: 44, transB: true, tile: { bm: 128, bn: 256, bk: 8, tm: 8, tn: 16 } },
  { M: 260, N: 130, K: 44, transA: true, tile: { bm: 256, bn: 128, bk: 8, tm: 16, tn: 8 } },
  { M: 37, N: 29, K: 53, transB: true, bias: true, tile: "small" },
  { M: 68, N: 44, K: 52, transB: true, bias: true, tile: "large" },
  { M: 37, N: 29, K: 53, transB: true, bias: true, gelu: true, pre: true, tile: "large" },
  { M: 68, N: 44, K: 52, transB: true, bias: true, gelu: true, pre: true, tile: "small" },
  { M: 68, N: 44, K: 52, transB: true, gelu: true, tile: "small" },
  { M: 37, N: 29, K: 53, accumulate: true, tile: "small" },
  { M: 68, N: 44, K: 52, transA: true, accumulate: true, tile: "large" },
  { M: 68, N: 44, K: 52, transB: true, bias: true, gelu: true, pre: true, accumulate: true, tile: "small" },
  { M: 37, N: 29, K: 53, batch: 3, tile: "small" },
  { M: 68, N: 44, K: 52, batch: 2, transA: true, tile: "large" },
  { M: 37, N: 29, K: 53, batch: 2, transB: true, accumulate: true },
  { M: 37, N: 29, K: 301, transA: true, accumulate: true, splitK: 4, tile: "small", atol: 3e-4 },
  { M: 68, N: 44, K: 520, splitK: 3, tile: "large", atol: 3e-4 },
  { M: 20, N: 12, K: 64, batch: 2, transB: true, splitK: 5, tile: "small" },
  { M: 21, N: 36, K: 300, transB: true, bias: true, splitK: 4, tile: "small", atol: 3e-4 },
  { M: 21, N: 36, K: 300, transB: true, bias: true, accumulate: true, splitK: 3, atol: 3e-4 },
  { M: 64, N: 64, K: 512, transB: true, bias: true, accumulate: true, atol: 3e-4 },
  { M: 21, N: 36, K: 300, transB: true, bias: true, gelu: true, splitK: 4, tile: "small", atol: 3e-4 },
  { M: 21, N: 36, K: 300, transB: true, bias: true, gelu: true, pre: true, splitK: 3, atol: 3e-4 },
  { M: 64, N: 96, K: 512, transB: true, bias: true, gelu: true, pre: true, accumulate: true, atol: 3e-4 },
  { M: 1, N: 64, K: 128, transB: true, bias: true },
  // GELU's backward in the epilogue: scalar and vec4 storage, both tiles, a batch, split-K (in the reduction).
  { M: 37, N: 29, K: 53, geluGrad: true, tile: "small" },
  { M: 37, N: 29, K: 53, geluGrad: true, tile: "large", layout: "flat" },
  { M: 68, N: 44, K: 52, geluGrad: true, tile: "small" },
  { M: 68, N: 44, K: 52, transA: true, transB: true, geluGrad: true, accumulate: true, tile: "large" },
  { M: 37, N: 29, K: 53, batch: 2, transB: true, geluGrad: true },
  { M: 37, N: 29, K: 301, geluGrad: true, splitK: 4, tile: "small", atol: 3e-4 },
  { M: 68, N: 44, K: 520, geluGrad: true, accumulate: true, splitK: 3, tile: "large", atol: 3e-4 },
  { M: 37, N: 29, K: 1 },
  { M: 37, N: 1, K: 29, transB: true },
  { M: 1, N: 1, K: 1, transA: true, transB: true },
  { M: 129, N: 131, K: 17, tile: "large" },
  { M: 65, N: 67, K: 9, transA: true, transB: true, tile: "small" },
  { M: 256, N: 192, K: 160, atol: 3e-4 },
  { M: 256, N: 192, K: 160, transB: true, bias: true, gelu: true, pre: true, tile: "large", atol: 3e-4 },
);

Deno.test({ name: "matmul matches the float64 reference", ignore }, async (t) => {
  for (const [i, c] of cases.entries()) {
    await t.step(describe(c), () => check(c, 100 + 10 * i));
  }
});

Deno.test(
  { name: "matmulInto cuts products over the storage binding size into row chunks", ignore },
  async () => {
    const engine = await testEngine();
    const limit = engine.runtime.gpu.limits.maxStorageBufferBindingSize;
    // A product whose result alone exceeds one binding, with a cheap K.
    const N = 4096, K = 4, M = Math.ceil(limit / (N * 4) / 64) * 64 + 64;
    if ((M * N * 4) / 2 ** 20 > 600) return; // only on adapters with small bindings (lavapipe: 128 MiB)
    const a = randn(M * K, 5), b = randn(K * N, 6);
    await engine.tidy(async () => {
      // Engine.fill binds the whole tensor, so poison this one in row chunks by hand.
      engine.poison = false;
      const out = engine.empty([M, N]);
      engine.poison = true;
      for (let r = 0; r < M; r += 4096) engine.fill(out.rows(r, Math.min(4096, M - r)), NaN);
      matmulInto(out, engine.tensor(a, [M, K]), engine.tensor(b, [K, N]));
      const got = await out.read();
      // Compare the first and last rows of each chunk region against the reference.
      for (const row of [0, 1, M - 65, M - 64, M - 1]) {
        const want = matmulRef(a.subarray(row * K, (row + 1) * K), b, { M: 1, N, K }).out;
        assertClose(got.subarray(row * N, (row + 1) * N), want, { name: `row ${row}` });
      }
    });
  },
);

Deno.test({ name: "bias_grad matches the float64 column sums at rows=37 and rows=600", ignore }, async () => {
  const engine = await testEngine();
  for (const [rows, cols] of [[37, 29], [600, 70]] as const) {
    const dy = randn(rows * cols, rows), db0 = randn(cols, cols);
    await engine.tidy(async () => {
      const db = engine.tensor(db0, [cols]);
      biasGradInto(db, engine.tensor(dy, [rows, cols]));
      const want = columnSumRef(dy, rows, cols).map((v, i) => v + db0[i]!);
      assertClose(await db.read(), want, { atol: 1e-4, name: `db rows=${rows}` });
    });
  }
});

Deno.test("matmulShape reads batches, merged leading dimensions and transposes", () => {
  assert.deepEqual(matmulShape([4, 16, 32], [64, 32], { transB: true }), {
    batch: 1,
    M: 64,
    N: 64,
    K: 32,
    outShape: [4, 16, 64],
  });
  assert.deepEqual(matmulShape([2, 3, 5, 7], [2, 3, 7, 4]).outShape, [2, 3, 5, 4]);
  assert.equal(matmulShape([2, 3, 5, 7], [2, 3, 7, 4]).batch, 6);
  assert.deepEqual(matmulShape([10, 6], [10, 8], { transA: true }), {
    batch: 1,
    M: 6,
    N: 8,
    K: 10,
    outShape: [6, 8],
  });
  assert.throws(() => matmulShape([2, 3], [4, 5]), {
    name: "TypeError",
    message: "Cannot run matmul: b has shape [4,5], expected [..,3,N] to match a [2,3]",
  });
  assert.throws(() => matmulShape([3], [3, 5]), {
    name: "TypeError",
    message: "Cannot run matmul: a has shape [3], expected [..,M,K]",
  });
  assert.throws(() => matmulShape([2, 3, 4], [3, 4, 5]), TypeError);
  assert.throws(() => matmulShape([3, 4], [2, 4, 5]), TypeError);
});

Deno.test({ name: "matmulInto and linear reject mismatched outputs and biases", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    const a = engine.zeros([3, 4]), b = engine.zeros([4, 5]);
    assert.throws(() => matmulInto(engine.zeros([3, 4]), a, b), {
      name: "TypeError",
      message: "Cannot run matmulInto: out has shape [3,4], expected 15 elements as [..,5]",
    });
    assert.throws(() => matmulInto(engine.zeros([3, 5]), a, b, { bias: engine.zeros([4]) }), TypeError);
    assert.throws(() => matmulInto(engine.zeros([3, 5]), engine.zeros([3, 4], "i32"), b), {
      name: "TypeError",
      message: "Cannot run matmulInto: a has dtype i32, expected f32",
    });
    assert.throws(() => matmulResidual(engine.zeros([3, 5]), a, b, { bias: engine.zeros([4]) }), {
      name: "TypeError",
      message: "Cannot run matmulResidual: bias has shape [4], expected [5]",
    });
    assert.throws(() => linear(a, engine.zeros([5, 3])), {
      name: "TypeError",
      message: "Cannot run linear: weight has shape [5,3], expected [out,4] for x [3,4]",
    });
    assert.throws(() => linear(a, engine.zeros([5, 4]), engine.zeros([4])), TypeError);
    assert.throws(() => matmulInto(engine.zeros([3, 5]), a, b, { geluGrad: engine.zeros([3, 4]) }), {
      name: "TypeError",
      message: "Cannot run matmulInto: geluGrad has shape [3,4], expected the shape of out [3,5]",
    });
    assert.throws(
      () =>
        matmulInto(engine.zeros([3, 5]), a, b, { geluGrad: engine.zeros([3, 5]), bias: engine.zeros([5]) }),
      { name: "TypeError", message: "Cannot run matmulInto: geluGrad is given with a bias or an activation" },
    );
    assert.throws(() => matmulKernel({ geluGrad: true, gelu: true }), TypeError);
    assert.throws(() => matmulReduceKernel(false, true, { geluGrad: true }), TypeError);
  });
});

Deno.test({ name: "matmul kernels compile and their bindings match the specs", ignore }, async () => {
  const engine = await testEngine();
  const specs: KernelSpec[] = [
    matmulReduceKernel(false),
    matmulReduceKernel(true),
    matmulReduceKernel(false, true),
    matmulReduceKernel(true, true),
    matmulReduceKernel(false, true, { gelu: true }),
    matmulReduceKernel(false, true, { gelu: true, pre: true }),
    matmulReduceKernel(true, true, { gelu: true, pre: true }),
    matmulReduceKernel(false, false, { geluGrad: true }),
    matmulReduceKernel(true, false, { geluGrad: true }),
    biasGradKernel(false),
    biasGradKernel(true),
  ];
  const tiles: MatmulTile[] = [MATMUL_TILES.large, MATMUL_TILES.small, {
    bm: 64,
    bn: 128,
    bk: 16,
    tm: 4,
    tn: 8,
  }];
  const epilogues = [{}, { bias: true }, { gelu: true }, {
    bias: true,
    gelu: true,
    pre: true,
    accumulate: true,
  }];
  for (const tile of tiles) {
    for (const vec4 of [false, true]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const e of epilogues) {
            for (const layout of ["rows", "flat"] as const) {
              specs.push(matmulKernel({ tile, vec4, transA, transB, layout, ...e }));
              if (transA) continue;
              for (const f16Operands of [false, true]) {
                specs.push(
                  matmulKernel({
                    tile,
                    vec4,
                    transB,
                    layout,
                    ...e,
                    f16Operands,
                    prologue: "parts_bias_gelu",
                  }),
                );
              }
            }
          }
        }
      }
    }
  }
  // GELU's backward epilogue: every transpose on scalar and vec4 storage, with f16 operands too.
  for (const vec4 of [false, true]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const e = { vec4, transA, transB, geluGrad: true };
        specs.push(matmulKernel(e), matmulKernel({ ...e, accumulate: true, f16Operands: true }));
      }
    }
  }
  assert.equal(matmulSharedBytes(MATMUL_TILES.large, "flat"), 16384);
  assert.equal(matmulSharedBytes(MATMUL_TILES.large), 17408);
  for (const spec of specs) {
    await engine.runtime.compile(spec);
    const parsed = parseBindings(spec.code);
    assert.deepEqual(
      parsed.storage.map((s) => [s.name, s.access]),
      [...spec.reads.map((n) => [n, "read"]), ...spec.writes.map((n) => [n, "read_write"])],
      spec.name,
    );
    assert.deepEqual(parsed.storage.map((s) => s.binding), parsed.storage.map((_, i) => i), spec.name);
    assert.deepEqual(parsed.uniforms?.fields, Object.entries(spec.uniforms ?? {}), spec.name);
    assert.equal(parsed.uniforms?.binding, spec.reads.length + spec.writes.length, spec.name);
  }
});

for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
  const name = `${transA ? "T" : "N"}${transB ? "T" : "N"}`;
  Deno.test({ name: `matmul ${name} gradient matches finite differences`, ignore }, async () => {
    const [M, N, K] = [5, 6, 7];
    await checkGradients(await testEngine(), {
      name: `matmul ${name}`,
      inputs: {
        a: { data: randn(M * K, 11), shape: transA ? [K, M] : [M, K] },
        b: { data: randn(K * N, 12), shape: transB ? [N, K] : [K, N] },
      },
      wrt: ["a", "b"],
      forward: ({ a, b }) => matmul(a!, b!, { transA, transB }),
    });
  });
}

Deno.test({ name: "batched matmul gradient matches finite differences", ignore }, async () => {
  await checkGradients(await testEngine(), {
    name: "batched matmul",
    inputs: {
      a: { data: randn(2 * 3 * 4, 13), shape: [2, 3, 4] },
      b: { data: randn(2 * 5 * 4, 14), shape: [2, 5, 4] },
    },
    wrt: ["a", "b"],
    forward: ({ a, b }) => matmul(a!, b!, { transB: true }),
  });
});

Deno.test(
  { name: "matmul of a 3-D input by a matrix: gradient matches finite differences", ignore },
  async () => {
    await checkGradients(await testEngine(), {
      name: "matmul 3-D × 2-D",
      inputs: {
        a: { data: randn(2 * 3 * 4, 15), shape: [2, 3, 4] },
        b: { data: randn(4 * 5, 16), shape: [4, 5] },
      },
      wrt: ["a", "b"],
      forward: ({ a, b }) => matmul(a!, b!),
    });
  },
);

for (const activation of [undefined, "gelu"] as const) {
  for (const withBias of [true, false]) {
    const label = `linear${withBias ? " with bias" : ""}${activation ? " and gelu" : ""}`;
    Deno.test({ name: `${label}: gradient matches finite differences`, ignore }, async () => {
      const inputs: Record<string, { data: Float32Array<ArrayBuffer>; shape: number[] }> = {
        x: { data: randn(2 * 3 * 5, 17), shape: [2, 3, 5] },
        w: { data: randn(4 * 5, 18, 0.5), shape: [4, 5] },
      };
      if (withBias) inputs.bias = { data: randn(4, 19), shape: [4] };
      await checkGradients(await testEngine(), {
        name: label,
        inputs,
        wrt: Object.keys(inputs),
        forward: ({ x, w, bias }) => linear(x!, w!, bias, { activation }),
      });
    });
  }
}

// A GELU output read by one linear, and by two whose gradients add up.
for (const readers of [1, 2]) {
  const label = `linear through gelu into ${readers === 1 ? "one linear" : "two linears"}`;
  Deno.test({ name: `${label}: gradient matches finite differences`, ignore }, async () => {
    await checkGradients(await testEngine(), {
      name: label,
      inputs: {
        x: { data: randn(2 * 3 * 5, 24), shape: [2, 3, 5] },
        w1: { data: randn(7 * 5, 25, 0.5), shape: [7, 5] },
        b1: { data: randn(7, 26), shape: [7] },
        w2: { data: randn(4 * 7, 27, 0.5), shape: [4, 7] },
        w3: { data: randn(4 * 7, 28, 0.5), shape: [4, 7] },
      },
      wrt: ["x", "w1", "b1", "w2", "w3"].slice(0, readers === 1 ? 4 : 5),
      forward: ({ x, w1, b1, w2, w3 }) => {
        const h = linear(x!, w1!, b1, { activation: "gelu" });
        return readers === 1 ? linear(h, w2!) : add(linear(h, w2!), linear(h, w3!));
      },
    });
  });
}

Deno.test({ name: "linear forward matches the float64 reference with bias and gelu", ignore }, async () => {
  const engine = await testEngine();
  const [R, inF, outF] = [37, 29, 53];
  const x = randn(R * inF, 21), w = randn(outF * inF, 22), b = randn(outF, 23);
  await engine.tidy(async () => {
    const y = linear(engine.tensor(x, [R, inF]), engine.tensor(w, [outF, inF]), engine.tensor(b, [outF]), {
      activation: "gelu",
    });
    assert.deepEqual(y.shape, [R, outF]);
    const want = matmulRef(x, w, { M: R, N: outF, K: inF, transB: true, bias: b, gelu: true }).out;
    assertClose(await y.read(), want, { atol: 1e-4, rtol: 1e-4, name: "linear" });
  });
});

Deno.test(
  {
    name: "few large tiles over a short K run on small tiles with the large tiles' sums, bit for bit",
    ignore,
  },
  async () => {
    const engine = await testEngine();
    // 512×256×400: 8 large tiles, K split 3 ways in chunks of 136 (not a multiple of the small tile's 16).
    const [M, N, K] = [512, 256, 400];
    const a = randn(M * K, 131), b = randn(N * K, 132);
    await engine.tidy(async () => {
      const at = engine.tensor(a, [M, K]), bt = engine.tensor(b, [N, K]);
      const auto = engine.empty([M, N]), large = engine.empty([M, N]);
      const runtime = engine.runtime, dispatch = runtime.dispatch;
      const kernels: string[] = [];
      runtime.dispatch = (spec, ...rest) => {
        kernels.push(spec.name);
        return dispatch.call(runtime, spec, ...rest);
      };
      try {
        matmulInto(auto, at, bt, { transB: true });
      } finally {
        runtime.dispatch = dispatch;
      }
      assert.deepEqual(kernels.filter((k) => k.startsWith("matmul")), [
        "matmul_nt_64x64x16_4x4_v4",
        "matmul_reduce",
      ]);
      matmulInto(large, at, bt, { transB: true, tile: "large", splitK: 3 });
      const got = await auto.read();
      assert.deepEqual(got, await large.read());
      assertClose(got, matmulRef(a, b, { M, N, K, transB: true }).out, { atol: 1e-4, rtol: 1e-4, name: "C" });
    });
  },
);

/** The text of WGSL function `name` in `code`, through its closing brace at the start of a line. */
function wgslFunction(code: string, name: string): string {
  const start = code.indexOf(`fn ${name}(`);
  assert.ok(start >= 0, `no fn ${name}`);
  return code.slice(start, code.indexOf("\n}", start) + 2);
}

Deno.test("a prologue changes only how A is loaded; without one, A is loaded as B is", () => {
  for (const tile of Object.values(MATMUL_TILES)) {
    for (const vec4 of [false, true]) {
      for (const f16Operands of [false, true]) {
        for (const e of [{}, { bias: true, accumulate: true }, { bias: true, gelu: true, pre: true }]) {
          const plain = matmulKernel({ tile, vec4, transB: true, f16Operands, ...e });
          const loadB = wgslFunction(plain.code, "load_b");
          assert.equal(
            wgslFunction(plain.code, "load_a"),
            loadB.replaceAll("b[", "a[").replace("load_b", "load_a"),
          );
          const fused = matmulKernel({
            tile,
            vec4,
            transB: true,
            f16Operands,
            ...e,
            prologue: "parts_bias_gelu",
          });
          assert.equal(fused.name, `${plain.name}_a_parts_bias_gelu`);
          assert.deepEqual(fused.reads, [...plain.reads, "a_bias"]);
          const concat = matmulKernel({ tile, vec4, transB: true, f16Operands, ...e, prologue: "concat3" });
          assert.equal(concat.name, `${plain.name}_a_concat3`);
          assert.deepEqual(concat.reads, [...plain.reads, "a_mid", "a_last"]);
          for (const spec of [fused, concat]) {
            assert.deepEqual(spec.writes, plain.writes);
            assert.equal(wgslFunction(spec.code, "load_b"), loadB);
            // The entry point itself is the same text.
            const body = (code: string) => code.slice(code.indexOf("@compute"));
            assert.equal(body(spec.code), body(plain.code).replace(`fn ${plain.name}(`, `fn ${spec.name}(`));
          }
        }
      }
    }
  }
  assert.throws(() => matmulKernel({ transA: true, prologue: "parts_bias_gelu" }), TypeError);
});

for (const [label, engineOf] of [["f32", testEngine], ["mixed, emulated", mixedTestEngine]] as const) {
  Deno.test(
    { name: `linearConcat reads three operands as their concatenation, to the bit (${label})`, ignore },
    async () => {
      const engine = await engineOf();
      // Scalar loads (a width of 5), vec4 loads split over K (K = 3·128 ≥ 256 at few rows), many rows.
      for (const [rows, width, out] of [[7, 5, 9], [37, 128, 44], [300, 64, 130]] as const) {
        await engine.tidy(async () => {
          const seed = rows + width + out;
          const parts = [0, 1, 2].map((p) => engine.tensor(randn(rows * width, seed + p), [1, rows, width]));
          const w = engine.tensor(randn(out * 3 * width, seed + 3, 0.1), [out, 3 * width]);
          const bias = engine.tensor(randn(out, seed + 4), [out]);
          const got = linearConcat(parts as [Tensor, Tensor, Tensor], w, bias);
          assert.deepEqual(got.shape, [1, rows, out]);
          const want = linear(concat(parts), w, bias);
          assertSameBits(
            await got.read() as Float32Array,
            await want.read() as Float32Array,
            `${rows}×${width}`,
          );
        });
      }
    },
  );
}

Deno.test({ name: "linearConcat rejects operands that do not fit, and a tape", ignore }, async () => {
  const engine = await testEngine();
  await engine.tidy(async () => {
    const x = engine.zeros([4, 6]), w = engine.zeros([5, 18]);
    assert.throws(() => linearConcat([x, engine.zeros([4, 5]), x], w), /operand 1 has shape \[4,5\]/);
    assert.throws(() => linearConcat([x, x, x], engine.zeros([5, 17])), /expected \[out,18\]/);
    assert.throws(() => linearConcat([x, x, x], w, engine.zeros([4])), /bias has shape \[4\]/);
    engine.startTape();
    try {
      assert.throws(() => linearConcat([x, x, x], w), /tape/);
    } finally {
      engine.backward(engine.zeros([1]));
    }
    await engine.runtime.sync();
  });
});

const SPLIT_PRODUCT_CASES: SplitProductCase[] = [
  { M: 37, N: 44, K: 2048, splits: 8 }, // vec4 loads; the product split 32 ways over K
  { M: 37, N: 44, K: 2048, splits: 5, down: { splitK: 1 } },
  { M: 37, N: 29, K: 2047, splits: 3 }, // scalar loads, K odd
  { M: 37, N: 29, K: 2048, splits: 2, down: { tile: "large", splitK: 3, accumulate: true } },
  { M: 130, N: 44, K: 516, splits: 4, down: { accumulate: true } }, // several row tiles
  { M: 37, N: 44, K: 2048, splits: 9, residual: true }, // the partial products matmulResidual leaves
];

for (const [label, engineOf] of [["f32", testEngine], ["mixed, emulated", mixedTestEngine]] as const) {
  Deno.test(
    {
      name:
        `A given as split-K partials with bias and GELU gives the reduction pass's product, to the bit (${label})`,
      ignore,
    },
    async (t) => {
      const engine = await engineOf();
      for (const [i, c] of SPLIT_PRODUCT_CASES.entries()) {
        await t.step(JSON.stringify(c), async () => {
          const { fused, unfused } = await fusedAndUnfused(engine, c, 300 + 10 * i);
          assert.ok(fused.every(Number.isFinite), "every output written");
          assertSameBits(fused, unfused, JSON.stringify(c));
        });
      }
    },
  );
}

Deno.test(
  { name: "linearParts with bias and GELU feeds a product as linear does, to the bit", ignore },
  async () => {
    const engine = await testEngine();
    // The FFN of sampling one sequence of 37: x·W1ᵀ split over K = 512, then GELU(·)·W2ᵀ over K = 2048.
    const [R, D, F, N] = [37, 512, 2048, 44];
    const x = randn(R * D, 61), w1 = randn(F * D, 62, 0.05), b1 = randn(F, 63), w2 = randn(N * F, 64, 0.05);
    const b2 = randn(N, 65);
    await engine.tidy(async () => {
      const xt = engine.tensor(x, [R, D]), w1t = engine.tensor(w1, [F, D]), b1t = engine.tensor(b1, [F]);
      const w2t = engine.tensor(w2, [N, F]), b2t = engine.tensor(b2, [N]);
      const hidden = linearParts(xt, w1t, { bias: b1t, activation: "gelu" });
      assert.ok("part" in hidden && hidden.splits > 1, "the up-projection is split over K");
      const down = async (a: Parameters<typeof matmulInto>[1]) => {
        const out = engine.empty([R, N]);
        matmulInto(out, a, w2t, { transB: true, bias: b2t });
        return await out.read() as Float32Array;
      };
      const got = await down(hidden);
      assertSameBits(got, await down(linear(xt, w1t, b1t, { activation: "gelu" })), "FFN");
      const h = matmulRef(x, w1, { M: R, N: F, K: D, transB: true, bias: b1, gelu: true }).out;
      const want = matmulRef(Float32Array.from(h), w2, { M: R, N, K: F, transB: true, bias: b2 }).out;
      assertClose(got, want, { atol: 1e-4, rtol: 1e-4, name: "FFN" });
      // A short K is not split: the product itself comes back, as linear computes it.
      const xs = xt.viewAs([R * 8, 64]), ws = engine.tensor(randn(30 * 64, 66), [30, 64]);
      const bs = engine.tensor(randn(30, 67), [30]);
      const short = linearParts(xs, ws, { bias: bs, activation: "gelu" });
      assert.ok(!("part" in short));
      const whole = linear(xs, ws, bs, { activation: "gelu" });
      assertSameBits(await short.read() as Float32Array, await whole.read() as Float32Array, "short K");
    });
  },
);

Deno.test({ name: "partial products are refused where they cannot be summed", ignore }, async () => {
  const engine = await testEngine();
  await engine.tidy(async () => {
    const [R, D, F] = [16, 256, 1024];
    const x = engine.tensor(randn(R * D, 71), [R, D]), w1 = engine.tensor(randn(F * D, 72), [F, D]);
    const b1 = engine.tensor(randn(F, 73), [F]), w2 = engine.tensor(randn(D * F, 74), [D, F]);
    const hidden = linearParts(x, w1, { bias: b1, activation: "gelu" });
    const plain = linearParts(x, w1);
    assert.ok("part" in hidden && "part" in plain);
    const out = engine.empty([R, D]);
    assert.throws(() => matmulInto(out, plain, w2, { transB: true }), /without a bias and GELU/);
    assert.throws(() => matmulInto(out, hidden, w2.viewAs([F, D]), { transA: true }), /transposed/);
    const film = engine.tensor(new Float32Array(2 * D).fill(1), [1, 2 * D]);
    assert.throws(
      () => layerNormFilm(out.viewAs([1, R, D]), film, { gammaSlice: 0, betaSlice: 1, residual: hidden }),
      /activation/,
    );
    const lengths = engine.tensor(new Int32Array([R]), [1]);
    assert.throws(() => attention(hidden, lengths, { heads: 4 }), /activation/);
    engine.startTape();
    try {
      assert.throws(() => linearParts(x, w1, { bias: b1, activation: "gelu" }), /tape/);
      assert.throws(() => matmulInto(out, hidden, w2, { transB: true }), /tape/);
      assert.throws(() => matmulResidual(out, hidden, w2, { transB: true }), /tape/);
    } finally {
      engine.backward(engine.zeros([1]));
    }
    await engine.runtime.sync();
  });
});
