/**
 * Parity with the PyTorch model: tests/testdata/seed_state.* were written by bench/make_parity_golden.py
 * from bench/seed_torch.py (the seed's architecture and parameter names), tiny config, dropout 0.
 */
import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose } from "../_check.ts";
import { Diffusion } from "../../src/diffusion/diffusion.ts";
import { modelConfig } from "../../src/diffusion/config.ts";
import { concat, maskedFill, mixRows } from "../../src/tensor/ops/elementwise.ts";
import { loadStateDict } from "../../src/train/state_dict.ts";
import { decodeSafetensors, type HostTensor } from "../../src/train/safetensors.ts";
import { adamwUpdate, gradNormInto } from "../../src/tensor/ops/adamw.ts";
import type { Engine } from "../../src/tensor/engine.ts";

const dir = new URL("../testdata/", import.meta.url);
const golden = decodeSafetensors(
  await Deno.readFile(new URL("seed_state.safetensors", dir)),
  "seed_state.safetensors",
);
const summary = JSON.parse(await Deno.readTextFile(new URL("seed_state.json", dir)));
const get = (name: string): HostTensor => {
  const t = golden.tensors.get(name);
  if (!t) throw new Error(`golden file lacks ${name}`);
  return t;
};

/**
 * Tolerances (|ours − torch| <= atol + rtol·|torch|), each with its reason.
 * - forward: float32 on both sides, different summation orders in matmul/attention/LayerNorm: ~1e-6 relative.
 * - losses: scalar sums over ≤ 30 positions of float32 terms.
 * - gradients: longer float32 chains (backward through 2 layers, softmax over V, LayerNorm) and
 *   different reduction orders; the embedding gradient sums duplicates in another order.
 * - adamw: each update moves a weight by up to lr = 1e-2 whatever the gradient's size (m/√v); where a
 *   gradient is at rounding level its step is noise, so allow 0.5% of the two-step range absolutely.
 */
const TOLERANCE = {
  forward: { atol: 2e-5, rtol: 2e-4 },
  loss: { atol: 1e-5, rtol: 1e-5 },
  grad: { atol: 2e-6, rtol: 2e-3 },
  adamw: { atol: 1e-4, rtol: 1e-3 },
} as const;

function setup(engine: Engine) {
  const c = summary.config;
  const model = Diffusion.create(
    engine,
    modelConfig({
      vocabSize: c.vocabSize,
      embeddingDim: c.embeddingDim,
      modelDim: c.modelDim,
      layers: c.layers,
      heads: c.heads,
      dropout: 0,
    }),
  );
  const weights = new Map<string, HostTensor>();
  for (const [name, t] of golden.tensors) if (name.startsWith("weights.")) weights.set(name.slice(8), t);
  loadStateDict(model, weights, "seed_state.safetensors");
  const B = c.batch, L = c.length;
  const ids = Int32Array.from(get("input.ids").data);
  const lengths = Int32Array.from(get("input.lengths").data);
  const cond = Uint32Array.from(get("input.cond").data);
  const t = get("input.t").data;
  const signal = new Float32Array(B), noise = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    const f = model.schedule.factors(t[b]!);
    signal[b] = f.signal;
    noise[b] = f.noise;
  }
  const rowWeight = new Float32Array(B * L);
  let n = 0;
  for (let i = 0; i < B * L; i++) if (i % L < lengths[Math.floor(i / L)]! && !cond[i]) n++;
  for (let i = 0; i < B * L; i++) if (i % L < lengths[Math.floor(i / L)]! && !cond[i]) rowWeight[i] = 1 / n;
  const inputs = {
    ids: engine.keep(engine.tensor(ids, [B, L])),
    lengths: engine.keep(engine.tensor(lengths, [B])),
    cond: engine.keep(engine.tensor(cond, [B, L])),
    rowWeight: engine.keep(engine.tensor(rowWeight, [B * L])),
    t: engine.keep(engine.tensor(t, [B])),
    signal: engine.keep(engine.tensor(signal, [B])),
    noise: engine.keep(engine.tensor(noise, [B])),
  };
  const z = engine.keep(engine.tensor(get("input.z").data, [B, L, c.embeddingDim]));
  return { model, inputs, z };
}

Deno.test({ name: "Estimator matches PyTorch: estimate and latent", ignore }, async () => {
  const engine = await testEngine();
  const { model, inputs, z } = setup(engine);
  await engine.tidy(async () => {
    const x0 = model.embed(inputs.ids);
    const xt = mixRows(x0, z, inputs.signal, inputs.noise);
    const input = concat([
      maskedFill(xt, inputs.cond, 0),
      maskedFill(x0, inputs.cond, 0, { invert: true }),
      engine.zeros(x0.shape),
    ]);
    const { estimate, latent } = model.estimator.forward(input, inputs.t, inputs.lengths, {
      training: false,
    });
    assertClose(await estimate.read(), get("output.estimate").data, {
      ...TOLERANCE.forward,
      name: "estimate",
    });
    assertClose(await latent.read(), get("output.latent").data, { ...TOLERANCE.forward, name: "latent" });
  });
});

for (const key of ["plain", "selfcond"] as const) {
  Deno.test(
    { name: `Diffusion.loss matches PyTorch: losses and every gradient (${key})`, ignore },
    async () => {
      const engine = await testEngine();
      const { model, inputs, z } = setup(engine);
      await engine.tidy(async () => {
        engine.startTape();
        const out = model.loss(inputs, { selfCondition: key === "selfcond", seed: 0, z });
        engine.backward(out.loss);
        const expected = summary[key];
        for (const name of ["loss", "mse", "ce", "accuracy"] as const) {
          assertClose(await out[name].read(), [expected[name]], { ...TOLERANCE.loss, name });
        }
        const grads = await model.store.read("grads");
        let checked = 0;
        for (const name of model.store.names) {
          assertClose(grads.get(name)!, get(`grad.${key}.${name}`).data, {
            ...TOLERANCE.grad,
            name: `d ${name}`,
          });
          checked++;
        }
        assert.equal(checked, model.store.names.length);
      });
    },
  );
}

Deno.test({ name: "two AdamW steps with clipping match PyTorch", ignore }, async () => {
  const engine = await testEngine();
  const { model, inputs, z } = setup(engine);
  const c = summary.config;
  const norm = engine.keep(engine.zeros([1]));
  for (let step = 1; step <= 2; step++) {
    model.store.zeroGrads();
    engine.tidy(() => {
      engine.startTape();
      engine.backward(model.loss(inputs, { selfCondition: false, seed: 0, z }).loss);
    });
    gradNormInto(norm, model.store.arenas.grads);
    assertClose(await norm.read(), [summary.grad_norms[step - 1]], {
      atol: 1e-6,
      rtol: 1e-4,
      name: "grad norm",
    });
    adamwUpdate(model.store.arenas, norm, {
      lr: c.lr,
      beta1: c.beta1,
      beta2: c.beta2,
      eps: 1e-8,
      weightDecay: c.weightDecay,
      step,
      maxNorm: c.clip,
    });
  }
  const after = await model.store.read("params");
  for (const name of model.store.names) {
    assertClose(after.get(name)!, get(`after_adamw.${name}`).data, { ...TOLERANCE.adamw, name });
  }
});
