/**
 * TrainingRun through the library, as a program uses it: create, train with progress and an abort
 * signal, resume from the directory, sample at the run's length; what it refuses (part of a run, a
 * tokenizer or corpus that does not fit) and what it reports (epochs, training time, tokens per second).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ignore, testEngine } from "../_gpu.ts";
import { trainTokenizer } from "../../src/tokenizer/trainer.ts";
import {
  MAX_SKIPPED_IN_A_ROW,
  type TrainingProgress,
  TrainingRun,
  type TrainingRunConfig,
} from "../../src/train/run.ts";
import { readCheckpointManifest, readLog } from "../../src/train/checkpoint.ts";
import { type CheckpointFile, checkpointFilePath } from "../../src/train/state_dict.ts";

const root = await Deno.makeTempDir({ prefix: "difflm-run-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(root, { recursive: true });
  } catch {
    // already gone
  }
});

/** A tiny model on the built-in corpus: a few steps take well under a second on the CPU adapter. */
const TINY: TrainingRunConfig = {
  model: { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 },
  train: { batch: 4, crop: 12 },
  vocabSize: 80,
  samples: 0,
  logEvery: 1,
};

/** A file of the run's committed checkpoint (`checkpoint.json` names its generation). */
async function committed(dir: string, file: CheckpointFile): Promise<string> {
  const manifest = await readCheckpointManifest(dir);
  if (!manifest) throw new Error(`no checkpoint committed in ${dir}`);
  return join(dir, checkpointFilePath(manifest, file));
}

let tokenizer: Uint8Array | undefined;
/** The built-in corpus's tokenizer, trained once for the module. */
async function tinyTokenizer(): Promise<Uint8Array> {
  if (!tokenizer) {
    using run = await TrainingRun.create(join(root, "tokenizer"), { ...TINY, steps: 1 }, {
      engine: await testEngine(),
    });
    tokenizer = await Deno.readFile(join(run.dir, "tokenizer.model"));
  }
  return tokenizer;
}

async function tiny(dir: string, config: TrainingRunConfig = {}): Promise<TrainingRun> {
  return await TrainingRun.create(join(root, dir), {
    ...TINY,
    tokenizer: await tinyTokenizer(),
    vocabSize: undefined,
    ...config,
  }, { engine: await testEngine() });
}

Deno.test({ name: "checkpoint() during train() is written after the step in progress", ignore }, async () => {
  using run = await tiny("on-demand", { steps: 30, checkpointEvery: 1000 });
  const written: number[] = [];
  let asked: Promise<void> | null = null;
  await run.train({
    onProgress: (p) => {
      if (p.type === "step" && p.step === 2) asked = run.checkpoint();
      if (p.type === "checkpoint") written.push(p.step);
    },
  });
  await asked;
  assert.equal(written.length, 2, `checkpoints at ${written}`);
  assert.ok(written[0]! >= 2 && written[0]! < 30);
  assert.equal(written[1], 30);
  const sampler = run.sampler({ steps: 2 });
  assert.equal(sampler.length, 12);
  run.dispose();
  assert.throws(() => run.sampler(), /disposed/);
});

Deno.test({
  name: "progress never reports an epoch past the run's last: a 2-epoch run ends in epoch 2",
  ignore,
}, async () => {
  const corpus = join(root, "short.txt");
  // Lines of the built-in corpus's words, so the tokenizer knows them.
  await Deno.writeTextFile(
    corpus,
    Array.from({ length: 23 }, (_, i) => `the dog ${i % 2 ? "runs" : "sleeps"} .`).join("\n"),
  );
  using run = await tiny("epochs", { corpus, epochs: 2, samples: 1, sampleSteps: 2 });
  const steps: Extract<TrainingProgress, { type: "step" }>[] = [];
  const samples: string[] = [];
  const target = run.target();
  const result = await run.train({
    onProgress: (p) => {
      if (p.type === "step") steps.push(p);
      if (p.type === "samples") samples.push(`${p.when} ${p.step}`);
    },
  });
  assert.deepEqual(result, { step: target, epoch: 2, stopped: "finished", skipped: 0 });
  assert.equal(steps.at(-1)!.step, target);
  assert.ok(steps.every((p) => p.epoch >= 1 && p.epoch <= 2 && p.epochs === 2 && p.target === target));
  assert.equal(steps.at(-1)!.epoch, 2);
  const epochOne = steps.filter((p) => p.epoch === 1).length;
  assert.deepEqual(samples, ["start 0", `epoch ${epochOne}`, `end ${target}`]);
});

