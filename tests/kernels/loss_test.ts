import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randint, randn, rng } from "../_check.ts";
import { _sumInto, crossEntropy, crossEntropyInto, maskedMse } from "../../src/tensor/ops/loss.ts";
import { crossEntropyRef, maskedMseRef } from "../ref/loss.ts";

/** Row weights: about a third zero, the rest 1/(number of non-zero rows), as the host builds them. */
function rowWeights(rows: number, seed: number): Float32Array<ArrayBuffer> {
  const r = rng(seed);
  const mask = Array.from({ length: rows }, () => r() > 0.33);
  mask[0] = true;
  const n = mask.filter(Boolean).length;
  return Float32Array.from(mask, (m) => (m ? 1 / n : 0));
}

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

for (
  const [rows, cols, scale] of [[29, 37, 1], [3, 8000, 0.5], [70, 257, 2], [1, 1, 1], [512, 8000, 1]] as const
) {
  Deno.test({
    name: `crossEntropyInto matches the float64 reference at N=${rows} V=${cols} gradScale=${scale}`,
    ignore,
  }, async () => {
    const engine = await testEngine();
    const logits = randn(rows * cols, rows + cols, 3);
    const targets = randint(rows, 0, cols, rows * 7 + 1);
    targets[rows - 1] = -100; // ignore_index
    const weights = rowWeights(rows, cols);
    weights[rows - 1] = 0.25;
    const ref = crossEntropyRef(logits, targets, weights, rows, cols, scale);
    await engine.tidy(async () => {
      const lt = engine.tensor(logits, [rows, cols]);
      const out = { loss: engine.empty([rows]), correct: engine.empty([rows]) };
      crossEntropyInto(lt, engine.tensor(targets, [rows]), engine.tensor(weights, [rows]), out, {
        gradScale: scale,
      });
      assertClose(await out.loss.read(), ref.loss, { atol: 1e-6, rtol: 1e-5, name: "loss" });
      assertClose(await out.correct.read(), ref.correct, { atol: 0, rtol: 0, name: "correct" });
      assertClose(await lt.read(), ref.grad, { atol: 1e-7, rtol: 1e-4, name: "grad" });
    });
  });
}

Deno.test({
  name: "crossEntropyInto counts ties as the lowest index and zero-weight rows as nothing",
  ignore,
}, async () => {
  const engine = await testEngine();
  const cols = 300;
  const rows = 4;
  const logits = new Float32Array(rows * cols);
  // Row 0: maxima at 5 and 280, target 5 → correct. Row 1: same maxima, target 280 → wrong.
  // Row 2: all equal, target 0 → correct. Row 3: weight 0 with NaN logits → zeros everywhere.
  for (const r of [0, 1]) {
    logits[r * cols + 5] = 4;
    logits[r * cols + 280] = 4;
  }
  logits.fill(NaN, 3 * cols, 4 * cols);
  const targets = new Int32Array([5, 280, 0, 7]);
  const weights = new Float32Array([1, 1, 0.5, 0]);
  await engine.tidy(async () => {
    const lt = engine.tensor(logits, [rows, cols]);
    const out = { loss: engine.empty([rows]), correct: engine.empty([rows]) };
    crossEntropyInto(lt, engine.tensor(targets, [rows]), engine.tensor(weights, [rows]), out);
    assert.deepEqual([...await out.correct.read()], [1, 0, 0.5, 0]);
    const loss = await out.loss.read();
    assert.equal(loss[3], 0);
    const grad = await lt.read();
    assert.ok(grad.subarray(3 * cols).every((g) => g === 0));
    const ref = crossEntropyRef(logits.subarray(0, 3 * cols), targets, weights, 3, cols);
    assertClose(grad.subarray(0, 3 * cols), ref.grad, { atol: 1e-7, rtol: 1e-4, name: "grad" });
    assertClose(loss.subarray(0, 3), ref.loss, { atol: 1e-6, rtol: 1e-5, name: "loss" });
  });
});

Deno.test({
  name: "crossEntropy returns Σ loss and its backward scales the saved gradient on the GPU",
  ignore,
}, async () => {
  const engine = await testEngine();
  const rows = 29, cols = 37;
  const logits = randn(rows * cols, 11, 2);
  const targets = randint(rows, 0, cols, 12);
  const weights = rowWeights(rows, 13);
  const ref = crossEntropyRef(logits, targets, weights, rows, cols);
  await engine.tidy(async () => {
    const lt = engine.tensor(logits, [rows, cols]);
    lt.requiresGrad = true;
    const tt = engine.tensor(targets, [rows]);
    const wt = engine.tensor(weights, [rows]);
    engine.startTape();
    const loss = crossEntropy(lt, tt, wt);
    assert.deepEqual(loss.shape, [1]);
    // Accumulation: the logits' gradient already holds ones; backward must add to it.
    engine.fill(engine.gradOf(lt), 1);
    engine.backward(loss, engine.tensor(new Float32Array([2.5]), [1]));
    assertClose(await loss.read(), [sum(ref.loss)], { atol: 1e-6, rtol: 1e-5, name: "loss" });
    assertClose(await lt.grad!.read(), ref.grad.map((g) => 1 + 2.5 * g), {
      atol: 1e-6,
      rtol: 1e-5,
      name: "grad",
    });
    // Without a tape, the same value, deterministically.
    const again = crossEntropy(lt, tt, wt);
    assert.deepEqual(await again.read(), await loss.read());
  });
});

