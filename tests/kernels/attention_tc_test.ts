/**
 * Attention on tensor cores (kernels/attention_tc.ts) against the float64 reference: the emulated kernels
 * (every line but the fragment operations, f16 values held in f32) on any adapter, the subgroup-matrix
 * kernels on Dawn where DIFFLM_TEST_DAWN=1 (the device machine). Odd lengths (padded to 16), head dims
 * that are not multiples of 16, padding rows, an all-padding example, RoPE on part of the head or none;
 * outputs poisoned with NaN first.
 *
 * Tolerance, from f16's unit roundoff u = 2⁻¹¹: out within 4u·max|v| and dqkv within 16u·max|dqkv| of
 * float64 (each output is a convex combination of rounded v, or a sum of products of two rounded
 * factors whose rounding errors do not line up; the largest errors seen on these cases were 0.53u·max|v|
 * and 2.8u·max|dqkv|, so a wrong mask, scale or missing term, which errs by O(max), cannot pass). The
 * f16 rounding must show: the results differ from the f32 kernels' by more than 2⁻¹⁶ of the largest
 * value somewhere.
 */
import assert from "node:assert/strict";
import { dawnSkipReason, dawnTestEngine, ignore, testEngine } from "../_gpu.ts";
import { randn } from "../_check.ts";
import { ropeTable } from "../../kernels/attention.ts";
import {
  ATTENTION_TC_MAX_SEQ,
  attentionBackwardTensorCoreSpec,
  attentionForwardTensorCoreSpec,
  attentionTensorCoreBytes,
} from "../../kernels/attention_tc.ts";
import { type Engine, grid1d } from "../../src/tensor/engine.ts";
import { attention, attentionBackward, attentionForward } from "../../src/tensor/ops/attention.ts";
import { attentionBackwardRef, type AttentionCase, attentionRef, caseDims } from "../ref/attention.ts";

/** Cases whose emulated kernels fit 32 KiB of workgroup memory (f32 halves). */
const CASES: AttentionCase[] = [
  { B: 3, H: 2, hd: 16, L: 7, rotaryDim: 8, lengths: [7, 1, 4] },
  { B: 2, H: 2, hd: 20, L: 24, lengths: [24, 13] },
  { B: 2, H: 1, hd: 32, L: 32, lengths: [32, 0] },
  { B: 1, H: 3, hd: 12, L: 17, rotaryDim: 0, lengths: [17] },
];

/** The model's head shape and longer odd lengths, on Dawn only. */
const DAWN_CASES: AttentionCase[] = [
  ...CASES,
  { B: 2, H: 2, hd: 64, L: 64, lengths: [64, 29] },
  { B: 3, H: 2, hd: 32, L: 40, lengths: [40, 1, 33] },
  { B: 2, H: 3, hd: 44, L: 50, rotaryDim: 16, lengths: [50, 17] },
];

const U = 2 ** -11;

const maxAbs = (x: ArrayLike<number>) => Array.from(x).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** The RoPE table the kernels read for a case's sizes. */
function ropeOf(engine: Engine, c: AttentionCase) {
  const { rotaryDim } = caseDims(c);
  return engine.tensor(ropeTable({ seq: c.L, headDim: c.hd, rotaryDim, theta: 10000 }), [c.L, c.hd / 4, 4]);
}

/** Runs both kernels once, dqkv poisoned (or `prior` with `accumulate`); returns out and dqkv. */
async function runKernels(
  engine: Engine,
  c: AttentionCase,
  data: {
    qkv: Float32Array<ArrayBuffer>;
    dout: Float32Array<ArrayBuffer>;
    prior?: Float32Array<ArrayBuffer>;
  },
  emulated: boolean,
): Promise<{ out: Float32Array; dqkv: Float32Array }> {
  const D = c.H * c.hd;
  return await engine.tidy(async () => {
    const io = {
      qkv: engine.tensor(data.qkv, [c.B, c.L, 3 * D]),
      lengths: engine.tensor(new Int32Array(c.lengths), [c.B]),
      rope: ropeOf(engine, c),
      out: engine.empty([c.B, c.L, D]),
      lse: engine.empty([c.B, c.H, c.L]),
    };
    engine.runtime.dispatch(
      attentionForwardTensorCoreSpec(c.L, c.hd, { emulated }),
      io,
      { batch: c.B, seq: c.L, heads: c.H, qblocks: 1 },
      grid1d(c.B * c.H),
    );
    const dqkv = data.prior ? engine.tensor(data.prior, [c.B, c.L, 3 * D]) : engine.empty([c.B, c.L, 3 * D]);
    engine.runtime.dispatch(
      attentionBackwardTensorCoreSpec(c.L, c.hd, { emulated, accumulate: !!data.prior }),
      { ...io, dout: engine.tensor(data.dout, [c.B, c.L, D]), dqkv, dsum: engine.empty([c.B, c.H, c.L]) },
      { batch: c.B, seq: c.L, heads: c.H },
      grid1d(c.B * c.H),
    );
    return { out: Float32Array.from(await io.out.read()), dqkv: Float32Array.from(await dqkv.read()) };
  });
}

