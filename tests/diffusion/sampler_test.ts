import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, randn } from "../_check.ts";
import { Diffusion } from "../../src/diffusion/diffusion.ts";
import {
  type GenerateRequest,
  reverseStep,
  Sampler,
  type SamplingMethod,
} from "../../src/diffusion/sampler.ts";
import { NoiseSchedule } from "../../src/diffusion/noise_schedule.ts";
import { randomNormal } from "../../src/tensor/ops/random.ts";
import type { Engine } from "../../src/tensor/engine.ts";

const METHODS: SamplingMethod[] = ["difflm", "ddim", "ddpm"];

/** Float64 restatement of each update, written from the formulas, not from reverseStep. */
function referenceStep(
  method: SamplingMethod,
  x: Float32Array,
  est: Float32Array,
  noise: Float32Array,
  g: number,
  gNext: number,
): Float64Array {
  return Float64Array.from(x, (xt, i) => {
    const e = est[i]!, z = noise[i]!;
    if (method === "difflm") return Math.sqrt(gNext) * e + Math.sqrt(1 - gNext) * z;
    if (method === "ddim") {
      const epsHat = (xt - Math.sqrt(g) * e) / Math.sqrt(1 - g);
      return Math.sqrt(gNext) * e + Math.sqrt(1 - gNext) * epsHat;
    }
    // DDPM posterior q(x_s | x_t, x0): α_t = ᾱ_t/ᾱ_s, β_t = 1 − α_t.
    const alpha = g / gNext, beta = 1 - alpha;
    const mean = (Math.sqrt(gNext) * beta / (1 - g)) * e + (Math.sqrt(alpha) * (1 - gNext) / (1 - g)) * xt;
    const variance = (1 - gNext) / (1 - g) * beta;
    return mean + Math.sqrt(variance) * z;
  });
}

for (const method of METHODS) {
  Deno.test({ name: `Sampler.update (${method}) matches a float64 reference step`, ignore }, async () => {
    const engine = await testEngine();
    const model = smallModel(engine, 20, 1);
    const sampler = new Sampler(model, { method });
    const schedule = new NoiseSchedule();
    const shape = [2, 5, 8];
    const x = randn(80, 1), est = randn(80, 2, 0.7);
    for (const [time, next] of [[1, 0.995], [0.6, 0.55], [0.01, 0]] as const) {
      await engine.tidy(async () => {
        const out = sampler.update(engine.tensor(x, shape), engine.tensor(est, shape), {
          time,
          next,
          seed: 77,
        });
        const noise = await randomNormal(engine, shape, 77).read() as Float32Array;
        const expected = referenceStep(method, x, est, noise, schedule.gamma(time), schedule.gamma(next));
        assertClose(await out.read(), expected, {
          atol: 2e-5,
          rtol: 1e-4,
          name: `${method} ${time}→${next}`,
        });
      });
    }
    model.store.dispose();
  });
}

Deno.test("reverseStep: ddim is deterministic and difflm ignores x_t", () => {
  assert.equal(reverseStep("ddim", 0.3, 0.4).noise, 0);
  assert.equal(reverseStep("difflm", 0.3, 0.4).current, 0);
  const ddpm = reverseStep("ddpm", 0.3, 0.4);
  assert.ok(ddpm.noise > 0 && ddpm.current > 0 && ddpm.estimate > 0);
});

/** A model of width 16 with embeddings of 8 and two heads. */
function smallModel(engine: Engine, vocabSize: number, layers: number): Diffusion {
  return Diffusion.create(engine, { vocabSize, embeddingDim: 8, modelDim: 16, layers, heads: 2 });
}

/** Larger random weights than the initialisation (biases zero), so predictions depend on the noise. */
function randomizeWeights(model: Diffusion, seed: number): void {
  const values = new Map<string, Float32Array>();
  for (const [k, name] of model.store.names.entries()) {
    const size = model.store.shapeOf(name).reduce((a, b) => a * b, 1);
    values.set(name, randn(size, seed + k, name.endsWith(".bias") ? 0 : 0.5));
  }
  model.store.write(values);
}

