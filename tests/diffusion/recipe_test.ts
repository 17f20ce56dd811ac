/**
 * The recipe options beyond the seed's model: the noise scale of the schedule, the embedding LayerNorm
 * without its affine gain, and the sampler's temperature and clamping of the x0 estimate.
 */
import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, randint, randn } from "../_check.ts";
import { Diffusion } from "../../src/diffusion/diffusion.ts";
import { NoiseSchedule } from "../../src/diffusion/noise_schedule.ts";
import { Sampler } from "../../src/diffusion/sampler.ts";

Deno.test("NoiseSchedule with scale s divides the signal-to-noise ratio by s²", () => {
  const seed = new NoiseSchedule();
  const scaled = new NoiseSchedule({ scale: 3 });
  assert.equal(new NoiseSchedule({ scale: 1 }).gamma(0.37), seed.gamma(0.37));
  for (const t of [0.01, 0.2, 0.5, 0.8, 0.99]) {
    const g = seed.gamma(t), h = scaled.gamma(t);
    assertClose([h / (1 - h)], [g / (1 - g) / 9], { rtol: 1e-12, atol: 0, name: `t=${t}` });
    assert.ok(h < g);
  }
  assert.equal(scaled.gamma(1) < 1e-7, true);
  assertClose([scaled.gamma(0)], [seed.gamma(0) / (seed.gamma(0) + 9 * (1 - seed.gamma(0)))], {
    rtol: 1e-12,
  });
  assert.throws(() => new NoiseSchedule({ scale: 0 }), /scale 0/);
  assert.throws(() => new NoiseSchedule({ scale: Number.NaN }), RangeError);
});

Deno.test(
  { name: "Diffusion without embedding affine: no norm parameters, unit-scale latents", ignore },
  async () => {
    const engine = await testEngine();
    const model = Diffusion.create(engine, {
      vocabSize: 29,
      embeddingDim: 12,
      modelDim: 16,
      layers: 1,
      heads: 2,
      embeddingAffine: false,
      noiseScale: 2,
    });
    assert.ok(!model.store.names.includes("norm.weight") && !model.store.names.includes("norm.bias"));
    assert.equal(model.schedule.scale, 2);
    const table = randn(29 * 12, 4, 0.5);
    const values = await model.store.read();
    values.set("embedding.weight", table);
    model.store.write(values);
    const ids = randint(7, 0, 29, 5);
    const x0 = await engine.tidy(() => model.embed(engine.tensor(ids, [1, 7], "i32")).read()) as Float32Array;
    // Float64 LayerNorm of each looked-up row (eps 1e-5), no gain, no bias.
    const expected = new Float64Array(7 * 12);
    for (let i = 0; i < 7; i++) {
      const row = table.subarray(ids[i]! * 12, ids[i]! * 12 + 12);
      const mean = row.reduce((a, b) => a + b, 0) / 12;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 12;
      for (let j = 0; j < 12; j++) expected[i * 12 + j] = (row[j]! - mean) / Math.sqrt(variance + 1e-5);
    }
    assertClose(x0, expected, { atol: 1e-5, rtol: 1e-5, name: "x0" });
    model.store.dispose();
  },
);

Deno.test(
  { name: "Sampler.estimate: softmax(logits/τ)·table, or the argmax row when clamping", ignore },
  async () => {
    const engine = await testEngine();
    const model = { engine, config: {} } as unknown as Diffusion;
    const [B, L, V, E] = [2, 3, 11, 5];
    const logits = randn(B * L * V, 9, 2);
    const table = randn(V * E, 10);
    for (const temperature of [1, 0.5, 2]) {
      const sampler = new Sampler(model, { temperature });
      const got = await engine.tidy(() =>
        sampler.estimate(engine.tensor(logits, [B, L, V]), engine.tensor(table, [V, E])).read()
      );
      const expected = new Float64Array(B * L * E);
      for (let r = 0; r < B * L; r++) {
        const row = logits.subarray(r * V, (r + 1) * V);
        const max = Math.max(...row);
        const w = Array.from(row, (v) => Math.exp((v - max) / temperature));
        const sum = w.reduce((a, b) => a + b, 0);
        for (let e = 0; e < E; e++) {
          for (let v = 0; v < V; v++) {
            expected[r * E + e] = expected[r * E + e]! + (w[v]! / sum) * table[v * E + e]!;
          }
        }
      }
      assertClose(got, expected, { atol: 1e-5, rtol: 1e-4, name: `τ=${temperature}` });
    }
    const clamped = await engine.tidy(() =>
      new Sampler(model, { clamp: true }).estimate(
        engine.tensor(logits, [B, L, V]),
        engine.tensor(table, [V, E]),
      )
        .read()
    );
    const rows = new Float64Array(B * L * E);
    for (let r = 0; r < B * L; r++) {
      const row = Array.from(logits.subarray(r * V, (r + 1) * V));
      const best = row.indexOf(Math.max(...row));
      for (let e = 0; e < E; e++) rows[r * E + e] = table[best * E + e]!;
    }
    assertClose(clamped, rows, { atol: 0, rtol: 0, name: "clamped" });
    assert.throws(() => new Sampler(model, { temperature: 0 }), /temperature 0/);
  },
);

Deno.test(
  { name: "Estimator.forward with FiLM computed for a group of times equals computing it per call", ignore },
  async () => {
    const engine = await testEngine();
    const model = Diffusion.create(engine, {
      vocabSize: 17,
      embeddingDim: 8,
      modelDim: 16,
      layers: 2,
      heads: 2,
    });
    const values = await model.store.read();
    for (const [name, v] of values) values.set(name, randn(v.length, name.length, 0.3));
    model.store.write(values);
    const [B, L] = [2, 5];
    const input = randn(B * L * 24, 21);
    const times = [0.9, 0.37, 0.0625];
    const forward = { training: false };
    await engine.noGrad(() =>
      engine.tidy(async () => {
        const lengths = engine.tensor(new Int32Array([5, 3]), [B], "i32");
        const group = engine.tensor(Float32Array.from(times.flatMap((t) => [t, t])), [times.length * B]);
        const film = model.estimator.timeConditioning(group, forward);
        for (const [g, time] of times.entries()) {
          const t = engine.tensor(new Float32Array([time, time]), [B]);
          const x = engine.tensor(input, [B, L, 24]);
          const own = await model.estimator.forward(x, t, lengths, forward).estimate.read();
          const shared = await model.estimator.forward(x, t, lengths, {
            ...forward,
            film: film.rows(g * B, B),
          })
            .estimate.read();
          assert.deepEqual(shared, own, `t=${time}`);
        }
        assert.throws(
          () =>
            model.estimator.forward(engine.tensor(input, [B, L, 24]), engine.zeros([B]), lengths, {
              ...forward,
              film,
            }),
          /film has shape/,
        );
      })
    );
    model.store.dispose();
  },
);
