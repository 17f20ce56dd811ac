/**
 * Checkpoints of src/train/checkpoint.ts: a save/load round trip, what a crash leaves at each point of a
 * commit, readers that change nothing, committed files changed afterwards, refused saves (a non-finite
 * value, a full disk) that leave the committed checkpoint intact, and the metrics log.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ignore, testEngine } from "../_gpu.ts";
import { randn } from "../_check.ts";
import { Diffusion } from "../../src/diffusion/diffusion.ts";
import { DEFAULT_TRAIN } from "../../src/diffusion/config.ts";
import {
  appendLog,
  CheckpointWriter,
  loadCheckpoint,
  loadRun,
  readCheckpointManifest,
  readLog,
  restoreCheckpoint,
  RUN_FILES,
  runFiles,
  truncateLog,
} from "../../src/train/checkpoint.ts";
import {
  MANIFEST_FILE,
  modelStateDict,
  momentsStateDict,
  type RunConfig,
  type RunState,
} from "../../src/train/state_dict.ts";
import { encodeSafetensors } from "../../src/train/safetensors.ts";
import { trainTokenizer } from "../../src/tokenizer/trainer.ts";
import type { HostTensor } from "../../src/train/safetensors.ts";

const V = 11, E = 8, D = 16, HEADS = 2, LAYERS = 1;

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
    random: (0x9e3779b9 ^ step) >>> 0,
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

/** Every file under `dir` with its size and modification time, to show that a reader changed nothing. */
async function snapshot(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = join(prefix, entry.name);
    if (entry.isDirectory) out.push(`${path}/`, ...await snapshot(dir, path));
    else {
      const info = await Deno.stat(join(dir, path));
      out.push(`${path} ${info.size} ${info.mtime?.getTime()}`);
    }
  }
  return out.sort();
}

