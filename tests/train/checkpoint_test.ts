/**
 * The checkpoint journal of src/train/checkpoint.ts: a save/load round trip, the leftovers of a crash
 * at each point of a save, step mismatches between the files, and the metrics log.
 *
 * A crash is simulated by placing the files of a later save (written into a second directory) as the
 * `*.next` files a save leaves behind at that point.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ignore, testEngine } from "../_gpu.ts";
import { randn } from "../_check.ts";
import { Diffusion } from "../../src/diffusion/diffusion.ts";
import { DEFAULT_TRAIN } from "../../src/diffusion/config.ts";
import {
  appendLog,
  loadCheckpoint,
  loadOptimizerState,
  readLog,
  saveCheckpoint,
  truncateLog,
} from "../../src/train/checkpoint.ts";
import { loadStateDict, type RunConfig, type RunState } from "../../src/train/state_dict.ts";
import type { HostTensor } from "../../src/train/safetensors.ts";

const V = 11, E = 8, D = 16, HEADS = 2, LAYERS = 1;
const JOURNAL = ["model.safetensors", "optimizer.safetensors", "state.json"] as const;

async function tinyModel(seed: number): Promise<Diffusion> {
  const engine = await testEngine();
  return Diffusion.create(
    engine,
    { vocabSize: V, embeddingDim: E, modelDim: D, layers: LAYERS, heads: HEADS },
    { seed },
  );
}

/** Random values for every parameter of `model`; `scale` tells the arenas apart. */
function randomValues(model: Diffusion, seed: number, scale: number): Map<string, Float32Array<ArrayBuffer>> {
  const out = new Map<string, Float32Array<ArrayBuffer>>();
  for (const [i, name] of model.store.names.entries()) {
    const size = model.store.shapeOf(name).reduce((a, b) => a * b, 1);
    out.set(name, randn(size, seed * 1000 + i, scale));
  }
  return out;
}

/** Fills the parameter and moment arenas with values drawn from `seed` and returns them. */
function fillArenas(model: Diffusion, seed: number) {
  const params = randomValues(model, seed, 0.5);
  const m = randomValues(model, seed + 1, 0.01);
  // Second moments are non-negative.
  const v = new Map([...randomValues(model, seed + 2, 1e-3)].map(([k, x]) => [k, x.map(Math.abs)]));
  model.store.write(params, "params");
  model.store.write(m, "m");
  model.store.write(v, "v");
  return { params, m, v };
}

function runConfig(model: Diffusion): RunConfig {
  return {
    model: model.config,
    train: { ...DEFAULT_TRAIN, batch: 4, crop: 8 },
    tokenizer: { file: "tokenizer.model", vocabSize: V },
    seed: 3,
    corpus: null,
    preset: "tiny",
    epochs: 2,
    heldOut: { fraction: 0.01, seed: 3 },
  };
}

function runState(step: number): RunState {
  return {
    step,
    epoch: 1,
    tokens: 1000 * step,
    random: 0x9e3779b9 ^ step,
    seedCounter: 40 + step,
    data: { epoch: 1, position: 2 * step, seed: 3 },
  };
}