const decoder = {
  eosId: 1,
  padId: 2,
  encode: (text: string) => text.split(" ").map((w) => 4 + (w.length % 10)),
  decode: (ids: readonly number[]) => ids.filter((i) => i > 3).join(" "),
};

Deno.test(
  { name: "Sampler keeps given tokens in place and repeats with the same seed", ignore },
  async () => {
    const engine = await testEngine();
    const model = smallModel(engine, 20, 1);
    randomizeWeights(model, 100);
    const options = { steps: 6, length: 10, tokenizer: decoder };
    const template = "the _ _ cat sat on _ mat";
    const a = await new Sampler(model, { ...options, seed: 5 }).generate({ template, count: 2 });
    const b = await new Sampler(model, { ...options, seed: 5 }).generate({ template, count: 2 });
    assert.deepEqual(a.ids, b.ids);
    const known = new Sampler(model, options).conditioning({ template, count: 2 });
    // The template is the whole text: an EOS after its last word ends the sequence.
    assert.deepEqual([...known.mask.slice(0, 10)], [1, 0, 0, 1, 1, 1, 0, 1, 1, 0]);
    assert.equal(known.ids[8], decoder.eosId);
    for (const [row, ids] of a.ids.entries()) {
      for (let i = 0; i < 10; i++) {
        if (known.mask[row * 10 + i]) {
          assert.equal(ids[i], known.ids[row * 10 + i]);
        }
      }
    }
    const prompt = await new Sampler(model, { ...options, seed: 5 }).generate({ prompt: "in the", count: 1 });
    assert.deepEqual([...prompt.ids[0]!.slice(0, 2)], decoder.encode("in the"));
    // The denoising trajectory (argmax after each step) depends on the seed, and repeats with it.
    const trajectory = async (seed: number) => {
      const views: string[] = [];
      const result = await new Sampler(model, { ...options, seed }).generate({
        count: 3,
        onStep: ({ ids }) => void views.push(ids.map((r) => r.join(",")).join("|")),
      });
      assert.equal(result.texts?.length, 3);
      return views;
    };
    const five = await trajectory(5);
    assert.equal(five.length, 6);
    assert.deepEqual(await trajectory(5), five);
    assert.notDeepEqual(await trajectory(6), five);
    // Clamped estimates are rows of the normalised embedding table: sampling still keeps the given tokens
    // and repeats with its seed.
    const clamped = await new Sampler(model, { ...options, seed: 5, clamp: true }).generate({
      template,
      count: 2,
    });
    assert.deepEqual(
      clamped.ids,
      (await new Sampler(model, { ...options, seed: 5, clamp: true }).generate({ template, count: 2 })).ids,
    );
    for (const [row, ids] of clamped.ids.entries()) {
      for (let i = 0; i < 10; i++) {
        if (known.mask[row * 10 + i]) assert.equal(ids[i], known.ids[row * 10 + i]);
      }
    }
    model.store.dispose();
  },
);

Deno.test("Sampler rejects bad options with clear errors", async () => {
  const fake = { config: {}, engine: {} } as unknown as Diffusion;
  assert.throws(() => new Sampler(fake, { steps: 0 }), /Cannot sample with 0 steps/);
  assert.throws(() => new Sampler(fake, { method: "euler" as SamplingMethod }), /method "euler"/);
  const sampler = new Sampler(fake, { length: 3 });
  assert.throws(
    () => sampler.conditioning({ template: "a b c d", tokenizer: decoder } as never),
    /tokenizer/,
  );
  await Promise.resolve();
});

