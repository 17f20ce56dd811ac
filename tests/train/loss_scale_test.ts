/**
 * The step guard (kernels/loss_scale.ts, src/train/loss_scale.ts): its state machine against a host
 * model over a sequence of finite and non-finite norms, the guarded AdamW update (a skipped step leaves
 * weights and moments bit for bit; a clean one equals the clipped update of the unscaled gradients),
 * and the trainer skipping and counting a step whose gradients are NaN, in f32 and in mixed precision.
 */
import assert from "node:assert/strict";
import { ignore, mixedTestEngine, testEngine } from "../_gpu.ts";
import { assertClose, randn } from "../_check.ts";
import { StepGuard } from "../../src/train/loss_scale.ts";
import { adamwUpdate } from "../../src/tensor/ops/adamw.ts";
import { Diffusion } from "../../src/diffusion/diffusion.ts";
import { DEFAULT_TRAIN } from "../../src/diffusion/config.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { decodeRunState } from "../../src/train/state_dict.ts";
import { randomBatch } from "../../bench/_random.ts";

/** The guard on the host: [scale, clean, skipped, multiplier, flag], the seed, and the true norm. */
function guardModel(
  state: number[],
  norm: number,
  o: { growthInterval: number; dynamic: boolean; accumulate: number },
): { norm: number; seed: number } {
  const used = state[0]!;
  let scale = used;
  if (Number.isFinite(norm)) {
    norm = Math.fround(norm / used);
    state[3] = Math.fround(1 / used);
    state[4] = 0;
    let clean = state[1]! + 1;
    if (o.dynamic && clean >= o.growthInterval) {
      scale = Math.min(used * 2, 2 ** 24);
      clean = 0;
    }
    state[1] = clean;
  } else {
    state[3] = 0;
    state[4] = 1;
    state[1] = 0;
    state[2]! += 1;
    if (o.dynamic) scale = Math.max(used / 2, 1);
  }
  state[0] = scale;
  return { norm, seed: Math.fround(scale * Math.fround(1 / o.accumulate)) };
}

for (const dynamic of [true, false]) {
  Deno.test({
    name: `StepGuard ${
      dynamic ? "with dynamic loss scaling" : "at a fixed scale of 1"
    } follows its state machine`,
    ignore,
  }, async () => {
    const engine = await testEngine();
    const options = { growthInterval: 3, dynamic, accumulate: 2 };
    const guard = new StepGuard(engine, { initial: dynamic ? 1024 : 1, ...options });
    const state = [dynamic ? 1024 : 1, 0, 0, dynamic ? 1 / 1024 : 1, 0];
    const norms = [5, Infinity, NaN, 7, 8, 9, 10, -Infinity, 3, 4, 5, 6, 7, 8];
    for (const [i, value] of norms.entries()) {
      const norm = engine.tensor(new Float32Array([value]), [1]);
      guard.record(norm);
      const want = guardModel(state, value, options);
      const got = Array.from(await guard.state.read());
      assert.deepEqual(got, state.map(Math.fround), `state after norm ${i} (${value})`);
      assert.deepEqual(Array.from(await guard.seed.read()), [want.seed], `seed after norm ${i}`);
      const after = (await norm.read())[0]!;
      if (Number.isFinite(value)) assert.equal(after, want.norm, `true norm after norm ${i}`);
      assert.deepEqual(guard.verdictOf(got), {
        skipped: !Number.isFinite(value),
        scale: state[0],
        skippedTotal: state[2],
      });
      norm.dispose();
    }
    assert.equal(state[2], 3);
    guard.dispose();
  });
}

Deno.test({ name: "guarded AdamW skips a flagged step and unscales a clean one", ignore }, async () => {
  const engine = await testEngine();
  const n = 300;
  const grads = randn(n, 1, 64),
    params = randn(n, 2),
    m = randn(n, 3, 0.1),
    v = randn(n, 4, 0.01).map(Math.abs);
  const options = { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 1e-4, step: 3, maxNorm: 1 };
  const arenas = () => ({
    params: engine.tensor(params, [n]),
    grads: engine.tensor(grads, [n]),
    m: engine.tensor(m, [n]),
    v: engine.tensor(v, [n]),
  });
  // Skipped: weights and moments unchanged, bit for bit.
  const skipped = arenas();
  adamwUpdate(skipped, engine.tensor(new Float32Array([NaN]), [1]), {
    ...options,
    guard: engine.tensor(new Float32Array([64, 0, 1, 0, 1]), [5]),
  });
  assert.deepEqual(await skipped.params.read(), params);
  assert.deepEqual(await skipped.m.read(), m);
  assert.deepEqual(await skipped.v.read(), v);
  // Clean, gradients made at scale 64: the clipped update of grads / 64 with the true norm.
  const scaled = arenas();
  const trueNorm = 0.75;
  adamwUpdate(scaled, engine.tensor(new Float32Array([trueNorm]), [1]), {
    ...options,
    guard: engine.tensor(new Float32Array([64, 1, 0, 1 / 64, 0]), [5]),
  });
  const plain = arenas();
  plain.grads = engine.tensor(grads.map((g) => g / 64), [n]);
  adamwUpdate(plain, engine.tensor(new Float32Array([trueNorm]), [1]), options);
  for (const key of ["params", "m", "v"] as const) {
    assertClose(await scaled[key].read(), await plain[key].read(), { atol: 0, rtol: 1e-6, name: key });
  }
});