Deno.test(
  { name: "tokens/s after a resume counts only the resumed steps, and time_s goes on", ignore },
  async () => {
    const engine = await testEngine();
    {
      using run = await tiny("rate", { steps: 3 });
      await run.train();
    }
    const before = await readLog(join(root, "rate"));
    using resumed = await TrainingRun.open(join(root, "rate"), { engine, changes: { steps: 8 } });
    const rates: number[] = [];
    await resumed.train({ onProgress: (p) => void (p.type === "step" && rates.push(p.tokensPerSecond)) });
    const log = await readLog(join(root, "rate"));
    assert.deepEqual(log.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7, 8]);
    const times = log.map((r) => r.time_s as number);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!, `time_s ${times}`);
    const resumedAt = before.at(-1)!;
    const first = log[3]!;
    const expected = ((first.tokens as number) - (resumedAt.tokens as number)) /
      ((first.time_s as number) - (resumedAt.time_s as number));
    assert.ok(
      Math.abs((first.tokens_per_s as number) - expected) <= 0.05 * expected + 1,
      `tokens_per_s ${first.tokens_per_s}, expected ${expected}`,
    );
    assert.equal(rates[0], first.tokens_per_s);
  },
);

Deno.test({
  name: "a directory holding part of a run is refused, never overwritten; fresh replaces it",
  ignore,
}, async () => {
  const engine = await testEngine();
  const dir = join(root, "partial");
  (await tiny("partial", { steps: 2 })).dispose();
  const weights = await Deno.readFile(await committed(dir, "model.safetensors"));
  for (const missing of ["config.json", "checkpoint.json", "tokenizer.model"]) {
    await Deno.rename(join(dir, missing), join(dir, `${missing}.away`));
    await assert.rejects(
      TrainingRun.open(dir, { engine }),
      new RegExp(`part of a run, ${missing.replace(".", "\\.")} missing`),
    );
    await assert.rejects(tiny("partial", { steps: 2 }), /Cannot start a new run in .*partial.*: it holds/);
    await Deno.rename(join(dir, `${missing}.away`), join(dir, missing));
    assert.deepEqual(await Deno.readFile(await committed(dir, "model.safetensors")), weights);
  }
  await assert.rejects(TrainingRun.open(join(root, "nothing-here"), { engine }), /holds no run/);
  using fresh = await TrainingRun.create(dir, {
    ...TINY,
    tokenizer: await tinyTokenizer(),
    vocabSize: undefined,
    steps: 2,
    seed: 9,
  }, {
    engine,
    fresh: true,
  });
  assert.equal(fresh.step, 0);
  assert.equal(JSON.parse(await Deno.readTextFile(join(dir, "config.json"))).seed, 9);
  assert.deepEqual(await readLog(dir), []);
});