function assertWithin(got: Float32Array, want: ArrayLike<number>, bound: number, name: string): void {
  let worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= worst)) [worst, at] = [err, i];
  }
  if (Deno.env.get("DIFFLM_TEST_VERBOSE")) {
    console.log(`${name}: largest error / bound ${(worst / bound).toFixed(3)}`);
  }
  assert.ok(
    worst <= bound,
    `${name}: largest error ${worst.toExponential(3)} at ${at} (got ${got[at]}, want ${want[at]}) exceeds ${
      bound.toExponential(3)
    }`,
  );
}

/** Checks both kernels against float64, plain and accumulating, and that f16 rounding shows. */
async function checkCase(engine: Engine, c: AttentionCase, emulated: boolean, seed: number): Promise<void> {
  const D = c.H * c.hd, d = caseDims(c);
  const qkv = randn(c.B * c.L * 3 * D, seed), dout = randn(c.B * c.L * D, seed + 1);
  const prior = randn(c.B * c.L * 3 * D, seed + 2);
  const label = `B=${c.B} H=${c.H} hd=${c.hd} L=${c.L} lengths=[${c.lengths}]${emulated ? " emulated" : ""}`;
  const wantOut = attentionRef(qkv, c.lengths, d);
  const wantGrad = attentionBackwardRef(qkv, c.lengths, dout, d);
  let maxV = 0;
  for (let r = 0; r < c.B * c.L; r++) {
    for (let x = 0; x < D; x++) maxV = Math.max(maxV, Math.abs(qkv[r * 3 * D + 2 * D + x]!));
  }
  const outBound = 4 * U * maxV, gradBound = 16 * U * maxAbs(wantGrad);
  const plain = await runKernels(engine, c, { qkv, dout }, emulated);
  assertWithin(plain.out, wantOut, outBound, `out ${label}`);
  assertWithin(plain.dqkv, wantGrad, gradBound, `dqkv ${label}`);
  const added = await runKernels(engine, c, { qkv, dout, prior }, emulated);
  assertWithin(
    added.dqkv,
    wantGrad.map((v, i) => v + prior[i]!),
    gradBound + 4 * U * maxAbs(prior),
    `dqkv += ${label}`,
  );

  // The f32 kernels' results on the same data: the f16 rounding must show against them.
  const f32 = await engine.tidy(async () => {
    const x = engine.tensor(qkv, [c.B, c.L, 3 * D]);
    const lengths = engine.tensor(new Int32Array(c.lengths), [c.B]);
    const out = engine.empty([c.B, c.L, D]), lse = engine.empty([c.B, c.H, c.L]);
    const options = { heads: c.H, rotaryDim: c.rotaryDim ?? 32, kernel: "tiled" as const };
    attentionForward({ qkv: x, lengths, out, lse }, options);
    const dqkv = engine.zeros([c.B, c.L, 3 * D]);
    attentionBackward(
      {
        qkv: x,
        lengths,
        out,
        lse,
        dout: engine.tensor(dout, [c.B, c.L, D]),
        dqkv,
        dsum: engine.empty([c.B, c.H, c.L]),
      },
      options,
    );
    return await dqkv.read();
  });
  const largest = maxAbs(f32);
  assert.ok(
    plain.dqkv.some((v, i) => Math.abs(v - f32[i]!) > 2 ** -16 * largest),
    `dqkv ${label}: no f16 rounding shows against the f32 kernels`,
  );
}

for (const [n, c] of CASES.entries()) {
  Deno.test({
    name: `emulated tensor-core attention matches float64 within f16 bounds: B=${c.B} H=${c.H} hd=${c.hd} ` +
      `L=${c.L} lengths=[${c.lengths}]`,
    ignore,
  }, async () => {
    await checkCase(await testEngine(), c, true, 100 + 10 * n);
  });
}