Deno.test(
  { name: "Sampler gives the same samples and step views whether later steps replay or re-run", ignore },
  async () => {
    const engine = await testEngine();
    const model = smallModel(engine, 30, 2);
    randomizeWeights(model, 300);
    const settings = [
      { method: "difflm" as const },
      { method: "ddpm" as const, selfConditioning: false },
      { method: "ddim" as const, temperature: 0.7 },
      { method: "difflm" as const, clamp: true },
    ];
    for (const setting of settings) {
      const run = async (replay: boolean) => {
        const views: string[] = [];
        const result = await new Sampler(model, {
          ...setting,
          steps: 9,
          stepsPerSubmit: 4,
          length: 7,
          seed: 3,
          tokenizer: decoder,
          replay,
        }).generate({
          template: "a _ ccc _",
          count: 2,
          onStep: ({ ids }) => void views.push(ids.map((r) => r.join(",")).join("|")),
        });
        const plain = await new Sampler(model, { ...setting, steps: 9, length: 7, seed: 4, replay })
          .generate({ count: 3 });
        return { ids: result.ids, views, plain: plain.ids };
      };
      const replayed = await run(true);
      assert.equal(replayed.views.length, 9);
      assert.deepEqual(replayed, await run(false), JSON.stringify(setting));
    }
  },
);

Deno.test(
  {
    name: "Sampler's head and update sum their split products themselves and sample as with step views on",
    ignore,
  },
  async () => {
    const engine = await testEngine();
    // A model dim of 256 splits the head's product over K at these few rows, a vocabulary of 300 the
    // estimate's.
    const model = Diffusion.create(engine, {
      vocabSize: 300,
      embeddingDim: 8,
      modelDim: 256,
      layers: 1,
      heads: 4,
    });
    randomizeWeights(model, 700);
    const settings = [{}, { temperature: 0.7 }, { method: "ddim" as const }, { selfConditioning: false }];
    for (const setting of settings) {
      const options = { ...setting, steps: 5, length: 6, seed: 9, stepsPerSubmit: 2 };
      // The kernels a call dispatches, and its samples.
      const run = async (request: GenerateRequest) => {
        let ids!: Int32Array[];
        const timings = await engine.runtime.profile(async () => {
          ids = (await new Sampler(model, options).generate(request)).ids;
        });
        return { ids, kernels: new Set(timings.map((t) => t.name)) };
      };
      const { ids: fused, kernels } = await run({ count: 2 });
      // Step views read the logits whole, so the head's product is summed by its reduction pass there.
      const viewed = await run({ count: 2, onStep: () => {} });
      assert.deepEqual(fused, viewed.ids, JSON.stringify(setting));
      assert.ok(
        viewed.kernels.has("matmul_reduce_bias") && !viewed.kernels.has("softmax_forward_parts_bias"),
      );
      // Given tokens: the softmax still sums the head, the estimate is masked before the update.
      const sampler = new Sampler(model, { ...options, tokenizer: decoder });
      const given = await sampler.generate({ template: "a _ ccc _" });
      assert.deepEqual(given.ids, (await sampler.generate({ template: "a _ ccc _", onStep: () => {} })).ids);
      assert.ok(kernels.has("softmax_forward_parts_bias"), `the softmax sums the head: ${[...kernels]}`);
      const difflm = !("method" in setting);
      for (const k of [kernels, viewed.kernels]) {
        assert.equal(k.has("random_normal_axpby_parts"), difflm, `the update sums the estimate: ${[...k]}`);
        assert.equal(k.has("matmul_reduce"), !difflm, `no reduction pass for the estimate: ${[...k]}`);
      }
    }
    model.store.dispose();
  },
);

Deno.test(
  { name: "Sampler submits each step of the first group at once, then whole groups", ignore },
  async () => {
    const engine = await testEngine();
    const model = smallModel(engine, 30, 1);
    const runtime = engine.runtime, flush = runtime.flush;
    const submitted: string[] = [];
    runtime.flush = (what?: string) => {
      submitted.push(what ?? "flush");
      return flush.call(runtime, what);
    };
    try {
      await new Sampler(model, { steps: 9, stepsPerSubmit: 4, length: 5 }).generate({ count: 2 });
    } finally {
      runtime.flush = flush;
    }
    // Steps 1, 2, 3 and 4 (the first group) one by one, steps 5–8 together; the last step goes with the
    // final pass's read.
    assert.equal(submitted.filter((w) => w === "sampling").length, 5, submitted.join());
    assert.equal(submitted.at(-1), "read");
    model.store.dispose();
  },
);

