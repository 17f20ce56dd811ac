import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randn } from "../_check.ts";
import { gelu } from "../../src/tensor/ops/gelu.ts";
import { add } from "../../src/tensor/ops/elementwise.ts";
import { geluBackwardRef, geluRef } from "../ref/gelu.ts";

for (const n of [1, 37, 1000, 70001]) {
  Deno.test(
    { name: `gelu_forward and gelu_backward match the float64 reference at n=${n}`, ignore },
    async () => {
      const engine = await testEngine();
      const x = randn(n, n, 3);
      const dout = randn(n, n + 1);
      await engine.tidy(async () => {
        const xt = engine.tensor(x, [n]);
        xt.requiresGrad = true;
        engine.startTape();
        const y = gelu(xt);
        engine.backward(y, engine.tensor(dout, [n]));
        assertClose(await y.read(), geluRef(x), { atol: 1e-6, rtol: 1e-5, name: "gelu" });
        assertClose(await xt.grad!.read(), geluBackwardRef(x, dout), {
          atol: 1e-6,
          rtol: 1e-5,
          name: "dgelu",
        });
      });
    },
  );
}

Deno.test(
  { name: "a second gelu of the same input adds into the gradient the first wrote", ignore },
  async () => {
    const engine = await testEngine();
    const n = 300;
    const x = randn(n, 11), dout = randn(n, 12);
    await engine.tidy(async () => {
      const xt = engine.tensor(x, [n]);
      xt.requiresGrad = true;
      engine.startTape();
      const y = add(gelu(xt), gelu(xt));
      engine.backward(y, engine.tensor(dout, [n]));
      const want = geluBackwardRef(x, dout).map((v) => 2 * v);
      assertClose(await xt.grad!.read(), want, { atol: 1e-6, rtol: 1e-5, name: "dgelu twice" });
    });
  },
);

Deno.test({ name: "gelu gradient matches finite differences", ignore }, async () => {
  await checkGradients(await testEngine(), {
    name: "gelu",
    inputs: { x: { data: randn(29, 5, 2), shape: [29] } },
    wrt: ["x"],
    forward: ({ x }) => gelu(x!),
  });
});
