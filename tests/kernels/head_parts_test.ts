/**
 * The sampling head's partial products: `softmaxInto` over a product left split over K, `matmulParts`,
 * and `addScaledNoiseParts` sum them as the reduction pass would, so the fused and unfused paths agree to
 * the bit; each is also checked against float64.
 */
import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, randn } from "../_check.ts";
import { softmaxForwardSpec } from "../../kernels/softmax.ts";
import {
  linear,
  linearParts,
  matmulInto,
  matmulParts,
  type SplitProduct,
} from "../../src/tensor/ops/matmul.ts";
import { addScaledNoise, addScaledNoiseParts } from "../../src/tensor/ops/random.ts";
import { softmaxInto } from "../../src/tensor/ops/softmax.ts";
import { matmulRef } from "../ref/matmul.ts";
import { normalRef } from "../ref/random.ts";
import { softmaxRef } from "../ref/softmax.ts";
import { assertSameBits } from "./_split_product.ts";

/** Partial products [splits, n], each at its own scale so that another order of adding rounds differently. */
function partials(splits: number, n: number, seed: number): Float32Array<ArrayBuffer> {
  const part = new Float32Array(splits * n);
  for (let s = 0; s < splits; s++) part.set(randn(n, seed + s, 0.5 * (s + 1)), s * n);
  return part;
}

/** Their sum in split order in f32, as `matmul_reduce` adds them (then the bias per column). */
function sumInOrder(
  part: Float32Array,
  splits: number,
  n: number,
  bias?: Float32Array,
): Float32Array<ArrayBuffer> {
  return Float32Array.from({ length: n }, (_, i) => {
    let s = 0;
    for (let k = 0; k < splits; k++) s = Math.fround(s + part[k * n + i]!);
    return bias ? Math.fround(s + bias[i % bias.length]!) : s;
  });
}

for (const splits of [2, 5]) {
  for (const withBias of [false, true]) {
    Deno.test(
      {
        name: `softmaxInto over ${splits} partial products${
          withBias ? " and a bias" : ""
        } is the softmax of their sum, to the bit`,
        ignore,
      },
      async () => {
        const engine = await testEngine();
        const [rows, cols] = [7, 1003];
        const part = partials(splits, rows * cols, 10 * splits);
        const bias = withBias ? randn(cols, 99) : undefined;
        const sum = sumInOrder(part, splits, rows * cols, bias);
        await engine.tidy(async () => {
          const parts: SplitProduct = {
            part: engine.tensor(part, [splits, rows, cols]),
            splits,
            ...(bias ? { bias: engine.tensor(bias, [cols]) } : {}),
          };
          for (const temperature of [1, 0.7]) {
            const fused = engine.empty([rows, cols]), whole = engine.empty([rows, cols]);
            softmaxInto(fused, parts, { temperature });
            softmaxInto(whole, engine.tensor(sum, [rows, cols]), { temperature });
            const got = await fused.read() as Float32Array;
            assertSameBits(got, await whole.read() as Float32Array, `τ = ${temperature}`);
            assertClose(got, softmaxRef(sum, cols, temperature), { atol: 1e-7, rtol: 1e-5, name: "float64" });
          }
        });
      },
    );
  }
}

Deno.test(
  { name: "softmaxInto of linearParts' logits is the softmax of linear's logits, to the bit", ignore },
  async () => {
    const engine = await testEngine();
    // The head of sampling one short sequence: 37 rows, K = 512 (split), an odd vocabulary.
    const [R, D, V] = [37, 512, 1003];
    const x = randn(R * D, 1), w = randn(V * D, 2, 0.05), b = randn(V, 3);
    await engine.tidy(async () => {
      const xt = engine.tensor(x, [R, D]), wt = engine.tensor(w, [V, D]), bt = engine.tensor(b, [V]);
      const logits = linearParts(xt, wt, { bias: bt });
      assert.ok("part" in logits && logits.splits > 1, "the head is split over K");
      const fused = engine.empty([R, V]), whole = engine.empty([R, V]);
      softmaxInto(fused, logits);
      softmaxInto(whole, linear(xt, wt, bt));
      const got = await fused.read() as Float32Array;
      assertSameBits(got, await whole.read() as Float32Array, "head");
      const want = softmaxRef(matmulRef(x, w, { M: R, N: V, K: D, transB: true, bias: b }).out, V);
      assertClose(got, want, { atol: 1e-6, rtol: 1e-4, name: "head against float64" });
    });
  },
);

