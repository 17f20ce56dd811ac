import { throws as assertThrows } from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randn } from "../_check.ts";
import { softmax, softmaxInto } from "../../src/tensor/ops/softmax.ts";
import { softmaxBackwardRef, softmaxRef } from "../ref/softmax.ts";

const TOL = { atol: 1e-7, rtol: 1e-5 };
// dy − Σ y∘dy cancels: the backward is good to a few float32 ulps of |dy| (~1), times y.
const GRAD_TOL = { atol: 1e-6, rtol: 1e-5 };

for (const [rows, cols] of [[1, 1], [37, 7], [5, 1000], [3, 8003], [70000, 3]] as const) {
  Deno.test(
    { name: `softmax forward and backward match the float64 reference at rows=${rows} cols=${cols}`, ignore },
    async () => {
      const engine = await testEngine();
      const n = rows * cols;
      const x = randn(n, cols + 1, 4);
      const dy = randn(n, cols + 2);
      await engine.tidy(async () => {
        const xt = engine.tensor(x, [rows, cols]);
        xt.requiresGrad = true;
        engine.startTape();
        const y = softmax(xt);
        engine.backward(y, engine.tensor(dy, [rows, cols]));
        const want = softmaxRef(x, cols);
        assertClose(await y.read(), want, { ...TOL, name: "softmax" });
        assertClose(await xt.grad!.read(), softmaxBackwardRef(want, dy, cols), {
          ...GRAD_TOL,
          name: "dsoftmax",
        });
      });
    },
  );
}

Deno.test(
  { name: "softmaxInto applies the temperature, in place and into another tensor", ignore },
  async () => {
    const engine = await testEngine();
    const [rows, cols] = [4, 8000];
    const x = randn(rows * cols, 3, 3);
    await engine.tidy(async () => {
      const a = engine.tensor(x, [2, rows / 2, cols]);
      const out = engine.empty([2, rows / 2, cols]);
      softmaxInto(out, a, { temperature: 0.7 });
      assertClose(await out.read(), softmaxRef(x, cols, 0.7), { ...TOL, name: "softmaxInto τ=0.7" });
      softmaxInto(a, a);
      assertClose(await a.read(), softmaxRef(x, cols), { ...TOL, name: "softmaxInto in place" });
      const small = randn(6 * 5, 9);
      const b = engine.tensor(small, [6, 5]);
      softmaxInto(b, b, { temperature: 2 });
      assertClose(await b.read(), softmaxRef(small, 5, 2), { ...TOL, name: "softmaxInto in place τ=2" });
    });
  },
);

Deno.test(
  { name: "softmaxInto rejects bad shapes, overlapping views and temperatures", ignore },
  async () => {
    const engine = await testEngine();
    engine.tidy(() => {
      const x = engine.empty([4, 8]);
      assertThrows(() => softmaxInto(engine.empty([4, 7]), x), TypeError);
      assertThrows(() => softmaxInto(engine.empty([4, 8]), x, { temperature: 0 }), RangeError);
      assertThrows(() => softmaxInto(x.rows(2, 2), x.rows(0, 2)), TypeError);
      assertThrows(() => softmax(engine.empty([4, 0])), TypeError);
    });
  },
);

Deno.test({ name: "softmax gradient matches finite differences", ignore }, async () => {
  for (const cols of [6, 1500]) {
    await checkGradients(await testEngine(), {
      name: `softmax cols=${cols}`,
      inputs: { x: { data: randn(3 * cols, cols, 2), shape: [3, cols] } },
      wrt: ["x"],
      forward: ({ x }) => softmax(x!),
      h: cols > 100 ? 5e-2 : 1e-2,
      atol: cols > 100 ? 2e-4 : 2e-3,
    });
  }
});