const MODEL = { vocabSize: 23, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2, dropout: 0 };
const CONFIG = { ...DEFAULT_TRAIN, batch: 4, crop: 8, lr: 1e-3, warmup: 0, decay: Infinity };

for (const precision of ["f32", "mixed"] as const) {
  Deno.test(
    { name: `Trainer (${precision}) skips and counts a step whose gradients are NaN`, ignore },
    async () => {
      const engine = precision === "mixed" ? await mixedTestEngine() : await testEngine();
      const model = Diffusion.create(engine, MODEL, { seed: 3 });
      const trainer = new Trainer(model, CONFIG, { seed: 1 });
      const batch = randomBatch(4, 8, 23, 5);
      const first = await (await trainer.trainStep([batch])).metrics;
      assert.equal(first.skipped, false);
      assert.equal(first.lossScale, precision === "mixed" ? 65536 : 1);
      // A NaN in every weight of the estimator's input projection: the loss and the gradients turn NaN;
      // the step must change nothing.
      const params = model.store.arenas.params;
      const poisoned = Float32Array.from(await params.read());
      const input = model.store.get("estimator.project.0.weight");
      const start = (input.byteOffset - params.byteOffset) / 4;
      poisoned.fill(NaN, start, start + input.size);
      params.write(poisoned);
      const { m, v } = model.store.arenas;
      const before = [poisoned, await m.read(), await v.read()].map((x) => Float32Array.from(x));
      const second = await (await trainer.trainStep([batch])).metrics;
      assert.equal(second.skipped, true);
      assert.equal(trainer.skippedSteps, 1);
      assert.equal(second.lossScale, precision === "mixed" ? 32768 : 1);
      const after = [await params.read(), await m.read(), await v.read()];
      for (const [i, name] of ["params", "m", "v"].entries()) {
        assert.deepEqual(Array.from(after[i]!), Array.from(before[i]!), `${name} changed on a skipped step`);
      }
      trainer.dispose();
    },
  );
}

Deno.test(
  { name: "Trainer: a restored loss scale carries on where the saved one stopped", ignore },
  async () => {
    const engine = await mixedTestEngine();
    const model = Diffusion.create(engine, MODEL, { seed: 3 });
    const batch = randomBatch(4, 8, 23, 5);
    const first = new Trainer(model, CONFIG, { seed: 1, lossScale: { initial: 1024, growthInterval: 3 } });
    await (await first.trainStep([batch])).metrics;
    await (await first.trainStep([batch])).metrics;
    const saved = await first.lossScaleState();
    assert.deepEqual(saved, { scale: 1024, clean: 2 });
    first.dispose();
    // Restored, one clean step completes the run of three and doubles the scale, as it would have.
    const second = new Trainer(model, CONFIG, { seed: 1, lossScale: { initial: 65536, growthInterval: 3 } });
    second.restoreLossScale(saved);
    const next = await (await second.trainStep([batch])).metrics;
    assert.equal(next.skipped, false);
    assert.equal(next.lossScale, 2048);
    assert.throws(() => second.restoreLossScale({ scale: 3, clean: 0 }), RangeError);
    second.dispose();
    const f32 = new Trainer(Diffusion.create(await testEngine(), MODEL, { seed: 3 }), CONFIG, { seed: 1 });
    assert.deepEqual(await f32.lossScaleState(), { scale: 1, clean: 0 });
    assert.throws(() => f32.restoreLossScale({ scale: 1024, clean: 0 }), RangeError);
    f32.dispose();
  },
);

Deno.test("decodeRunState reads a saved loss scale and refuses one that is not a power of two", () => {
  const base = { step: 3, epoch: 0, tokens: 96, random: 1, seedCounter: 9, data: null };
  const state = decodeRunState(
    JSON.stringify({ ...base, lossScale: { scale: 32768, clean: 7 } }),
    "state.json",
  );
  assert.deepEqual(state.lossScale, { scale: 32768, clean: 7 });
  assert.equal(decodeRunState(JSON.stringify(base), "state.json").lossScale, undefined);
  for (const lossScale of [{ scale: 3, clean: 0 }, { scale: 1024 }, { scale: 2 ** 30, clean: 0 }, null]) {
    assert.throws(
      () => decodeRunState(JSON.stringify({ ...base, lossScale }), "runs/a/state.json"),
      /runs\/a\/state\.json.*lossScale/,
    );
  }
});