async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** A model, a temporary run directory and an open writer, all closed and removed afterwards. */
async function withRun(
  fn: (c: { model: Diffusion; dir: string; writer: CheckpointWriter; config: RunConfig }) => Promise<void>,
): Promise<void> {
  const model = await tinyModel(0);
  const dir = await Deno.makeTempDir({ prefix: "difflm-ckpt-" });
  const writer = await CheckpointWriter.open(dir);
  try {
    await fn({ model, dir, writer, config: runConfig(model) });
  } finally {
    writer.close();
    model.store.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A run directory holding a committed checkpoint of step 5 and, beside it, step 6's generation left
 * uncommitted (as a crash after its files but before checkpoint.json would leave it). */
async function withInterruptedCommit(
  fn: (c: { model: Diffusion; dir: string; step5: ReturnType<typeof fillArenas> }) => Promise<void>,
): Promise<void> {
  await withRun(async ({ model, dir, writer, config }) => {
    const step5 = fillArenas(model, 5);
    await writer.save({ model, config, state: runState(5), tokenizer: await tinyTokenizer() });
    const committed = await Deno.readTextFile(join(dir, MANIFEST_FILE));
    fillArenas(model, 6);
    await writer.save({ model, config, state: runState(6) });
    // Undo the commit of step 6: its files stay, the record names step 5 again, and a temporary record
    // is left half-written.
    await Deno.writeTextFile(join(dir, MANIFEST_FILE), committed);
    await Deno.writeTextFile(join(dir, `${MANIFEST_FILE}.tmp`), '{"generation": 3, "st');
    writer.close();
    await fn({ model, dir, step5 });
  });
}

let tokenizerBytes: Promise<Uint8Array> | undefined;
/** A tiny real tokenizer of V pieces. */
function tinyTokenizer(): Promise<Uint8Array> {
  tokenizerBytes ??= trainTokenizer({ corpus: ["ab ba", "ba ab", "a b"], vocabSize: V, userSymbols: [] });
  return tokenizerBytes;
}

Deno.test({ name: "checkpoint: config, state, weights and moments round-trip exactly", ignore }, async () => {
  await withRun(async ({ model, dir, writer, config }) => {
    const saved = fillArenas(model, 1);
    const state = runState(7);
    const tokenizer = new Uint8Array([10, 20, 30, 40]);
    await writer.save({ model, config, state, tokenizer });
    assert.deepEqual(await listing(dir), [
      MANIFEST_FILE,
      "checkpoints",
      "config.json",
      "loss.svg",
      "tokenizer.model",
      "train.lock",
    ]);
    assert.deepEqual(await listing(join(dir, "checkpoints", "1")), [
      "model.safetensors",
      "optimizer.safetensors",
      "state.json",
    ]);
    assert.deepEqual(await Deno.readFile(join(dir, "tokenizer.model")), tokenizer);

    const { config: readConfig, checkpoint } = await loadCheckpoint(dir);
    assert.ok(checkpoint);
    assert.deepEqual(readConfig, config);
    assert.deepEqual(checkpoint.state, state);
    assert.deepEqual(checkpoint.manifest.generation, 1);
    assert.equal(checkpoint.average, null);
    assertWeights(checkpoint.weights, model, saved.params);
    // The seed also stores each attention layer's rotary frequencies: 1/10000^(2i/d), d = min(32, D/H).
    const freqs = checkpoint.weights.get("estimator.encoder_layers.0.attention.rotary_emb.freqs");
    assert.ok(freqs, "rotary_emb.freqs is in model.safetensors");
    const d = D / HEADS;
    assert.deepEqual(freqs.shape, [d / 2]);
    assertSameBits(
      freqs.data,
      Float32Array.from({ length: d / 2 }, (_, i) => 1 / 10000 ** (2 * i / d)),
      "freqs",
    );
    assert.equal(checkpoint.weights.size, model.store.names.length + LAYERS);
    assert.equal(checkpoint.moments.size, 2 * model.store.names.length);
    for (const name of model.store.names) {
      assertSameBits(checkpoint.moments.get(`exp_avg.${name}`)!.data, saved.m.get(name)!, `exp_avg.${name}`);
      assertSameBits(
        checkpoint.moments.get(`exp_avg_sq.${name}`)!.data,
        saved.v.get(name)!,
        `exp_avg_sq.${name}`,
      );
    }

    // Into a model initialised otherwise: the frequencies are ignored, every arena comes back exactly.
    const other = await tinyModel(2);
    try {
      restoreCheckpoint(other, checkpoint, dir);
      for (const [arena, expected] of [["params", saved.params], ["m", saved.m], ["v", saved.v]] as const) {
        const values = await other.store.read(arena);
        for (const name of other.store.names) assertSameBits(values.get(name)!, expected.get(name)!, name);
      }
    } finally {
      other.store.dispose();
    }

    // A second save keeps an existing tokenizer file; a third removes the first generation and keeps
    // the second for readers that opened it a moment ago.
    await writer.save({ model, config, state: runState(8), tokenizer: new Uint8Array([1]) });
    assert.deepEqual(await Deno.readFile(join(dir, "tokenizer.model")), tokenizer);
    await writer.save({ model, config, state: runState(9) });
    assert.deepEqual(await listing(join(dir, "checkpoints")), ["2", "3"]);
    assert.ok((await listing(dir)).every((n) => !n.endsWith(".tmp")));
    assert.equal((await loadCheckpoint(dir)).checkpoint?.state.step, 9);
    assert.deepEqual(await readCheckpointManifest(dir), {
      generation: 3,
      step: 9,
      files: (await readCheckpointManifest(dir))!.files,
    });
  });
});

Deno.test(
  {
    name: "checkpoint: a moving average of the weights is saved to average.safetensors and restored",
    ignore,
  },
  () =>
    withRun(async ({ model, dir, writer, config }) => {
      model.store.keepAverage();
      const saved = fillArenas(model, 3);
      const average = randomValues(model, 4, 0.5);
      model.store.write(average, "average");
      await writer.save({ model, config, state: runState(2), tokenizer: await tinyTokenizer() });
      const { checkpoint } = await loadCheckpoint(dir);
      assert.ok(checkpoint?.average);
      assertWeights(checkpoint.average, model, average);
      const other = await tinyModel(5);
      other.store.keepAverage();
      try {
        restoreCheckpoint(other, checkpoint, dir);
        const values = await other.store.read("average");
        for (const name of other.store.names) assertSameBits(values.get(name)!, average.get(name)!, name);
      } finally {
        other.store.dispose();
      }
      // Sampling uses the average, and reads no optimiser file.
      await Deno.remove(join(dir, "checkpoints", "1", "optimizer.safetensors"));
      const run = await loadRun(dir, { engine: model.engine });
      assert.ok(run.averaged);
      const params = await run.model.store.read("params");
      for (const name of model.store.names) assertSameBits(params.get(name)!, average.get(name)!, name);
      assert.ok(saved.params.size > 0);
      run.model.store.dispose();
    }),
);

Deno.test(
  { name: "checkpoint: a config without a commit loads as a run with no checkpoint yet", ignore },
  async () => {
    const model = await tinyModel(0);
    const dir = await Deno.makeTempDir({ prefix: "difflm-ckpt-" });
    try {
      await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(runConfig(model)));
      assert.equal((await loadCheckpoint(dir)).checkpoint, null);
      await assert.rejects(() => loadRun(dir), /has no checkpoint yet \(checkpoint\.json is missing\)/);
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
  { name: "readers write: loadCheckpoint and loadRun change nothing in a run left mid-commit", ignore },
  () =>
    withInterruptedCommit(async ({ model, dir, step5 }) => {
      const before = await snapshot(dir);
      assert.ok(before.includes("checkpoints/2/"), "the uncommitted generation is there");
      const { checkpoint } = await loadCheckpoint(dir);
      assert.equal(checkpoint?.state.step, 5);
      assertWeights(checkpoint!.weights, model, step5.params);
      const first = model.store.names[0]!;
      assertSameBits(checkpoint!.moments.get(`exp_avg.${first}`)!.data, step5.m.get(first)!, "exp_avg");
      const run = await loadRun(dir, { engine: model.engine });
      assert.equal(run.state.step, 5);
      run.model.store.dispose();
      assert.deepEqual(await snapshot(dir), before, "the readers changed the run directory");

      // Only the trainer discards the interrupted commit, when it opens the run.
      const writer = await CheckpointWriter.open(dir);
      try {
        assert.deepEqual(await listing(join(dir, "checkpoints")), ["1"]);
        assert.ok(!(await listing(dir)).some((n) => n.endsWith(".tmp")));
        assert.equal(writer.committed?.step, 5);
        await writer.save({ model, config: runConfig(model), state: runState(6) });
        assert.deepEqual(await listing(join(dir, "checkpoints")), ["1", "2"]);
        assert.equal((await loadCheckpoint(dir)).checkpoint?.state.step, 6);
      } finally {
        writer.close();
      }
    }),
);

Deno.test(
  { name: "checkpoint: a committed file changed afterwards is an error naming it", ignore },
  () =>
    withRun(async ({ model, dir, writer, config }) => {
      fillArenas(model, 5);
      await writer.save({ model, config, state: runState(5) });
      const generation = join(dir, "checkpoints", "1");
      // Another size than committed.
      const own = await Deno.readFile(join(generation, "optimizer.safetensors"));
      await Deno.writeFile(join(generation, "optimizer.safetensors"), own.subarray(0, own.length - 4));
      await assert.rejects(() => loadCheckpoint(dir), (e: Error) => {
        assert.ok(e.message.includes(join(generation, "optimizer.safetensors")), e.message);
        assert.match(e.message, /committed \d+/);
        return true;
      });
      await Deno.writeFile(join(generation, "optimizer.safetensors"), own);
      // The same size from another step.
      const state = await Deno.readTextFile(join(generation, "state.json"));
      await Deno.writeTextFile(join(generation, "state.json"), state.replace('"step": 5', '"step": 6'));
      await assert.rejects(
        () => loadCheckpoint(dir),
        /state\.json": it is from step 6, checkpoint\.json from 5/,
      );
      await Deno.writeTextFile(join(generation, "state.json"), state);
      // A committed file removed.
      await Deno.remove(join(generation, "model.safetensors"));
      await assert.rejects(
        () => loadRun(dir, { engine: model.engine }),
        /model\.safetensors": the file is missing/,
      );
    }),
);

Deno.test(
  { name: "NaN is committed: a checkpoint with a non-finite value is refused, naming the tensor", ignore },
  () =>
    withRun(async ({ model, dir, writer, config }) => {
      const step5 = fillArenas(model, 5);
      await writer.save({ model, config, state: runState(5) });
      const before = await snapshot(dir);
      const name = model.store.names[1]!;
      const poisoned = new Map(step5.params);
      const values = poisoned.get(name)!.slice();
      values[2] = NaN;
      poisoned.set(name, values);
      model.store.write(poisoned, "params");
      await assert.rejects(
        () => writer.save({ model, config, state: runState(6) }),
        (e: Error) => {
          assert.ok(e instanceof RangeError, String(e));
          assert.ok(e.message.includes(`"${name}": element 2 is NaN`), e.message);
          assert.match(e.message, /step 6/);
          assert.match(e.message, /the checkpoint of step 5 is intact/);
          return true;
        },
      );
      assert.deepEqual(await snapshot(dir), before, "nothing was written");
      assert.equal((await loadCheckpoint(dir)).checkpoint?.state.step, 5);
      // An infinite moment is refused the same way.
      model.store.write(step5.params, "params");
      const moments = new Map(step5.m);
      moments.set(name, moments.get(name)!.map((x, i) => i === 0 ? Infinity : x));
      model.store.write(moments, "m");
      await assert.rejects(
        () => writer.save({ model, config, state: runState(6) }),
        /"exp_avg\.[^"]+": element 0 is Infinity/,
      );
    }),
);

Deno.test({
  name: "a full disk: ENOSPC during a checkpoint write is named, and the committed checkpoint stays",
  ignore: ignore || Deno.build.os !== "linux",
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "difflm-ckpt-" });
  try {
    // Deno writes a device file only with every permission, so the save runs in a child process.
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./_full_disk_save.ts", import.meta.url).pathname, dir],
      stderr: "inherit",
    }).output();
    assert.equal(child.code, 0);
    const message = new TextDecoder().decode(child.stdout).trim();
    assert.match(message, /^Cannot write the checkpoint of step 6 to ".*checkpoints\/2": the disk is full/);
    assert.match(message, /the checkpoint of step 5 is intact$/);
    assert.deepEqual(await listing(join(dir, "checkpoints")), ["1"], "the partial generation is removed");
    const { checkpoint } = await loadCheckpoint(dir);
    assert.equal(checkpoint?.state.step, 5);
    // Space again: the next save commits.
    const model = await tinyModel(0);
    try {
      using writer = await CheckpointWriter.open(dir);
      await writer.save({ model, config: runConfig(model), state: runState(6) });
      assert.equal((await loadCheckpoint(dir)).checkpoint?.state.step, 6);
    } finally {
      model.store.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  {
    name: "a corrupt tokenizer.model inside a run is named by loadRun, as is one that does not fit the model",
    ignore,
  },
  () =>
    withRun(async ({ model, dir, writer, config }) => {
      await writer.save({ model, config, state: runState(1), tokenizer: new Uint8Array([0xff, 0x01, 0x02]) });
      const path = join(dir, "tokenizer.model");
      await assert.rejects(() => loadRun(dir, { engine: model.engine }), (e: Error) => {
        assert.ok(e instanceof SyntaxError, String(e));
        assert.ok(e.message.startsWith(`Cannot read tokenizer model "${path}": `), e.message);
        return true;
      });
      await Deno.writeFile(
        path,
        await trainTokenizer({ corpus: ["ab ba", "ba ab", "a b"], vocabSize: 12, userSymbols: [] }),
      );
      await assert.rejects(
        () => loadRun(dir, { engine: model.engine }),
        new RegExp(`tokenizer model "${path}" has 12 pieces, the model's vocabulary 11`),
      );
    }),
);

/** Writes the files of a checkpoint of `model` at `step` as difflm wrote them before commit records:
 * beside config.json, the moving average inside the optimiser file, each file as `name + suffix`. */
async function writeOlderLayout(dir: string, model: Diffusion, step: number, suffix = ""): Promise<void> {
  const meta = { format: "pt", step: String(step) };
  const optimizer = await momentsStateDict(model);
  for (const [name, t] of await modelStateDict(model, "average")) {
    if (!name.endsWith(".freqs")) optimizer.set(`ema.${name}`, t);
  }
  await Deno.writeFile(
    join(dir, `model.safetensors${suffix}`),
    encodeSafetensors(await modelStateDict(model), meta),
  );
  await Deno.writeFile(join(dir, `optimizer.safetensors${suffix}`), encodeSafetensors(optimizer, meta));
  await Deno.writeTextFile(join(dir, `state.json${suffix}`), JSON.stringify(runState(step)));
}

Deno.test(
  {
    name:
      "checkpoint: a run in the layout before checkpoint.json is named by readers, converted by the writer",
    ignore,
  },
  async () => {
    const model = await tinyModel(0);
    model.store.keepAverage();
    try {
      for (const interrupted of ["none", "complete", "incomplete"] as const) {
        const dir = await Deno.makeTempDir({ prefix: "difflm-ckpt-" });
        try {
          await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(runConfig(model)));
          await Deno.writeFile(join(dir, "tokenizer.model"), await tinyTokenizer());
          const step5 = fillArenas(model, 5);
          const average5 = randomValues(model, 50, 0.5);
          model.store.write(average5, "average");
          await writeOlderLayout(dir, model, 5);
          let expected = { step: 5, params: step5.params, m: step5.m, average: average5 };
          if (interrupted !== "none") {
            // A commit of step 6 stopped after its .next files (complete once state.json.next exists).
            const step6 = fillArenas(model, 6);
            const average6 = randomValues(model, 60, 0.5);
            model.store.write(average6, "average");
            await writeOlderLayout(dir, model, 6, ".next");
            if (interrupted === "incomplete") {
              await Deno.rename(join(dir, "state.json.next"), join(dir, "state.json.next.tmp"));
            } else expected = { step: 6, params: step6.params, m: step6.m, average: average6 };
          }
          const before = await snapshot(dir);
          for (const read of [() => loadCheckpoint(dir), () => loadRun(dir, { engine: model.engine })]) {
            await assert.rejects(
              read,
              /state\.json beside config\.json, no checkpoint\.json\) is in the layout of an older difflm; resuming it with cli\.ts train --ckpt converts it/,
            );
          }
          assert.deepEqual(await snapshot(dir), before, "readers changed the run");

          const writer = await CheckpointWriter.open(dir);
          writer.close();
          assert.deepEqual(await listing(dir), [
            "checkpoint.json",
            "checkpoints",
            "config.json",
            "tokenizer.model",
            "train.lock",
          ], interrupted);
          const { checkpoint } = await loadCheckpoint(dir);
          assert.equal(checkpoint?.state.step, expected.step, interrupted);
          assertWeights(checkpoint!.weights, model, expected.params);
          assertWeights(checkpoint!.average, model, expected.average);
          const first = model.store.names[0]!;
          assertSameBits(
            checkpoint!.moments.get(`exp_avg.${first}`)!.data,
            expected.m.get(first)!,
            "exp_avg",
          );
          assert.ok(
            ![...checkpoint!.moments.keys()].some((k) => k.startsWith("ema.")),
            "the average left the moments",
          );
          const run = await loadRun(dir, { engine: model.engine });
          assert.ok(run.averaged);
          run.model.store.dispose();
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      }
    } finally {
      model.store.dispose();
    }
  },
);

