/**
 * The `mixed` precision's products (f16 operands, f32 sums) against float64: emulated on the f32
 * kernels on any adapter (operands rounded through pack2x16float), the tensor-core kernels themselves
 * with their fragment operations emulated on any adapter, and on Dawn's tensor cores where
 * DIFFLM_TEST_DAWN=1 (the device machine). Odd sizes, every transpose, the epilogues, split-K, a batch;
 * outputs poisoned with NaN first.
 *
 * Tolerances, per element, with S = Σ_k |a_k·b_k| of the element's terms:
 * | compared with                      | bound                              | why                                                     |
 * | float64 of the f16-rounded operands | 8·√K·2⁻²⁴·S                        | the same products exactly; only the f32 sums differ    |
 * | float64 of the exact operands       | (2⁻¹⁰ + 8·√K·2⁻²⁴)·S               | each operand within 2⁻¹¹ relative (f16 round to nearest) |
 * With GELU, or GELU's backward (the product times GELU'(pre)), the bound is multiplied by 1.2
 * (|GELU'| ≤ 1.13). The f16 rounding must show: the mixed
 * product differs from the f32 one by more than 2⁻¹⁶·S somewhere (else nothing was rounded).
 */
import assert from "node:assert/strict";
import { dawnSkipReason, dawnTestEngine, ignore, mixedTestEngine, testEngine } from "../_gpu.ts";
import { randn } from "../_check.ts";
import { matmulInto } from "../../src/tensor/ops/matmul.ts";
import { ROUND_F16_WGSL } from "../../kernels/matmul.ts";
import { defineKernel, parseBindings } from "../../src/gpu/kernel.ts";
import { TENSOR_CORE_TILES, tensorCoreMatmulKernel, TO_HALVES } from "../../kernels/matmul_tc.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { halvesOf, writeHalves } from "../../src/tensor/ops/_halves.ts";
import { setTensorCorePolicy } from "../../src/tensor/ops/_matmul_plan.ts";
import { matmulRef, type MatmulSizes } from "../ref/matmul.ts";
import { geluRef } from "../ref/gelu.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertSameBits, fusedAndUnfused, type SplitProductCase } from "./_split_product.ts";

interface Case extends MatmulSizes {
  epilogue?: "bias gelu" | "accumulate" | "gelu grad";
}

const CASES: Case[] = [
  { M: 37, N: 29, K: 53 },
  { M: 37, N: 29, K: 53, transA: true },
  { M: 37, N: 29, K: 53, transB: true, epilogue: "bias gelu" },
  { M: 37, N: 29, K: 53, transA: true, transB: true, epilogue: "accumulate" },
  { M: 130, N: 70, K: 100, transB: true },
  { M: 20, N: 36, K: 1500, transA: true }, // a short grid over a long K: split-K
  { M: 64, N: 48, K: 96, batch: 2 },
  { M: 37, N: 29, K: 53, epilogue: "gelu grad" },
  { M: 128, N: 128, K: 64, epilogue: "gelu grad" }, // whole tiles: tensor cores still run the epilogue
  { M: 20, N: 36, K: 1500, transA: true, epilogue: "gelu grad" }, // split-K: GELU' in the reduction
];

const toF16 = (x: Float32Array) => Float32Array.from(new Float16Array(x));

async function run(
  engine: Engine,
  c: Case,
  a: Float32Array<ArrayBuffer>,
  b: Float32Array<ArrayBuffer>,
  bias: Float32Array<ArrayBuffer>,
  prior: Float32Array<ArrayBuffer>,
  pre: Float32Array<ArrayBuffer>,
) {
  const { M, N, K, batch = 1, transA = false, transB = false } = c;
  const lead = batch > 1 ? [batch] : [];
  return await engine.tidy(async () => {
    const at = engine.tensor(a, [...lead, ...(transA ? [K, M] : [M, K])]);
    const bt = engine.tensor(b, [...lead, ...(transB ? [N, K] : [K, N])]);
    const out = c.epilogue === "accumulate"
      ? engine.tensor(prior, [...lead, M, N])
      : engine.empty([...lead, M, N]);
    matmulInto(out, at, bt, {
      transA,
      transB,
      ...(c.epilogue === "bias gelu" ? { bias: engine.tensor(bias, [N]), activation: "gelu" as const } : {}),
      accumulate: c.epilogue === "accumulate",
      geluGrad: c.epilogue === "gelu grad" ? engine.tensor(pre, [...lead, M, N]) : undefined,
    });
    return Float32Array.from(await out.read());
  });
}