Deno.test(
  { name: "the last --show-steps view is the final text: onStep's last view equals the result", ignore },
  async () => {
    const engine = await testEngine();
    const model = smallModel(engine, 30, 1);
    randomizeWeights(model, 500);
    for (const stepsPerSubmit of [1, 4]) {
      const views: { step: number; t: number; ids: Int32Array[]; texts: string[] }[] = [];
      const result = await new Sampler(model, {
        steps: 7,
        length: 9,
        seed: 2,
        tokenizer: decoder,
        stepsPerSubmit,
      })
        .generate({ count: 3, onStep: (view) => void views.push(view) });
      assert.deepEqual(views.map((v) => v.step), [1, 2, 3, 4, 5, 6, 7]);
      const last = views.at(-1)!;
      assert.equal(last.t, 0);
      assert.deepEqual(last.ids, result.ids);
      assert.deepEqual(last.texts, result.texts);
    }
    model.store.dispose();
  },
);

Deno.test(
  { name: "Sampler texts are always present: decoded with a tokenizer, the ids written out without", ignore },
  async () => {
    const engine = await testEngine();
    const model = smallModel(engine, 30, 1);
    const plain = await new Sampler(model, { steps: 2, length: 5 }).generate({ count: 2 });
    assert.equal(plain.texts.length, 2);
    for (const [b, text] of plain.texts.entries()) assert.equal(text, [...plain.ids[b]!].join(" "));
    const decoded = await new Sampler(model, { steps: 2, length: 5, tokenizer: decoder }).generate({
      count: 2,
    });
    assert.deepEqual(decoded.texts, decoded.ids.map((row) => decoder.decode([...row])));
    model.store.dispose();
  },
);

Deno.test(
  {
    name: "an aborted generate rejects with the signal's reason and the sampler samples again after",
    ignore,
  },
  async () => {
    const engine = await testEngine();
    const model = smallModel(engine, 30, 1);
    const sampler = new Sampler(model, { steps: 50, length: 6, stepsPerSubmit: 2 });
    await sampler.generate({ count: 2 }); // fills what kernels cache on first use
    const inUse = engine.runtime.stats.inUse;
    const controller = new AbortController();
    let views = 0;
    await assert.rejects(
      sampler.generate({
        count: 2,
        signal: controller.signal,
        onStep: () => {
          if (++views === 3) controller.abort(new Error("enough"));
        },
      }),
      /enough/,
    );
    assert.equal(views, 3);
    // The aborted call returned every buffer it took.
    assert.equal(engine.runtime.stats.inUse, inUse);
    const again = await sampler.generate({ count: 2 });
    assert.equal(again.ids.length, 2);
    await assert.rejects(
      sampler.generate({ count: 1, signal: AbortSignal.abort(new Error("at once")) }),
      /at once/,
    );
    sampler.dispose();
    await assert.rejects(sampler.generate({ count: 1 }), /disposed/);
    {
      using scoped = new Sampler(model, { steps: 1, length: 4 });
      assert.equal((await scoped.generate({ count: 1 })).ids.length, 1);
    }
    model.store.dispose();
  },
);

Deno.test("Sampler bounds every numeric option and states the range", () => {
  const fake = { config: { vocabSize: 10, modelDim: 8 }, engine: {} } as unknown as Diffusion;
  assert.throws(() => new Sampler(fake, { steps: 1e8 }), /steps must be an integer in \[1, 10000\]/);
  assert.throws(() => new Sampler(fake, { steps: -3 }), /RangeError|steps must be/);
  assert.throws(() => new Sampler(fake, { length: 1e6 }), /length must be an integer in \[1, 4096\]/);
  assert.throws(() => new Sampler(fake, { seed: 2 ** 32 }), /seed 4294967296/);
  assert.throws(() => new Sampler(fake, { seed: NaN }), /seed NaN/);
  assert.throws(() => new Sampler(fake, { temperature: 0 }), /temperature 0/);
  const sampler = new Sampler(fake, { length: 4, tokenizer: decoder });
  assert.throws(() => sampler.conditioning({ count: 100000 }), /count must be an integer in \[1, 4096\]/);
  assert.throws(() => sampler.conditioning({ count: "2" as unknown as number }), /count must be an integer/);
  assert.throws(() => sampler.conditioning({ prompt: "a", template: "_" }), /prompt and a template/);
});
