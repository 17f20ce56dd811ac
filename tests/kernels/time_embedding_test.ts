import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randn, rng } from "../_check.ts";
import { timeEmbedding } from "../../src/tensor/ops/time_embedding.ts";
import { timeEmbeddingBackwardRef, timeEmbeddingRef } from "../ref/time_embedding.ts";

for (const [batch, freqs] of [[1, 1], [7, 64], [37, 5]] as const) {
  Deno.test(
    { name: `time_embedding matches the float64 reference at B=${batch} F=${freqs}`, ignore },
    async () => {
      const engine = await testEngine();
      const r = rng(batch * 100 + freqs);
      const t = Float32Array.from({ length: batch }, () => r());
      const w = randn(freqs, freqs);
      const dout = randn(batch * 2 * freqs, 9);
      await engine.tidy(async () => {
        const wt = engine.tensor(w, [freqs]);
        wt.requiresGrad = true;
        engine.startTape();
        const out = timeEmbedding(engine.tensor(t, [batch]), wt);
        engine.backward(out, engine.tensor(dout, out.shape));
        assertClose(await out.read(), timeEmbeddingRef(t, w), { atol: 2e-5, rtol: 1e-4, name: "features" });
        assertClose(await wt.grad!.read(), timeEmbeddingBackwardRef(t, w, dout), {
          atol: 1e-4,
          rtol: 1e-4,
          name: "dw",
        });
      });
    },
  );
}

Deno.test({ name: "time_embedding gradient matches finite differences", ignore }, async () => {
  const r = rng(3);
  const t = Float32Array.from({ length: 4 }, () => r());
  await checkGradients(await testEngine(), {
    name: "timeEmbedding",
    inputs: { w: { data: randn(6, 4), shape: [6] } },
    wrt: ["w"],
    constants: (engine) => ({ t: engine.tensor(t, [4]) }),
    forward: ({ t, w }) => timeEmbedding(t!, w!),
    h: 1e-3,
  });
});