Deno.test(
  {
    name: "matmulParts leaves the partials where matmulInto splits; their sum is its product to the bit",
    ignore,
  },
  async () => {
    const engine = await testEngine();
    // The estimate of sampling one short sequence: probabilities over an odd vocabulary times the table.
    const [R, V, E] = [37, 1003, 24];
    const p = randn(R * V, 5, 0.1), table = randn(V * E, 6);
    await engine.tidy(async () => {
      const pt = engine.tensor(p, [R, V]), tt = engine.tensor(table, [V, E]);
      const estimate = engine.tensor(new Float32Array(R * E).fill(NaN), [R, E]);
      const parts = matmulParts(estimate, pt, tt);
      assert.ok(parts && parts.splits > 1, "the estimate is split over K");
      assert.ok(Number.isNaN((await estimate.read())[0]!), "out is left unwritten");
      const whole = engine.empty([R, E]);
      matmulInto(whole, pt, tt);
      const x = engine.empty([R, E]);
      addScaledNoiseParts(parts, 0.8, 0.6, 11, { sum: estimate, into: x });
      const got = await estimate.read() as Float32Array;
      assertSameBits(got, await whole.read() as Float32Array, "estimate");
      assertClose(got, matmulRef(p, table, { M: R, N: E, K: V }).out, {
        atol: 1e-5,
        rtol: 1e-4,
        name: "float64",
      });
      // A short K is not split: the product is written, as matmulInto writes it.
      const [a, b] = [engine.tensor(randn(R * 40, 7), [R, 40]), engine.tensor(randn(40 * E, 8), [40, E])];
      const short = engine.empty([R, E]), shortWhole = engine.empty([R, E]);
      assert.equal(matmulParts(short, a, b), null);
      matmulInto(shortWhole, a, b);
      assertSameBits(await short.read() as Float32Array, await shortWhole.read() as Float32Array, "short K");
    });
  },
);

Deno.test(
  {
    name:
      "addScaledNoiseParts writes the sum and alpha·sum + beta·ε as summing then addScaledNoise do, to the bit",
    ignore,
  },
  async () => {
    const engine = await testEngine();
    for (const [splits, n] of [[2, 1], [5, 4099], [9, 37]] as const) {
      const part = partials(splits, n, 40 + splits);
      const sum = sumInOrder(part, splits, n);
      const seed = 300 + n;
      await engine.tidy(async () => {
        const parts = { part: engine.tensor(part, [splits, n]), splits };
        const sumT = engine.tensor(new Float32Array(n).fill(NaN), [n]);
        const into = engine.tensor(new Float32Array(n).fill(NaN), [n]);
        addScaledNoiseParts(parts, 0.8, -0.6, seed, { sum: sumT, into });
        assertSameBits(await sumT.read() as Float32Array, sum, `sum, ${splits} × ${n}`);
        const separate = addScaledNoise(engine.tensor(sum, [n]), 0.8, -0.6, seed);
        const got = await into.read() as Float32Array;
        assertSameBits(got, await separate.read() as Float32Array, `step, ${splits} × ${n}`);
        const z = normalRef(seed, n);
        const want = Float64Array.from(sum, (v, i) => 0.8 * v - 0.6 * z[i]!);
        assertClose(got, want, { atol: 3e-3, rtol: 1e-6, name: `against float64, ${splits} × ${n}` });
      });
    }
  },
);

Deno.test({ name: "partial products the head's consumers cannot sum are refused", ignore }, async () => {
  const engine = await testEngine();
  assert.throws(
    () => softmaxForwardSpec({ workgroup: 64, inPlace: true, parts: "bias" }),
    /not written in place/,
  );
  engine.tidy(() => {
    const part = engine.zeros([3, 4, 8]);
    const out = engine.empty([4, 8]);
    assert.throws(() => softmaxInto(out, { part, splits: 3, activation: "gelu" }), /no activation/);
    assert.throws(() => softmaxInto(engine.empty([4, 7]), { part, splits: 3 }), /expected f32 \[4,8\]/);
    assert.throws(
      () => softmaxInto(out, { part, splits: 3, bias: engine.zeros([7]) }),
      /bias has shape \[7\]/,
    );
    const sum = engine.empty([32]), into = engine.empty([32]);
    assert.throws(
      () => addScaledNoiseParts({ part, splits: 3, bias: engine.zeros([8]) }, 1, 1, 0, { sum, into }),
      /no bias or activation/,
    );
    assert.throws(
      () => addScaledNoiseParts({ part, splits: 3 }, 1, 1, 0, { sum: engine.empty([31]), into }),
      /sum is \[31\]/,
    );
    assert.throws(() => addScaledNoiseParts({ part, splits: 3 }, 1, 1, -1, { sum, into }), RangeError);
    assert.throws(() => matmulParts(out, engine.zeros([4, 5]), engine.zeros([2, 5, 8])), /expected \[K,N\]/);
  });
});