Deno.test(
  {
    name:
      "runFiles tells a run from part of one; CheckpointWriter.open with fresh deletes a run under the lock",
    ignore,
  },
  () =>
    withRun(async ({ model, dir, writer, config }) => {
      assert.deepEqual(await runFiles(join(dir, "none")), { present: [], missing: [...RUN_FILES] });
      assert.deepEqual(await runFiles(dir), { present: [], missing: [...RUN_FILES] });
      await writer.save({ model, config, state: runState(1), tokenizer: await tinyTokenizer() });
      await appendLog(dir, { step: 1, loss: 1 });
      assert.deepEqual(await runFiles(dir), { present: [...RUN_FILES], missing: [] });
      await Deno.remove(join(dir, "tokenizer.model"));
      assert.deepEqual(await runFiles(dir), {
        present: ["config.json", "checkpoint.json"],
        missing: ["tokenizer.model"],
      });
      // Not while another writer holds the run.
      await assert.rejects(() => CheckpointWriter.open(dir, { fresh: true }), /another process/);
      assert.equal((await runFiles(dir)).present.length, 2);
      writer.close();
      await Deno.writeTextFile(join(dir, "notes.txt"), "mine");
      using fresh = await CheckpointWriter.open(dir, { fresh: true });
      assert.equal(fresh.committed, null);
      assert.deepEqual(await listing(dir), ["notes.txt", "train.lock"]);
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
