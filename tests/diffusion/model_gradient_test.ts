/**
 * Finite-difference check of the whole model's gradients: `Diffusion.loss` (embedding + LayerNorm,
 * time MLP, FiLM, two encoder layers with rotary attention and a padding mask, lm_head, MSE + CE) at a
 * tiny size, with and without self-conditioning. For every parameter tensor, the two elements with the
 * largest analytic gradient and one random element are perturbed in the parameter arena and the
 * central difference of the float32 loss, taken in float64 on the host, is compared with the gradient
 * that `engine.backward(loss)` accumulates into the gradient arena.
 *
 * The seed's loss has two stop-gradients, which the finite differences must respect: the MSE target
 * `x0` is detached, and the self-conditioning pass runs without gradient. So for the perturbed
 * evaluations the model is patched to feed the values of the unperturbed run into exactly those two
 * places (the target view of `x0` and the self-conditioning estimate); everything else is recomputed
 * from the perturbed parameters. A check that the patched loss at the unperturbed parameters equals the
 * unpatched one guards the patch.
 */
import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, randint, randn, rng } from "../_check.ts";
import { Diffusion, type LossInputs } from "../../src/diffusion/diffusion.ts";
import type { ForwardOptions } from "../../src/diffusion/estimator.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

const V = 23, E = 8, D = 16, LAYERS = 2, HEADS = 2, B = 2, L = 6;

/**
 * Step and tolerance, |analytic − fd| <= ATOL + RTOL·|fd|.
 * - Rounding: the loss is ≈ 4–5 in float32 (ulp 4.8e-7) and one evaluation is off by a few ulp, so the
 *   difference of two evaluations carries ~1.5e-6, i.e. 1.5e-6 / (2h) = 1.5e-4 in the central difference
 *   at h = 5e-3 (the quantum of fd itself is 4.8e-7 / 2h ≈ 5e-5). ATOL = 3e-4 is twice that.
 * - Truncation: the parameters are O(0.1–1) (set below), so h = 5e-3 is a small relative step; the error
 *   h²·f‴/6 measured up to 0.6% of the probed gradient (the time features sin(2π·t·w) are the most
 *   curved). RTOL = 2e-2 is three times that. A larger h (1e-2) doubles the truncation error on the
 *   sinusoids; a smaller one (3e-3) lets rounding dominate the small attention gradients.
 * Measured on lavapipe over 20 parameter draws: the worst probe used 34% of this bound. A sign flip, a
 * missing term or a wrong factor in a backward is off by 50% or more of the gradient.
 */
const H = 5e-3, ATOL = 3e-4, RTOL = 2e-2;
/**
 * Each tensor's largest gradient must stand clear of the rounding floor, or its check says nothing: at
 * 4·ATOL, a gradient that is wrong by half its size already exceeds the tolerance.
 */
const MEANINGFUL = 4 * ATOL;

/**
 * Replaces the seed's small initialisation by O(1/√fan_in) weights, non-zero biases and FiLM-ready
 * norms, so that every path (attention scores, FiLM, biases) carries a gradient well above float32
 * rounding: with std 0.02 weights the attention is nearly uniform and q, k get almost no gradient.
 */
function randomParameters(model: Diffusion, seed: number): Map<string, Float32Array<ArrayBuffer>> {
  const out = new Map<string, Float32Array<ArrayBuffer>>();
  let s = seed;
  for (const name of model.store.names) {
    const shape = model.store.shapeOf(name);
    const size = shape.reduce((a, b) => a * b, 1);
    let values: Float32Array<ArrayBuffer>;
    if (name === "norm.weight") values = randn(size, s++, 0.1).map((v) => 1 + v);
    else if (name.endsWith("bias")) values = randn(size, s++, 0.1);
    else if (/w_[qk]\.weight$/.test(name)) values = randn(size, s++, 2 / Math.sqrt(shape[1]!));
    else if (shape.length === 2) values = randn(size, s++, 1 / Math.sqrt(shape[1]!));
    else values = randn(size, s++, 1);
    out.set(name, values);
  }
  return out;
}