Deno.test({
  name: "a tokenizer, model or corpus that do not belong together are refused at start and resume",
  ignore,
}, async () => {
  const engine = await testEngine();
  const dir = join(root, "mismatch");
  (await tiny("mismatch", { steps: 1 })).dispose();
  // A tokenizer of another size in the run: the model's vocabulary no longer matches it.
  const saved = await Deno.readFile(join(dir, "tokenizer.model"));
  const other = await trainTokenizer({
    corpus: ["the cat sat on the mat .", "a dog runs .", "two birds sing ."],
    vocabSize: 40,
  });
  await Deno.writeFile(join(dir, "tokenizer.model"), other);
  await assert.rejects(
    TrainingRun.open(dir, { engine }),
    /tokenizer\.model" has 40 pieces, but the model's vocabulary is 80/,
  );
  await Deno.writeFile(join(dir, "tokenizer.model"), saved);
  // A corpus file that changed since the run started.
  const corpus = join(root, "growing.txt");
  await Deno.writeTextFile(corpus, "the dog runs .\nthe cat sleeps .\n".repeat(10));
  (await tiny("growing", { corpus, steps: 1 })).dispose();
  await Deno.writeTextFile(corpus, "a bird sings .\n", { append: true });
  await assert.rejects(
    TrainingRun.open(join(root, "growing"), { engine }),
    /has 21 lines, but the run started on 20/,
  );
  // A tokenizer that does not know the corpus's text, and a vocabulary size that is not the tokenizer's.
  const greek = join(root, "greek.txt");
  await Deno.writeTextFile(greek, "αβγ δεζ ηθι κλμ\n".repeat(20));
  await assert.rejects(tiny("greek", { corpus: greek, steps: 1 }), /does not fit .*greek\.txt.*unknown/);
  await assert.rejects(
    tiny("sizes", { vocabSize: 50, steps: 1 }),
    /vocabSize 50: the given tokenizer has 80 pieces/,
  );
});

Deno.test(
  {
    name: "a run of steps with non-finite gradients stops training, with a checkpoint of finite weights",
    ignore,
  },
  async () => {
    // A learning rate of 10 blows the activations up within a few steps; every later gradient overflows.
    using run = await tiny("diverging", {
      steps: 300,
      train: { ...TINY.train, lr: 10, warmup: 0 },
      logEvery: 5,
    });
    const result = await run.train();
    assert.equal(result.stopped, "non-finite");
    assert.ok(result.skipped >= MAX_SKIPPED_IN_A_ROW && result.step < 300, JSON.stringify(result));
    assert.equal((await readCheckpointManifest(run.dir))?.step, result.step);
    const weights = await run.model.store.read("params");
    for (const [name, values] of weights) assert.ok(values.every(Number.isFinite), name);
    const log = await readLog(run.dir);
    assert.equal(log.at(-1)!.skipped, true);
  },
);

Deno.test(
  { name: "an abort while samples are drawn stops them at once and training returns", ignore },
  async () => {
    using run = await tiny("abort-sampling", { steps: 5, samples: 2, sampleSteps: 10000 });
    const stop = new AbortController();
    const started = performance.now();
    setTimeout(() => stop.abort(), 300);
    const result = await run.train({ signal: stop.signal });
    // 10000 reverse steps take minutes on a CPU adapter; the abort ends them within a submission.
    assert.ok(performance.now() - started < 20_000, `took ${performance.now() - started} ms`);
    assert.deepEqual(result, { step: 0, epoch: 0, stopped: "aborted", skipped: 0 });
  },
);

Deno.test(
  { name: "a run whose config.json predates the cadence settings opens with their defaults", ignore },
  async () => {
    const dir = join(root, "older");
    (await tiny("older", { steps: 2 })).dispose();
    const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
    for (
      const key of ["corpusLines", "checkpointEvery", "logEvery", "samples", "sampleSteps", "builtinCorpus"]
    ) {
      delete config[key];
    }
    delete config.train.ema;
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config));
    using run = await TrainingRun.open(dir, { engine: await testEngine() });
    assert.equal(run.step, 0);
    // A CPU adapter's demonstration samples with fewer reverse steps (CPU_DEMONSTRATION).
    const sampleSteps = run.demonstration ? 25 : 100;
    assert.deepEqual(
      [
        run.config.checkpointEvery,
        run.config.logEvery,
        run.config.samples,
        run.config.sampleSteps,
        run.config.train.ema,
      ],
      [500, 10, 4, sampleSteps, 0],
    );
    assert.equal(run.sampler().steps, sampleSteps);
  },
);

Deno.test(
  { name: "a run open for training cannot be opened by a second trainer until disposed", ignore },
  async () => {
    const engine = await testEngine();
    const first = await tiny("locked", { steps: 1 });
    await assert.rejects(TrainingRun.open(first.dir, { engine }), /lock|another process|held/i);
    first.dispose();
    using second = await TrainingRun.open(join(root, "locked"), { engine });
    assert.equal(second.step, 0);
  },
);
