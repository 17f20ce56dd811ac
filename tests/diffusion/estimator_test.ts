/**
 * The estimator's sampling forward (no tape: split-K partial products summed where they are consumed,
 * residuals added in place) against its taped forward (`linear` throughout, every split product summed
 * by the reduction pass), bit for bit, at a width where the products of a few sequences are split over K;
 * and the latent alone (`Estimator.latent`, its input whole or as the three tensors) against the forward's.
 */
import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { randn } from "../_check.ts";
import { modelConfig } from "../../src/diffusion/config.ts";
import { Estimator } from "../../src/diffusion/estimator.ts";
import { split } from "../../src/tensor/ops/elementwise.ts";
import { ParameterStore } from "../../src/tensor/parameters.ts";
import { assertSameBits } from "../kernels/_split_product.ts";

Deno.test(
  { name: "Estimator's sampling forward equals its taped forward to the bit (batches 1 and 3)", ignore },
  async () => {
    const engine = await testEngine();
    // D = 256: the FFN's up-projection of 13·B rows is split over K (= D), its down-projection over 4D.
    const [E, D, layers, L] = [16, 256, 2, 13];
    const store = new ParameterStore(engine);
    const estimator = new Estimator(
      store,
      modelConfig({ vocabSize: 50, embeddingDim: E, modelDim: D, layers }),
    );
    store.allocate(0);
    // Weights of O(1/√fan_in) and biases of O(1), so that every bias and activation shows in the output.
    const values = new Map<string, Float32Array>();
    for (const [k, name] of store.names.entries()) {
      const shape = store.shapeOf(name);
      const size = shape.reduce((a, b) => a * b, 1);
      const scale = name.endsWith("bias") ? 0.5 : shape.length === 2 ? 1 / Math.sqrt(shape[1]!) : 1;
      values.set(name, randn(size, 10 + k, scale));
    }
    store.write(values);
    const runtime = engine.runtime, dispatch = runtime.dispatch;
    for (const B of [1, 3]) {
      await engine.tidy(async () => {
        const input = engine.tensor(randn(B * L * 3 * E, B), [B, L, 3 * E]);
        const t = engine.tensor(Float32Array.from({ length: B }, (_, i) => 0.3 + 0.2 * i), [B]);
        const lengths = engine.tensor(Int32Array.from({ length: B }, (_, i) => L - 4 * i), [B]);
        // Runs `pass`, returning what it returns and the kernels it dispatched, in order.
        const spied = <T>(pass: () => T): { result: T; kernels: string[] } => {
          const kernels: string[] = [];
          runtime.dispatch = (spec, ...rest) => {
            kernels.push(spec.name);
            return dispatch.call(runtime, spec, ...rest);
          };
          try {
            return { result: pass(), kernels };
          } finally {
            runtime.dispatch = dispatch;
          }
        };
        const { result: sampled, kernels } = spied(() =>
          estimator.forward(input, t, lengths, { training: false })
        );
        // Each layer's FFN sums its hidden partials in the down-projection, with no reduction pass.
        assert.equal(kernels.filter((k) => k.endsWith("_a_parts_bias_gelu")).length, layers, kernels.join());
        assert.ok(!kernels.includes("matmul_reduce_bias_gelu"), kernels.join());
        const estimate = await sampled.estimate.read() as Float32Array;
        const latent = await sampled.latent.read() as Float32Array;
        // The latent alone: the same kernels up to the estimate's projection (the test pool's poisoning
        // fills aside), and the same bits.
        const alone = spied(() => estimator.latent(input, t, lengths, { training: false }));
        const unfilled = (list: string[]) => list.filter((k) => k !== "fill");
        const own = unfilled(alone.kernels), all = unfilled(kernels);
        assert.ok(own.length < all.length, `${own} against ${all}`);
        assert.deepEqual(own, all.slice(0, own.length));
        assertSameBits(await alone.result.read() as Float32Array, latent, `latent alone, B=${B}`);
        // The three inputs unconcatenated: the projection reads them in place (no concatenation pass).
        const [xt, xc, xs] = split(input, [E, E, E]);
        const three = spied(() => estimator.latent([xt!, xc!, xs!], t, lengths, { training: false }));
        assert.ok(three.kernels.some((k) => k.endsWith("_a_concat3")), three.kernels.join());
        assertSameBits(await three.result.read() as Float32Array, latent, `latent of three, B=${B}`);
        assert.throws(
          () => estimator.latent([xt!, xc!, input], t, lengths, { training: false }),
          /expected \[B,L,16\] for each of the three/,
        );
        engine.startTape();
        const taped = estimator.forward(input, t, lengths, { training: false });
        assertSameBits(estimate, await taped.estimate.read() as Float32Array, `estimate, B=${B}`);
        assertSameBits(latent, await taped.latent.read() as Float32Array, `latent, B=${B}`);
        engine.backward(engine.zeros([1]));
      });
    }
    store.dispose();
  },
);