Deno.test({ name: "crossEntropy gradient matches finite differences", ignore }, async () => {
  const rows = 6, cols = 7;
  const weights = rowWeights(rows, 3);
  await checkGradients(await testEngine(), {
    name: "crossEntropy",
    inputs: { logits: { data: randn(rows * cols, 21, 1.5), shape: [rows, cols] } },
    wrt: ["logits"],
    constants: (engine) => ({
      targets: engine.tensor(randint(rows, 0, cols, 22), [rows]),
      w: engine.tensor(weights, [rows]),
    }),
    forward: ({ logits, targets, w }) => crossEntropy(logits!, targets!, w!),
  });
});

for (const shape of [[29, 5], [3, 7, 64], [300, 64], [256, 64, 64]]) {
  Deno.test({ name: `maskedMse matches the float64 reference at shape [${shape}]`, ignore }, async () => {
    const engine = await testEngine();
    const cols = shape.at(-1)!;
    const n = shape.reduce((a, b) => a * b, 1);
    const rows = n / cols;
    const est = randn(n, n, 1);
    const target = randn(n, n + 1, 1);
    const weights = rowWeights(rows, n + 2);
    // A zero-weight row whose estimate is not finite still contributes 0.
    const last = weights.indexOf(0);
    if (last >= 0) est[last * cols] = NaN;
    const ref = maskedMseRef(est, target, weights, rows, cols);
    await engine.tidy(async () => {
      const et = engine.tensor(est, shape);
      et.requiresGrad = true;
      engine.startTape();
      const out = maskedMse(et, engine.tensor(target, shape), engine.tensor(weights, [rows]));
      engine.backward(out, engine.tensor(new Float32Array([3]), [1]));
      assertClose(await out.read(), [ref.value], { atol: 1e-6, rtol: 1e-5, name: "mse" });
      assertClose(await et.grad!.read(), ref.grad.map((g) => 3 * g), {
        atol: 1e-7,
        rtol: 1e-5,
        name: "dest",
      });
      // A second backward adds into the gradient the first one wrote.
      engine.startTape();
      const again = maskedMse(et, engine.tensor(target, shape), engine.tensor(weights, [rows]));
      engine.backward(again, engine.tensor(new Float32Array([3]), [1]));
      assertClose(await et.grad!.read(), ref.grad.map((g) => 6 * g), {
        atol: 2e-7,
        rtol: 1e-5,
        name: "dest, accumulated",
      });
    });
  });
}

Deno.test({ name: "maskedMse gradient matches finite differences", ignore }, async () => {
  const rows = 5, cols = 3;
  const weights = rowWeights(rows, 4);
  await checkGradients(await testEngine(), {
    name: "maskedMse",
    inputs: {
      est: { data: randn(rows * cols, 31), shape: [rows, cols] },
      target: { data: randn(rows * cols, 32), shape: [rows, cols] },
    },
    wrt: ["est"],
    constants: (engine) => ({ w: engine.tensor(weights, [rows]) }),
    forward: ({ est, target, w }) => maskedMse(est!, target!, w!),
  });
});

Deno.test(
  { name: "the loss sum is deterministic and exact to float32 rounding at n=1 000 003", ignore },
  async () => {
    const engine = await testEngine();
    const n = 1_000_003;
    const x = randn(n, 5);
    await engine.tidy(async () => {
      const xt = engine.tensor(x, [n]);
      const a = engine.empty([1]);
      const b = engine.empty([1]);
      _sumInto(a, xt);
      _sumInto(b, xt);
      const [va, vb] = [await a.read(), await b.read()];
      assert.equal(va[0], vb[0]);
      assertClose(va, [sum(x)], { atol: 1e-2, rtol: 0, name: "sum" });
    });
  },
);

Deno.test({ name: "crossEntropyInto and maskedMse reject mismatched shapes", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    const logits = engine.zeros([4, 5]);
    const targets = engine.zeros([3], "i32");
    const w = engine.zeros([4]);
    assert.throws(
      () => crossEntropyInto(logits, targets, w, { loss: engine.zeros([4]), correct: engine.zeros([4]) }),
      (e: Error) =>
        e instanceof TypeError && /Cannot run crossEntropyInto: targets has shape \[3\]/.test(e.message),
    );
    assert.throws(() => maskedMse(engine.zeros([4, 5]), engine.zeros([4, 6]), w), TypeError);
    assert.throws(() => maskedMse(engine.zeros([4, 5]), engine.zeros([4, 5]), engine.zeros([5])), TypeError);
  });
});