async function checkMixed(engine: Engine, c: Case, seed: number): Promise<void> {
  const { M, N, K, batch = 1 } = c;
  const a = randn(batch * M * K, seed), b = randn(batch * K * N, seed + 1);
  const bias = randn(N, seed + 2), prior = randn(batch * M * N, seed + 3);
  const pre = randn(batch * M * N, seed + 4, 2);
  const options = {
    ...c,
    bias: c.epilogue === "bias gelu" ? bias : undefined,
    gelu: c.epilogue === "bias gelu",
    initial: c.epilogue === "accumulate" ? prior : undefined,
    geluGrad: c.epilogue === "gelu grad" ? pre : undefined,
  };
  const got = await run(engine, c, a, b, bias, prior, pre);
  const rounded = matmulRef(toF16(a), toF16(b), options).out;
  const exact = matmulRef(a, b, options).out;
  const terms = matmulRef(a.map(Math.abs), b.map(Math.abs), { ...c }).out; // S per element
  const f32 = await run(await testEngine(), c, a, b, bias, prior, pre);
  const slope = c.epilogue === "bias gelu" || c.epilogue === "gelu grad" ? 1.2 : 1;
  const sums = 8 * Math.sqrt(K) * 2 ** -24;
  let rounding = 0;
  for (let i = 0; i < got.length; i++) {
    const s = terms[i]!, name = `${JSON.stringify(c)} element ${i}`;
    assert.ok(Number.isFinite(got[i]!), `${name}: got ${got[i]}`);
    assert.ok(
      Math.abs(got[i]! - rounded[i]!) <= slope * sums * s + 1e-30,
      `${name}: ${got[i]} vs f16-operand ${rounded[i]}`,
    );
    assert.ok(
      Math.abs(got[i]! - exact[i]!) <= slope * (2 ** -10 + sums) * s,
      `${name}: ${got[i]} vs exact ${exact[i]}`,
    );
    rounding = Math.max(rounding, Math.abs(got[i]! - f32[i]!) / s);
  }
  assert.ok(rounding > 2 ** -16, `${JSON.stringify(c)}: mixed equals f32 (largest difference ${rounding}·S)`);
}

/** f32 values that exercise f16 rounding: ties, subnormals, overflow, infinities, then random magnitudes. */
function roundingCases(count: number): Float32Array<ArrayBuffer> {
  const f16 = (bits: number) => new Float16Array(new Uint16Array([bits]).buffer)[0]!;
  const special = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    -65520,
    70000,
    Infinity,
    -Infinity,
    2 ** -14,
    2 ** -24,
    2 ** -25,
    1.5 * 2 ** -25,
    2 ** -26,
    3 * 2 ** -25,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    f16(0x3c01),
    f16(0x03ff),
    1e-9,
  ];
  const values = new Float32Array(count);
  values.set(special);
  const random = randn(values.length - special.length, 17);
  for (let i = special.length; i < values.length; i++) {
    // Magnitudes from 2^-30 to 2^18: subnormal, normal and overflowing f16 values.
    values[i] = random[i - special.length]! * 2 ** (Math.floor((i * 7919) % 48) - 30);
  }
  return values;
}

Deno.test(
  { name: "round_f16 rounds f32 to the nearest f16, ties to even, as Float16Array does", ignore },
  async () => {
    const engine = await testEngine();
    const values = roundingCases(4096);
    const spec = defineKernel({
      name: "round_f16_check",
      reads: ["inp"],
      writes: ["out"],
      elements: { inp: "vec4f", out: "vec4f" },
      body: `${ROUND_F16_WGSL}
@compute @workgroup_size(64) fn round_f16_check(@builtin(global_invocation_id) id: vec3u) {
  out[id.x] = round_f16(inp[id.x]);
}`,
    });
    await engine.tidy(async () => {
      const inp = engine.tensor(values, [values.length]);
      const out = engine.empty([values.length]);
      engine.runtime.dispatch(spec, { inp, out }, {}, [values.length / 4 / 64, 1, 1]);
      const got = await out.read();
      const want = Float32Array.from(new Float16Array(values));
      for (let i = 0; i < values.length; i++) {
        assert.ok(Object.is(got[i], want[i]), `round_f16(${values[i]}) = ${got[i]}, expected ${want[i]}`);
      }
    });
    // NaN stays NaN.
    assert.ok(Number.isNaN(Float32Array.from(new Float16Array([NaN]))[0]));
  },
);