/** Inputs with padding (the second sequence has length 4 of 6) and given tokens. */
function makeInputs(model: Diffusion, engine: Engine): { inputs: LossInputs; z: Tensor } {
  const lengths = new Int32Array([L, 4]);
  const ids = randint(B * L, 3, V, 11);
  const cond = new Uint32Array(B * L);
  cond[0] = 1;
  cond[3] = 1;
  cond[L + 1] = 1;
  const rowWeight = new Float32Array(B * L);
  const diffused = (i: number) => i % L < lengths[Math.floor(i / L)]! && !cond[i];
  for (let i = 0; i < B * L; i++) {
    // Pad positions hold the pad id 0 and carry no weight.
    if (i % L >= lengths[Math.floor(i / L)]!) ids[i] = 0;
  }
  let n = 0;
  for (let i = 0; i < B * L; i++) if (diffused(i)) n++;
  for (let i = 0; i < B * L; i++) if (diffused(i)) rowWeight[i] = 1 / n;
  const t = new Float32Array([0.3, 0.75]);
  const signal = new Float32Array(B), noise = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    const f = model.schedule.factors(t[b]!);
    signal[b] = f.signal;
    noise[b] = f.noise;
  }
  const keep = (x: Tensor) => engine.keep(x);
  return {
    inputs: {
      ids: keep(engine.tensor(ids, [B, L])),
      lengths: keep(engine.tensor(lengths, [B])),
      cond: keep(engine.tensor(cond, [B, L])),
      rowWeight: keep(engine.tensor(rowWeight, [B * L])),
      t: keep(engine.tensor(t, [B])),
      signal: keep(engine.tensor(signal, [B])),
      noise: keep(engine.tensor(noise, [B])),
    },
    z: keep(engine.tensor(randn(B * L * E, 12), [B, L, E])),
  };
}

/**
 * Patches `model` so that the detached quantities can be held fixed: in "capture" mode the MSE target
 * x0 and the self-conditioning estimate are copied aside; in "replay" mode the target view of x0 and
 * the self-conditioning estimate are the captured values.
 */
function holdDetached(model: Diffusion, engine: Engine): { mode: "capture" | "replay"; release(): void } {
  const embed = model.embed.bind(model);
  const interpolate = model.interpolate.bind(model);
  const captured: { x0: Tensor | null; selfCond: Tensor | null } = { x0: null, selfCond: null };
  const control = {
    mode: "capture" as "capture" | "replay",
    release() {
      captured.x0?.dispose();
      captured.selfCond?.dispose();
    },
  };
  const capture = (slot: "x0" | "selfCond", t: Tensor) => {
    captured[slot]?.dispose();
    const copy = engine.keep(engine.empty(t.shape, "f32", `captured ${slot}`));
    engine.runtime.copy(t, copy);
    captured[slot] = copy;
  };
  model.embed = (ids: Tensor) => {
    const x0 = embed(ids);
    if (control.mode === "capture") capture("x0", x0);
    else {
      // loss() takes the MSE target as `x0.viewAs(x0.shape)`; the other uses of x0 read x0 itself.
      const frozen = captured.x0!;
      x0.viewAs = (shape: readonly number[]) => frozen.viewAs(shape);
    }
    return x0;
  };
  model.interpolate = (latent: Tensor, options: ForwardOptions) => {
    // Only the self-conditioning pass (under noGrad) interpolates inside loss().
    if (control.mode === "replay") return captured.selfCond!;
    const out = interpolate(latent, options);
    capture("selfCond", out);
    return out;
  };
  return control;
}

/** The model under test: two layers at a tiny size, no dropout. */
function tinyModel(engine: Engine): Diffusion {
  return Diffusion.create(engine, {
    vocabSize: V,
    embeddingDim: E,
    modelDim: D,
    layers: LAYERS,
    heads: HEADS,
    dropout: 0,
    rotaryDim: 4,
    timeFeatures: 12,
    timeHidden: 20,
  });
}