Deno.test({
  name: "emulated tensor-core attention forward on split-K partial products sums them on load, to the bit",
  ignore,
}, async () => {
  const engine = await testEngine();
  const c = CASES[1]!, D = c.H * c.hd, n = c.B * c.L * 3 * D;
  const p0 = randn(n, 61), p1 = randn(n, 62);
  const summed = p0.map((v, i) => Math.fround(v + p1[i]!));
  const parts = new Float32Array(2 * n);
  parts.set(p0);
  parts.set(p1, n);
  const forward = (qkv: Float32Array<ArrayBuffer>, shape: number[], split: boolean) =>
    engine.tidy(async () => {
      const out = engine.empty([c.B, c.L, D]);
      engine.runtime.dispatch(
        attentionForwardTensorCoreSpec(c.L, c.hd, { emulated: true, parts: split }),
        {
          qkv: engine.tensor(qkv, shape),
          lengths: engine.tensor(new Int32Array(c.lengths), [c.B]),
          rope: ropeOf(engine, c),
          out,
          lse: engine.empty([c.B, c.H, c.L]),
        },
        { batch: c.B, seq: c.L, heads: c.H, qblocks: 1, ...(split ? { parts: 2, part_stride: n / 4 } : {}) },
        grid1d(c.B * c.H),
      );
      return Float32Array.from(await out.read());
    });
  assert.deepEqual(
    await forward(parts, [2, c.B * c.L, 3 * D], true),
    await forward(summed, [c.B, c.L, 3 * D], false),
  );
});

Deno.test("tensor-core attention: workgroup memory, and the sizes the builders refuse", () => {
  assert.equal(attentionTensorCoreBytes(64, 64, "forward"), 44032);
  assert.equal(attentionTensorCoreBytes(64, 64, "backward"), 45312);
  assert.equal(attentionForwardTensorCoreSpec(17, 12), attentionForwardTensorCoreSpec(32, 12));
  assert.throws(() => attentionForwardTensorCoreSpec(ATTENTION_TC_MAX_SEQ + 1, 64), /1 to 64/);
  assert.throws(() => attentionBackwardTensorCoreSpec(0, 64), /1 to 64/);
  assert.throws(() => attentionBackwardTensorCoreSpec(8, 66), /head dim 66/);
});

Deno.test(
  { name: "attention asked for tensor cores where there are none says what is missing", ignore },
  async () => {
    const engine = await testEngine();
    if (engine.runtime.gpu.features.subgroupMatrix) return;
    engine.tidy(() => {
      const qkv = engine.zeros([1, 4, 3 * 16]);
      const lengths = engine.tensor(new Int32Array([4]), [1]);
      assert.throws(
        () => attention(qkv, lengths, { heads: 1, kernel: "tensor-cores" }),
        /Cannot run attentionForward on tensor cores: the device has no f16 subgroup matrices/,
      );
    });
  },
);

for (const [n, c] of DAWN_CASES.entries()) {
  Deno.test({
    name: `tensor-core attention (Dawn) matches float64 within f16 bounds: B=${c.B} H=${c.H} hd=${c.hd} ` +
      `L=${c.L} lengths=[${c.lengths}]`,
    ignore: dawnSkipReason !== null,
    permissions: "inherit",
  }, async () => {
    await checkCase(await dawnTestEngine(), c, false, 300 + 10 * n);
  });
}

Deno.test({
  name: "attention in mixed precision on Dawn takes the tensor-core kernels for 65,536 query rows or more, " +
    "writing its gradient outright",
  ignore: dawnSkipReason !== null,
  permissions: "inherit",
}, async () => {
  const engine = await dawnTestEngine();
  for (const [B, H, L] of [[128, 8, 64], [128, 8, 24], [2, 2, 24]] as const) {
    const hd = 16, D = H * hd;
    const c: AttentionCase = { B, H, hd, L, lengths: Array.from({ length: B }, (_, b) => 1 + (b * 7) % L) };
    const qkv = randn(B * L * 3 * D, 77), dout = randn(B * L * D, 78);
    const viaOp = await engine.tidy(async () => {
      const x = engine.tensor(qkv, [B, L, 3 * D]);
      x.requiresGrad = true;
      engine.startTape();
      const y = attention(x, engine.tensor(new Int32Array(c.lengths), [B]), { heads: H });
      engine.backward(y, engine.tensor(dout, [B, L, D]));
      return { out: Float32Array.from(await y.read()), dqkv: Float32Array.from(await x.grad!.read()) };
    });
    const direct = await runKernels(engine, c, { qkv, dout }, false);
    const same = (a: Float32Array, b: Float32Array) => a.every((v, i) => Object.is(v, b[i]));
    assert.equal(
      same(viaOp.out, direct.out) && same(viaOp.dqkv, direct.dqkv),
      B * H * L >= 65536,
      `B·H·L = ${B * H * L}`,
    );
  }
});