Deno.test(
  { name: "to_halves packs f32 as the bits of Float16Array, two per word, odd lengths padded", ignore },
  async () => {
    const engine = await testEngine();
    const values = roundingCases(4095);
    values[7] = NaN;
    values[8] = -NaN;
    const want = new Uint16Array(new Float16Array(values).buffer);
    await engine.tidy(async () => {
      const inp = engine.tensor(values, [values.length]);
      const out = engine.tensor(new Uint32Array(2048).fill(0xdeadbeef), [2048], "u32");
      engine.runtime.dispatch(TO_HALVES, { inp, out }, { n: values.length }, [8, 1, 1]);
      const got = new Uint16Array((await out.read()).buffer);
      for (let i = 0; i < values.length; i++) {
        const isNaN = (bits: number) => (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
        const ok = Number.isNaN(values[i]) ? isNaN(got[i]!) : got[i] === want[i];
        assert.ok(
          ok,
          `to_halves(${values[i]}) = 0x${got[i]!.toString(16)}, expected 0x${want[i]!.toString(16)}`,
        );
      }
      assert.equal(got[4095], 0, "the high half past the end is zero");
    });
  },
);

Deno.test(
  { name: "f16 operand copies are reused until the source is written, replayed over or flushed", ignore },
  async () => {
    const engine = await testEngine();
    const runtime = engine.runtime;
    const data = randn(101, 5), later = randn(101, 6);
    const x = engine.keep(engine.tensor(data, [101]));
    const source = engine.keep(engine.tensor(later, [101]));
    const halves = async (copy: { copy: { read(): Promise<unknown> } }) =>
      Array.from(new Uint16Array((await copy.copy.read() as Uint32Array).buffer).subarray(0, 101));
    const f16Bits = (v: Float32Array) => Array.from(new Uint16Array(new Float16Array(v).buffer));

    const first = halvesOf(engine, x);
    assert.equal(halvesOf(engine, x).copy, first.copy, "reused while x is unchanged");
    assert.notEqual(
      halvesOf(engine, x.rows(0, 100)).copy,
      first.copy,
      "another view of the buffer is another copy",
    );
    assert.deepEqual(await halves(first), f16Bits(data)); // read() flushes: the copies are released
    assert.ok(first.copy.disposed, "released after the flush");
    const second = halvesOf(engine, x);
    assert.notEqual(second.copy, first.copy);

    runtime.copy(source, x);
    const third = halvesOf(engine, x);
    assert.notEqual(third.copy, second.copy, "made anew after x was written");
    assert.deepEqual(await halves(third), f16Bits(later));

    const recording = runtime.record(() => {
      const inside = halvesOf(engine, x);
      assert.notEqual(halvesOf(engine, x).copy, inside.copy, "nothing is reused while recording");
      inside.release();
      runtime.copy(source, x);
    });
    const before = halvesOf(engine, x);
    runtime.replay(recording);
    assert.notEqual(halvesOf(engine, x).copy, before.copy, "made anew after a replay wrote x");
    await runtime.sync();
    recording.dispose();
    x.dispose();
    source.dispose();
  },
);

for (const [i, c] of CASES.entries()) {
  Deno.test({
    name: `mixed-precision matmul (emulated) matches float64 within f16 bounds: ${JSON.stringify(c)}`,
    ignore,
  }, async () => {
    const engine = await mixedTestEngine();
    assert.equal(engine.precision, "mixed");
    await checkMixed(engine, c, 100 + 7 * i);
  });
}

/** A tile that loads its fragments straight from f16 operands in storage. */
const DIRECT_TILE = { bm: 64, bn: 64, bk: 32, wm: 2, wn: 2, stages: 1, direct: true } as const;

/** Every tensor-core variant the planner can ask for, at both tiles, on f32 or f16 operands, and direct. */
function tensorCoreVariants() {
  const tiles = [
    ...Object.values(TENSOR_CORE_TILES).flatMap((tile) => [{ tile }, { tile, halves: true }]),
    { tile: DIRECT_TILE, halves: true },
  ];
  // Per tile: every layout with vec4 loads, one with scalar loads, and each epilogue on one layout; the
  // parts vary independently in the generator, and each Dawn compilation takes about a second.
  const layouts = [false, true].flatMap((transA) => [false, true].map((transB) => ({ transA, transB })));
  const epilogues = [
    { bias: true },
    { bias: true, gelu: true, pre: true },
    { accumulate: true },
    { geluGrad: true },
    // The epilogue's staging options (TensorCorePolicy.biasFirst, strips).
    { bias: true, biasFirst: true },
    { bias: true, gelu: true, pre: true, biasFirst: true, strips: true },
    { accumulate: true, strips: true },
  ];
  return [
    ...tiles.flatMap((t) => [
      ...layouts.map((layout) => tensorCoreMatmulKernel({ ...layout, vec4: true, ...t })),
      tensorCoreMatmulKernel({ transA: true, transB: false, vec4: false, ...t }),
      ...epilogues.map((epilogue) =>
        tensorCoreMatmulKernel({ transA: false, transB: true, vec4: true, ...t, ...epilogue })
      ),
    ]),
    // A computed as it is loaded (f32 operands only): from split-K partials, or from three operands;
    // vec4 and scalar loads.
    ...Object.values(TENSOR_CORE_TILES).flatMap((tile) =>
      [true, false].flatMap((vec4) =>
        (["parts_bias_gelu", "concat3"] as const).map((prologue) =>
          tensorCoreMatmulKernel({ transB: true, vec4, tile, bias: true, accumulate: true, prologue })
        )
      )
    ),
  ];
}

Deno.test("a tensor-core prologue changes only how A is loaded", () => {
  for (const tile of Object.values(TENSOR_CORE_TILES)) {
    for (const vec4 of [true, false]) {
      const plain = tensorCoreMatmulKernel({ transB: true, vec4, tile, bias: true });
      for (
        const [prologue, extra] of [["parts_bias_gelu", ["a_bias"]], ["concat3", [
          "a_mid",
          "a_last",
        ]]] as const
      ) {
        const fused = tensorCoreMatmulKernel({ transB: true, vec4, tile, bias: true, prologue });
        assert.equal(fused.name, `${plain.name}_a_${prologue}`);
        assert.deepEqual(fused.reads, [...plain.reads, ...extra]);
        const body = (code: string) => code.slice(code.indexOf("@compute"));
        assert.equal(body(fused.code), body(plain.code).replace(`fn ${plain.name}(`, `fn ${fused.name}(`));
        assert.ok(fused.code.includes("a_prologue"), fused.name);
      }
    }
  }
  assert.throws(
    () => tensorCoreMatmulKernel({ transB: true, halves: true, prologue: "parts_bias_gelu" }),
    /halves/,
  );
});

Deno.test("a tensor-core tile unrolls its K loop only with two stages, and names it", () => {
  const { small, large } = TENSOR_CORE_TILES;
  assert.match(tensorCoreMatmulKernel({ tile: { ...small, unrolled: true } }).name, /_2x2s2u$/);
  assert.match(tensorCoreMatmulKernel({ tile: small }).name, /_2x2s2$/);
  assert.throws(
    () => tensorCoreMatmulKernel({ tile: { ...large, unrolled: true } }),
    /unrolled only with 2 stages/,
  );
});

Deno.test("tensor-core matmul variants declare exactly the bindings of their spec", () => {
  for (const spec of tensorCoreVariants()) {
    const parsed = parseBindings(spec.code);
    assert.deepEqual(
      parsed.storage.map((s) => [s.name, s.access]),
      [...spec.reads.map((n) => [n, "read"]), ...spec.writes.map((n) => [n, "read_write"])],
      spec.name,
    );
    assert.deepEqual(parsed.uniforms?.fields, Object.entries(spec.uniforms ?? {}), spec.name);
  }
});

/**
 * One emulated tensor-core kernel run: a tile, a layout, an epilogue, optionally split-K (the kernel's
 * partials summed here) or A computed by the prologue from split-K partials.
 */
interface EmulatedCase extends MatmulSizes {
  tile: keyof typeof TENSOR_CORE_TILES;
  /** Tile rows per group of the launch order. */
  group?: number;
  /** Two K steps per loop iteration, each on a constant stage. */
  unrolled?: boolean;
  /** The accumulators start from the bias. */
  biasFirst?: boolean;
  /** The epilogue stages a row of fragments per round. */
  strips?: boolean;
  epilogue?: "bias gelu pre" | "bias" | "accumulate" | "gelu grad";
  /** K chunks of this many (the kernel writes one partial per chunk). */
  kChunk?: number;
  /** A is GELU of the sum of this many partials plus a bias (`parts_bias_gelu`). */
  aParts?: number;
  /** A is read from three operands of K/3 columns each (`concat3`). */
  aConcat?: boolean;
}

const EMULATED_CASES: EmulatedCase[] = [
  // The default tile: whole tiles store their fragments to C directly, edge tiles go through the
  // epilogue's staging blocks.
  { tile: "large", M: 130, N: 140, K: 70, transB: true },
  { tile: "medium", M: 150, N: 70, K: 40, epilogue: "bias" },
  // The small tile (two stages taking turns; compiles in a fraction of the large one's time on a CPU
  // adapter) for the epilogues, the other layouts, split-K over a batch and the prologue.
  { tile: "small", M: 70, N: 90, K: 100, transB: true, epilogue: "bias gelu pre" },
  { tile: "small", M: 50, N: 36, K: 40, transA: true, transB: true, epilogue: "accumulate" },
  { tile: "small", M: 37, N: 29, K: 53, epilogue: "gelu grad" },
  { tile: "small", M: 64, N: 64, K: 96, transA: true, epilogue: "bias" },
  { tile: "small", M: 64, N: 64, K: 96, batch: 2, kChunk: 64 },
  { tile: "small", M: 40, N: 52, K: 36, transB: true, aParts: 3, epilogue: "bias" },
  // A read from three operands: scalar loads, then vec4 loads over K chunks that straddle two operands.
  { tile: "small", M: 37, N: 29, K: 60, transB: true, aConcat: true, epilogue: "bias" },
  { tile: "small", M: 70, N: 36, K: 96, transB: true, aConcat: true, kChunk: 48 },
  // Tiles launched in groups of 3 tile rows over 4 (the last group short): every tile once, as accumulating
  // shows (a tile run twice adds twice, one never run leaves the prior).
  { tile: "small", group: 3, M: 250, N: 150, K: 40, epilogue: "accumulate" },
  // The two-stage loop unrolled by two steps: an odd number of K steps (3, the last partial), and an even
  // one (4).
  { tile: "small", unrolled: true, M: 70, N: 90, K: 70, transB: true, epilogue: "bias" },
  { tile: "small", unrolled: true, M: 40, N: 36, K: 128, transA: true },
  // Accumulators that start from the bias: whole tiles stored from the fragments, and edge tiles (a bias
  // past N never read) through the epilogue, whose rounds stage a row of fragments each; those rounds
  // alone on the medium tile, accumulating.
  { tile: "small", biasFirst: true, M: 64, N: 128, K: 96, transB: true, epilogue: "bias" },
  { tile: "small", biasFirst: true, strips: true, M: 70, N: 90, K: 100, epilogue: "bias gelu pre" },
  { tile: "medium", strips: true, M: 150, N: 70, K: 40, transA: true, epilogue: "accumulate" },
];

// The tensor-core kernels' own code on any adapter: only the fragment operations are emulated (kernels
// /matmul_tc.ts), so staging, tiles, stages, edges, epilogues, split-K and the prologue run here.
for (const c of EMULATED_CASES) {
  Deno.test({
    name: `emulated tensor-core matmul matches float64 of the f16-rounded operands: ${JSON.stringify(c)}`,
    ignore,
  }, async () => {
    const engine = await testEngine();
    const { M, N, K, batch = 1, transA = false, transB = false, aParts = 0 } = c;
    const tile = {
      ...TENSOR_CORE_TILES[c.tile],
      ...(c.group ? { group: c.group } : {}),
      ...(c.unrolled ? { unrolled: true } : {}),
    };
    const splits = c.kChunk ? Math.ceil(K / c.kChunk) : 1, kChunk = c.kChunk ?? K;
    const seed = M + 7 * N + 13 * K;
    const parts = Array.from({ length: Math.max(aParts, 1) }, (_, p) => randn(batch * M * K, seed + p, 0.5));
    const aBias = randn(K, seed + 5);
    // A as the prologue computes it (GELU of the partials' sum and the bias), else the first "part".
    const a = aParts
      ? Float32Array.from({ length: M * K }, (_, i) => {
        let s = 0;
        for (const part of parts) s = Math.fround(s + part[i]!);
        return Math.fround(geluRef([Math.fround(s + aBias[i % K]!)])[0]!);
      })
      : parts[0]!;
    const b = randn(batch * K * N, seed + 6), bias = randn(N, seed + 7);
    const prior = randn(batch * M * N, seed + 8), pre = randn(batch * M * N, seed + 9, 2);
    const epilogue = {
      bias: c.epilogue === "bias gelu pre" || c.epilogue === "bias",
      gelu: c.epilogue === "bias gelu pre",
      pre: c.epilogue === "bias gelu pre",
      accumulate: c.epilogue === "accumulate",
      geluGrad: c.epilogue === "gelu grad",
    };
    const vec4 = K % 4 === 0 && N % 4 === 0 && (!transA || M % 4 === 0);
    const spec = tensorCoreMatmulKernel({
      transA,
      transB,
      vec4,
      tile,
      biasFirst: c.biasFirst,
      strips: c.strips,
      emulated: true,
      ...(splits > 1 ? {} : epilogue),
      ...(aParts ? { prologue: "parts_bias_gelu" as const } : {}),
      ...(c.aConcat ? { prologue: "concat3" as const } : {}),
    });
    const { got, gotPre } = await engine.tidy(async () => {
      const c2 = engine.tensor(
        epilogue.accumulate ? prior : new Float32Array(splits * batch * M * N).fill(NaN),
        [
          splits * batch * M * N,
        ],
      );
      const views: Record<string, Tensor> = {
        a: engine.tensor(aParts ? Float32Array.from(parts.flatMap((p) => [...p])) : a, [
          aParts ? aParts * M * K : batch * M * K,
        ]),
        b: engine.tensor(b, [batch * K * N]),
        c: c2,
      };
      if (aParts) views.a_bias = engine.tensor(aBias, [K]);
      if (c.aConcat) {
        // A's column blocks [0, K/3), [K/3, 2K/3), [2K/3, K), each stored as its own [M, K/3] operand.
        const width = K / 3;
        const [first, mid, last] = [0, 1, 2].map((p) =>
          engine.tensor(
            Float32Array.from({ length: M * width }, (_, i) =>
              a[Math.floor(i / width) * K + p * width + (i % width)]!),
            [M * width],
          )
        );
        Object.assign(views, { a: first, a_mid: mid, a_last: last });
      }
      if (epilogue.bias && splits === 1) views.bias = engine.tensor(bias, [N]);
      const preOut = engine.tensor(epilogue.geluGrad ? pre : new Float32Array(batch * M * N).fill(NaN), [
        batch * M * N,
      ]);
      if ((epilogue.pre || epilogue.geluGrad) && splits === 1) views.pre = preOut;
      const uniforms: Record<string, number> = {
        M,
        N,
        K,
        strideA: M * K,
        strideB: K * N,
        strideC: M * N,
        splits,
        kChunk,
        ...(aParts ? { a_parts: aParts, a_part_stride: M * K } : {}),
      };
      const grid: [number, number, number] = [Math.ceil(N / tile.bn), Math.ceil(M / tile.bm), batch * splits];
      engine.runtime.dispatch(spec, views, uniforms, grid);
      return { got: Float32Array.from(await c2.read()), gotPre: Float32Array.from(await preOut.read()) };
    });
    // Partial z = batch·splits + split holds its chunk's product: their sum is the whole product.
    const sum = new Float32Array(batch * M * N);
    for (let z = 0; z < batch; z++) {
      for (let s = 0; s < splits; s++) {
        for (let i = 0; i < M * N; i++) sum[z * M * N + i]! += got[(z * splits + s) * M * N + i]!;
      }
    }
    const options = {
      ...c,
      bias: epilogue.bias ? bias : undefined,
      gelu: epilogue.gelu,
      initial: epilogue.accumulate ? prior : undefined,
      geluGrad: epilogue.geluGrad ? pre : undefined,
    };
    const want = matmulRef(toF16(a), toF16(b), options);
    const terms = matmulRef(a.map(Math.abs), b.map(Math.abs), { ...c }).out;
    const slope = epilogue.gelu || epilogue.geluGrad ? 1.2 : 1;
    // A from the prologue is f32 GELU (erf approximated) before its f16 rounding: a value near a rounding
    // boundary may round the other way, one f16 step.
    const unit = 8 * Math.sqrt(K) * 2 ** -24 + (aParts ? 2 ** -10 : 0);
    for (let i = 0; i < sum.length; i++) {
      const bound = slope * unit * terms[i]! + 1e-30;
      assert.ok(Math.abs(sum[i]! - want.out[i]!) <= bound, `element ${i}: ${sum[i]} vs ${want.out[i]}`);
      if (epilogue.pre) {
        assert.ok(Math.abs(gotPre[i]! - want.pre[i]!) <= bound, `pre ${i}: ${gotPre[i]} vs ${want.pre[i]}`);
      }
    }
  });
}

Deno.test("emulated tensor-core variants stage f32 operands only and drop every subgroup matrix", () => {
  const spec = tensorCoreMatmulKernel({ transB: true, vec4: true, bias: true, emulated: true });
  assert.ok(spec.name.endsWith("_emulated"), spec.name);
  assert.ok(!/subgroup|enable f16/.test(spec.code), "the emulation uses a subgroup feature");
  assert.throws(() => tensorCoreMatmulKernel({ halves: true, emulated: true }), /emulated/);
});

if (dawnSkipReason) console.log(`skipping tensor-core matmul tests: ${dawnSkipReason}`);
Deno.test({
  name: "tensor-core matmul variants compile on Dawn (each tile, layout and epilogue)",
  ignore: dawnSkipReason !== null,
}, async () => {
  const engine = await dawnTestEngine();
  for (const spec of tensorCoreVariants()) await engine.runtime.compile(spec);
});

for (const [i, c] of CASES.entries()) {
  Deno.test({
    name: `tensor-core matmul (Dawn) matches float64 within f16 bounds: ${JSON.stringify(c)}`,
    ignore: dawnSkipReason !== null,
    permissions: "inherit",
  }, async () => {
    const engine = await dawnTestEngine();
    assert.ok(engine.runtime.gpu.features.subgroupMatrix, "Dawn's device has no subgroup matrices");
    await checkMixed(engine, c, 200 + 7 * i);
  });
}

/** Sizes for the f16-operand kernels: odd ones staged; multiples of 16 with edge tiles for direct loads. */
const HALVES_CASES: (MatmulSizes & { direct?: boolean })[] = [
  { M: 37, N: 29, K: 53 },
  { M: 130, N: 70, K: 100, transA: true, transB: true },
  { M: 80, N: 48, K: 96, direct: true },
  { M: 144, N: 80, K: 64, transA: true, direct: true },
  { M: 48, N: 208, K: 160, transB: true, direct: true },
  { M: 96, N: 112, K: 32, transA: true, transB: true, direct: true },
];

for (const c of HALVES_CASES) {
  Deno.test({
    name: `tensor-core matmul on f16 copies (Dawn) matches float64 of the rounded operands: ${
      JSON.stringify(c)
    }`,
    ignore: dawnSkipReason !== null,
    permissions: "inherit",
  }, async () => {
    const engine = await dawnTestEngine();
    const { M, N, K, transA = false, transB = false } = c;
    const a = randn(M * K, M + 1), b = randn(K * N, N + 2), bias = randn(N, 3);
    const tile = c.direct ? DIRECT_TILE : TENSOR_CORE_TILES.small;
    const vec4 = K % 4 === 0 && N % 4 === 0 && (!transA || M % 4 === 0);
    const spec = tensorCoreMatmulKernel({ transA, transB, vec4, tile, halves: true, bias: true });
    const got = await engine.tidy(async () => {
      const halves = (x: Float32Array<ArrayBuffer>) => {
        const copy = engine.empty([Math.ceil(x.length / 2)], "u32");
        writeHalves(engine, engine.tensor(x, [x.length]), copy);
        return copy;
      };
      const out = engine.tensor(new Float32Array(M * N).fill(NaN), [M, N]);
      const uniforms = { M, N, K, strideA: 0, strideB: 0, strideC: 0, splits: 1, kChunk: K };
      const grid: [number, number, number] = [Math.ceil(N / tile.bn), Math.ceil(M / tile.bm), 1];
      const views = { a: halves(a), b: halves(b), bias: engine.tensor(bias, [N]), c: out };
      engine.runtime.dispatch(spec, views, uniforms, grid);
      return Float32Array.from(await out.read());
    });
    const want = matmulRef(toF16(a), toF16(b), { ...c, bias }).out;
    const terms = matmulRef(a.map(Math.abs), b.map(Math.abs), { ...c }).out;
    for (let i = 0; i < got.length; i++) {
      const bound = 8 * Math.sqrt(K) * 2 ** -24 * terms[i]! + 1e-30;
      assert.ok(Math.abs(got[i]! - want[i]!) <= bound, `element ${i}: ${got[i]} vs ${want[i]}`);
    }
  });
}

/** Products the planner gives large tiles (a full wave of them; a long K split), under each plan. */
const PLANNED_CASES: (MatmulSizes & { name: string })[] = [
  { name: "wide", M: 2048, N: 2320, K: 96, transB: true },
  { name: "long K", M: 144, N: 272, K: 4128, transA: true },
  { name: "few tiles", M: 300, N: 200, K: 201, transB: true },
];

for (
  const tc of ["default", "wide", "tall", "medium", "f16", "f16,direct", "f16,unsplit", "biasfirst,strips"]
) {
  Deno.test({
    name: `the launcher's tensor-core plan "${tc}" matches float64 of the rounded operands (Dawn)`,
    ignore: dawnSkipReason !== null,
    permissions: "inherit",
  }, async () => {
    const engine = await dawnTestEngine();
    const previous = setTensorCorePolicy({
      operands: tc.includes("f16") ? "f16" : "f32",
      splitLongK: !tc.includes("unsplit"),
      direct: tc.includes("direct"),
      ...(tc === "wide" || tc === "tall" ? { gridTile: tc } : {}),
      ...(tc === "medium" ? { fewTile: tc } : {}),
      ...(tc.includes("biasfirst") ? { biasFirst: true } : {}),
      ...(tc.includes("strips") ? { strips: true } : {}),
    });
    try {
      for (const c of PLANNED_CASES) {
        const { M, N, K, transA = false, transB = false } = c;
        const a = randn(M * K, K), b = randn(K * N, N), bias = randn(N, M);
        const got = await engine.tidy(async () => {
          const at = engine.tensor(a, transA ? [K, M] : [M, K]);
          const bt = engine.tensor(b, transB ? [N, K] : [K, N]);
          const out = engine.tensor(new Float32Array(M * N).fill(NaN), [M, N]);
          matmulInto(out, at, bt, { transA, transB, bias: engine.tensor(bias, [N]) });
          // Again on the same operands: their f16 copies are reused.
          matmulInto(out, at, bt, { transA, transB, accumulate: true });
          return Float32Array.from(await out.read());
        });
        const a16 = toF16(a), b16 = toF16(b);
        for (let i = 0; i < 400; i++) {
          const m = i === 0 ? M - 1 : (i * 7919) % M, n = i === 0 ? N - 1 : (i * 104729) % N;
          let want = 0, terms = 0;
          for (let k = 0; k < K; k++) {
            const x = a16[transA ? k * M + m : m * K + k]!, y = b16[transB ? n * K + k : k * N + n]!;
            want += x * y;
            terms += Math.abs(x * y);
          }
          // The bias enters the sums' roundings (every one of them where the accumulators start from it).
          const bound = 2 * 8 * Math.sqrt(K) * 2 ** -24 * (terms + Math.abs(bias[n]!)) + 1e-30;
          const v = got[m * N + n]!, expected = 2 * want + bias[n]!;
          assert.ok(Math.abs(v - expected) <= bound, `${c.name} [${m},${n}]: ${v} vs ${expected}`);
        }
      }
    } finally {
      setTensorCorePolicy(previous);
    }
  });
}

/** Products whose A is split-K partials with bias and GELU: small tiles as in sampling, and a wide one. */
const SPLIT_PRODUCT_CASES: SplitProductCase[] = [
  { M: 37, N: 44, K: 2048, splits: 8 },
  { M: 37, N: 29, K: 2047, splits: 3 },
  { M: 37, N: 44, K: 2048, splits: 5, down: { splitK: 1 } },
  { M: 2048, N: 2320, K: 100, splits: 3 }, // large tiles, under f16 operands too
];

Deno.test({
  name:
    "tensor-core matmul (Dawn) on A's split-K partials with bias and GELU matches the reduction pass, to the bit",
  ignore: dawnSkipReason !== null,
  permissions: "inherit",
}, async () => {
  const engine = await dawnTestEngine();
  for (const operands of ["f32", "f16"] as const) {
    const previous = setTensorCorePolicy({ operands, splitLongK: false, direct: false });
    try {
      for (const [i, c] of SPLIT_PRODUCT_CASES.entries()) {
        const { fused, unfused } = await fusedAndUnfused(engine, c, 400 + 10 * i);
        assert.ok(fused.every(Number.isFinite), "every output written");
        assertSameBits(fused, unfused, `${operands} operands ${JSON.stringify(c)}`);
      }
    } finally {
      setTensorCorePolicy(previous);
    }
  }
});