async function checkModel(selfCondition: boolean): Promise<void> {
  const engine = await testEngine();
  const runtime = engine.runtime;
  const model = tinyModel(engine);
  const base = randomParameters(model, selfCondition ? 100 : 200);
  model.store.write(base);
  const { inputs, z } = makeInputs(model, engine);
  const options = { selfCondition, seed: 3, z, training: true };
  const control = holdDetached(model, engine);

  // Analytic gradients, and the captured detached values.
  model.store.zeroGrads();
  const loss0 = await engine.tidy(async () => {
    engine.startTape();
    const out = model.loss(inputs, options);
    engine.backward(out.loss);
    return (await out.loss.read())[0]!;
  });
  const grads = await model.store.read("grads");

  // Probes: the two largest |gradient| entries of every tensor and one random entry.
  const pick = rng(selfCondition ? 5 : 6);
  const probes: { name: string; index: number; analytic: number }[] = [];
  for (const name of model.store.names) {
    const g = grads.get(name)!;
    const order = [...g.keys()].sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!));
    assert.ok(
      Math.abs(g[order[0]!]!) > MEANINGFUL,
      `${name}: largest gradient ${g[order[0]!]} is below ${MEANINGFUL}, the check would be vacuous`,
    );
    const chosen = [order[0]!, order[1]!];
    let random = Math.floor(pick() * g.length);
    while (chosen.includes(random)) random = (random + 1) % g.length;
    chosen.push(random);
    for (const index of chosen) probes.push({ name, index, analytic: g[index]! });
  }

  // Every perturbed loss is copied into one buffer and read once at the end.
  control.mode = "replay";
  const results = engine.keep(engine.zeros([2 * probes.length + 1], "f32", "losses"));
  const evaluate = (slot: number) =>
    engine.tidy(() => {
      const out = model.loss(inputs, options);
      runtime.copy(out.loss, results.rows(slot, 1));
    });
  evaluate(2 * probes.length);
  const steps: number[] = [];
  for (const [p, { name, index }] of probes.entries()) {
    const original = base.get(name)!;
    const values = new Map(base);
    const plus = new Float32Array(original), minus = new Float32Array(original);
    plus[index] = original[index]! + H;
    minus[index] = original[index]! - H;
    steps.push(plus[index]! - minus[index]!);
    values.set(name, plus);
    model.store.write(values);
    evaluate(2 * p);
    values.set(name, minus);
    model.store.write(values);
    evaluate(2 * p + 1);
  }
  model.store.write(base);
  const losses = await results.read() as Float32Array;
  results.dispose();
  control.release();
  for (const t of [...Object.values(inputs), z]) t.dispose();
  model.store.dispose();

  // Holding the detached values fixed must not change the loss itself.
  assertClose([losses[2 * probes.length]!], [loss0], { atol: 1e-6, rtol: 0, name: "replayed loss" });
  assert.ok(loss0 > 1 && loss0 < 20, `loss ${loss0}`);

  const byTensor = new Map<string, { got: number[]; want: number[] }>();
  let worst = 0, worstAbs = 0, worstRel = 0, worstName = "";
  for (const [p, { name, analytic }] of probes.entries()) {
    const fd = (losses[2 * p]! - losses[2 * p + 1]!) / steps[p]!;
    const entry = byTensor.get(name) ?? { got: [], want: [] };
    entry.got.push(analytic);
    entry.want.push(fd);
    byTensor.set(name, entry);
    const used = Math.abs(analytic - fd) / (ATOL + RTOL * Math.abs(fd));
    if (used > worst) worstName = `${name}: analytic ${analytic}, fd ${fd}`;
    worst = Math.max(worst, used);
    worstAbs = Math.max(worstAbs, Math.abs(analytic - fd));
    if (Math.abs(fd) > 1e-2) worstRel = Math.max(worstRel, Math.abs(analytic - fd) / Math.abs(fd));
  }
  if (Deno.env.get("DIFFLM_VERBOSE")) {
    for (const [name, { got, want }] of byTensor) {
      console.log(name, got.map((g, i) => `${g.toExponential(3)}/${want[i]!.toExponential(3)}`).join(" "));
    }
    console.log(
      `worst probe uses ${(100 * worst).toFixed(1)}% of its tolerance; worst |error| ${
        worstAbs.toExponential(2)
      }, worst relative error where |fd| > 1e-2: ${worstRel.toExponential(2)}; worst probe ${worstName}`,
    );
  }
  for (const [name, { got, want }] of byTensor) {
    assertClose(got, want, { atol: ATOL, rtol: RTOL, name: `d loss / d ${name}` });
  }
  assert.equal(byTensor.size, model.store.names.length);
}

Deno.test(
  { name: "Diffusion.loss: every parameter's gradient matches finite differences", ignore },
  () => checkModel(false),
);

Deno.test(
  { name: "Diffusion.loss with self-conditioning: every gradient matches finite differences", ignore },
  () => checkModel(true),
);