/** Bitwise equality of float32 data (so -0, NaN payloads and last-ulp differences all count). */
function assertSameBits(actual: Float32Array, expected: Float32Array, name: string): void {
  assert.equal(actual.length, expected.length, `${name}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) assert.fail(`${name}[${i}]: ${actual[i]}, expected ${expected[i]}`);
  }
}

function assertWeights(
  weights: Map<string, HostTensor> | null,
  model: Diffusion,
  expected: Map<string, Float32Array>,
): void {
  assert.ok(weights, "weights");
  for (const name of model.store.names) {
    const t = weights.get(name);
    assert.ok(t, `weights lack ${name}`);
    assert.deepEqual(t.shape, [...model.store.shapeOf(name)], `${name}: shape`);
    assertSameBits(t.data, expected.get(name)!, name);
  }
}

async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/**
 * Two checkpoints of one model: `dir` holds step 5; `later` holds step 6 with other weights and
 * moments (the files a second save into `dir` would write). Removes both directories afterwards.
 */
async function withTwoCheckpoints(
  fn: (c: {
    model: Diffusion;
    dir: string;
    later: string;
    step5: ReturnType<typeof fillArenas>;
    step6: ReturnType<typeof fillArenas>;
  }) => Promise<void>,
): Promise<void> {
  const model = await tinyModel(0);
  const dir = await Deno.makeTempDir({ prefix: "difflm-ckpt-" });
  const later = await Deno.makeTempDir({ prefix: "difflm-ckpt-later-" });
  try {
    const config = runConfig(model);
    const step5 = fillArenas(model, 5);
    await saveCheckpoint(dir, { model, config, state: runState(5) });
    const step6 = fillArenas(model, 6);
    await saveCheckpoint(later, { model, config, state: runState(6) });
    await fn({ model, dir, later, step5, step6 });
  } finally {
    model.store.dispose();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(later, { recursive: true });
  }
}

Deno.test({ name: "checkpoint: config, state, weights and moments round-trip exactly", ignore }, async () => {
  const model = await tinyModel(1);
  const dir = await Deno.makeTempDir({ prefix: "difflm-ckpt-" });
  try {
    const saved = fillArenas(model, 1);
    const config = runConfig(model);
    const state = runState(7);
    const tokenizer = new Uint8Array([10, 20, 30, 40]);
    await saveCheckpoint(dir, { model, config, state, tokenizer });
    assert.deepEqual(await listing(dir), [
      "config.json",
      "loss.svg",
      "model.safetensors",
      "optimizer.safetensors",
      "state.json",
      "tokenizer.model",
    ]);
    assert.deepEqual(await Deno.readFile(join(dir, "tokenizer.model")), tokenizer);

    const loaded = await loadCheckpoint(dir);
    assert.deepEqual(loaded.config, config);
    assert.deepEqual(loaded.state, state);
    assertWeights(loaded.weights, model, saved.params);
    // The seed also stores each attention layer's rotary frequencies: 1/10000^(2i/d), d = min(32, D/H).
    const freqs = loaded.weights!.get("estimator.encoder_layers.0.attention.rotary_emb.freqs");
    assert.ok(freqs, "rotary_emb.freqs is in model.safetensors");
    const d = D / HEADS;
    assert.deepEqual(freqs.shape, [d / 2]);
    assertSameBits(
      freqs.data,
      Float32Array.from({ length: d / 2 }, (_, i) => 1 / 10000 ** (2 * i / d)),
      "freqs",
    );
    assert.equal(loaded.weights!.size, model.store.names.length + LAYERS);
    assert.ok(loaded.moments);
    assert.equal(loaded.moments.size, 2 * model.store.names.length);
    for (const name of model.store.names) {
      assertSameBits(loaded.moments.get(`exp_avg.${name}`)!.data, saved.m.get(name)!, `exp_avg.${name}`);
      assertSameBits(
        loaded.moments.get(`exp_avg_sq.${name}`)!.data,
        saved.v.get(name)!,
        `exp_avg_sq.${name}`,
      );
    }

    // Into a model initialised otherwise: the frequencies are ignored, every arena comes back exactly.
    const other = await tinyModel(2);
    try {
      loadStateDict(other, loaded.weights!, "model.safetensors");
      loadOptimizerState(other, loaded.moments, "optimizer.safetensors");
      for (const [arena, expected] of [["params", saved.params], ["m", saved.m], ["v", saved.v]] as const) {
        const values = await other.store.read(arena);
        for (const name of other.store.names) assertSameBits(values.get(name)!, expected.get(name)!, name);
      }
    } finally {
      other.store.dispose();
    }

    // A second save keeps an existing tokenizer file and leaves no journal files behind.
    await saveCheckpoint(dir, { model, config, state: runState(8), tokenizer: new Uint8Array([1]) });
    assert.deepEqual(await Deno.readFile(join(dir, "tokenizer.model")), tokenizer);
    assert.ok((await listing(dir)).every((n) => !n.endsWith(".next") && !n.endsWith(".tmp")));
    assert.equal((await loadCheckpoint(dir)).state?.step, 8);
  } finally {
    model.store.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  { name: "checkpoint: a config without state loads as a run with no checkpoint yet", ignore },
  async () => {
    const model = await tinyModel(0);
    const dir = await Deno.makeTempDir({ prefix: "difflm-ckpt-" });
    try {
      await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(runConfig(model)));
      const loaded = await loadCheckpoint(dir);
      assert.equal(loaded.state, null);
      assert.equal(loaded.weights, null);
      await assert.rejects(
        () => loadCheckpoint(join(dir, "missing")),
        (e: Error) => e.message.includes("config.json"),
      );
    } finally {
      model.store.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  { name: "checkpoint: .next files without state.json.next are discarded, the previous one loads", ignore },
  () =>
    withTwoCheckpoints(async ({ model, dir, later, step5 }) => {
      // Crash after the new model file was written (and, second round, the optimiser file too).
      for (const leftovers of [["model.safetensors"], ["model.safetensors", "optimizer.safetensors"]]) {
        for (const name of leftovers) await Deno.copyFile(join(later, name), join(dir, `${name}.next`));
        const loaded = await loadCheckpoint(dir);
        assert.equal(loaded.state?.step, 5);
        assertWeights(loaded.weights, model, step5.params);
        const m = loaded.moments!.get(`exp_avg.${model.store.names[0]}`)!.data;
        assertSameBits(m, step5.m.get(model.store.names[0]!)!, "exp_avg");
        assert.ok(!(await listing(dir)).some((n) => n.endsWith(".next")), "stale .next files removed");
      }
    }),
);

Deno.test(
  { name: "checkpoint: a crash during the renames is finished by the next load", ignore },
  () =>
    withTwoCheckpoints(async ({ model, dir, later, step6 }) => {
      // All three new files written, none renamed yet.
      for (const name of JOURNAL) await Deno.copyFile(join(later, name), join(dir, `${name}.next`));
      let loaded = await loadCheckpoint(dir);
      assert.equal(loaded.state?.step, 6);
      assertWeights(loaded.weights, model, step6.params);
      const first = model.store.names[0]!;
      assertSameBits(loaded.moments!.get(`exp_avg_sq.${first}`)!.data, step6.v.get(first)!, "exp_avg_sq");
      assert.ok(!(await listing(dir)).some((n) => n.endsWith(".next")));
      // Loading again gives the same checkpoint.
      loaded = await loadCheckpoint(dir);
      assert.equal(loaded.state?.step, 6);
    }),
);

Deno.test(
  { name: "checkpoint: a crash after some renames is finished by the next load", ignore },
  () =>
    withTwoCheckpoints(async ({ model, dir, later, step6 }) => {
      // model.safetensors already renamed; the optimiser and state files still wait as .next.
      await Deno.copyFile(join(later, "model.safetensors"), join(dir, "model.safetensors"));
      await Deno.copyFile(join(later, "optimizer.safetensors"), join(dir, "optimizer.safetensors.next"));
      await Deno.copyFile(join(later, "state.json"), join(dir, "state.json.next"));
      const loaded = await loadCheckpoint(dir);
      assert.equal(loaded.state?.step, 6);
      assertWeights(loaded.weights, model, step6.params);
      assert.ok(!(await listing(dir)).some((n) => n.endsWith(".next")));
    }),
);

Deno.test(
  { name: "checkpoint: a step mismatch between the files is an error naming the file", ignore },
  () =>
    withTwoCheckpoints(async ({ dir, later }) => {
      for (const name of ["model.safetensors", "optimizer.safetensors"]) {
        const own = await Deno.readFile(join(dir, name));
        await Deno.copyFile(join(later, name), join(dir, name));
        await assert.rejects(
          () => loadCheckpoint(dir),
          (e: Error) => {
            assert.ok(e.message.includes(join(dir, name)), e.message);
            assert.match(e.message, /step 6/);
            assert.match(e.message, /state\.json from 5/);
            return true;
          },
        );
        await Deno.writeFile(join(dir, name), own);
      }
      assert.equal((await loadCheckpoint(dir)).state?.step, 5);
    }),
);

Deno.test(
  { name: "log.jsonl: truncateLog keeps steps <= the checkpoint's; a cut last line is skipped" },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "difflm-log-" });
    try {
      assert.deepEqual(await readLog(dir), []);
      for (let step = 1; step <= 10; step++) await appendLog(dir, { step, loss: 5 - step / 10, mse: 1 });
      // A crash in the middle of appending step 11.
      await Deno.writeTextFile(join(dir, "log.jsonl"), '{"step":11,"loss":3.', { append: true });
      const all = await readLog(dir);
      assert.deepEqual(all.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.deepEqual(all[3], { step: 4, loss: 4.6, mse: 1 });

      await truncateLog(dir, 6);
      const text = await Deno.readTextFile(join(dir, "log.jsonl"));
      const lines = text.split("\n");
      assert.equal(lines.pop(), "", "ends with a newline");
      assert.deepEqual(lines.map((l) => JSON.parse(l).step), [1, 2, 3, 4, 5, 6]);
      // The resumed run appends after whole lines only.
      await appendLog(dir, { step: 7, loss: 4.3, mse: 1 });
      assert.deepEqual((await readLog(dir)).map((r) => r.step), [1, 2, 3, 4, 5, 6, 7]);
      await truncateLog(dir, 0);
      assert.deepEqual(await readLog(dir), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  { name: "checkpoint: a crash while state.json.next is being written leaves the previous one", ignore },
  () =>
    withTwoCheckpoints(async ({ model, dir, later, step5 }) => {
      // saveCheckpoint writes the commit marker as state.json.next.tmp and renames it when complete: a
      // crash while writing leaves an empty or cut temporary file beside complete model and optimiser
      // .next files. The marker never appeared, so the save did not happen: the step-5 checkpoint loads.
      const text = await Deno.readTextFile(join(later, "state.json"));
      for (const cut of ["", text.slice(0, 12)]) {
        for (const name of ["model.safetensors", "optimizer.safetensors"]) {
          await Deno.copyFile(join(later, name), join(dir, `${name}.next`));
        }
        await Deno.writeTextFile(join(dir, "state.json.next.tmp"), cut);
        const loaded = await loadCheckpoint(dir);
        assert.equal(loaded.state?.step, 5);
        assertWeights(loaded.weights, model, step5.params);
        for (const name of ["model.safetensors.next", "optimizer.safetensors.next", "state.json.next.tmp"]) {
          await assert.rejects(Deno.stat(join(dir, name)), Deno.errors.NotFound, `${name} is cleaned up`);
        }
      }
    }),
);
