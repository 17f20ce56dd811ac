/**
 * The two sides of concurrent_readers_test.ts, one process each:
 *
 * - `train DIR COMMITS`: a tiny model trained on DIR/../corpus.txt (written here) for COMMITS steps with a checkpoint committed after every
 *   step; after each commit the checkpoint is read back from disk and compared with the model, and a line
 *   `{"step", "params", "moments"}` (hashes of what was saved) is appended to DIR/../saved.jsonl.
 * - `read DIR`: until DIR/../done exists, reads the run as sampling does (loadRun, then a few sampling
 *   steps) and as resuming does (loadCheckpoint), printing `{"step", "params"}` and `{"step", "moments"}`
 *   for each read, so the test can check every read against what the trainer saved at that step.
 */
import { CorpusIndex } from "../../src/data/corpus_index.ts";
import { BatchStream } from "../../src/data/batches.ts";
import { DEFAULT_TRAIN } from "../../src/diffusion/config.ts";
import { Diffusion } from "../../src/diffusion/diffusion.ts";
import { Sampler } from "../../src/diffusion/sampler.ts";
import { Engine } from "../../src/tensor/engine.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { trainTokenizer } from "../../src/tokenizer/trainer.ts";
import { CheckpointWriter, loadCheckpoint, loadRun } from "../../src/train/checkpoint.ts";
import type { HostTensor } from "../../src/train/safetensors.ts";
import type { RunConfig } from "../../src/train/state_dict.ts";
import { Trainer } from "../../src/train/trainer.ts";

const LINES = ["the cat sat on the mat", "a dog ran to the cat", "the mat sat on a dog", "a cat ran"];

/** FNV-1a over the bits of the tensors, in name order. */
function hash(tensors: Iterable<[string, Float32Array]>): string {
  let h = 0x811c9dc5;
  for (const [name, data] of [...tensors].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
    for (const bits of new Uint32Array(data.buffer, data.byteOffset, data.length)) {
      h = Math.imul(h ^ bits, 0x01000193);
    }
  }
  return (h >>> 0).toString(16);
}

const dataOf = (tensors: Map<string, HostTensor>, names: readonly string[]) =>
  names.map((n): [string, Float32Array] => [n, tensors.get(n)!.data]);

async function train(dir: string, commits: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const corpusPath = `${dir}/../corpus.txt`;
  await Deno.writeTextFile(corpusPath, LINES.join("\n") + "\n");
  const tokenizerBytes = await trainTokenizer({ corpus: LINES, vocabSize: 24, userSymbols: [] });
  const tokenizer = Tokenizer.fromBytes(tokenizerBytes);
  const engine = await Engine.create();
  const modelShape = { vocabSize: tokenizer.vocabSize, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2 };
  const model = Diffusion.create(engine, modelShape, { seed: 0 });
  const trainConfig = { ...DEFAULT_TRAIN, batch: 2, crop: 8, warmup: 1 };
  const trainer = new Trainer(model, trainConfig, { seed: 0 });
  const stream = new BatchStream(CorpusIndex.fromLines(LINES), tokenizer, {
    batchSize: trainConfig.batch,
    cropLength: trainConfig.crop,
    seed: 0,
  });
  const config: RunConfig = {
    model: model.config,
    train: trainConfig,
    tokenizer: { file: "tokenizer.model", vocabSize: tokenizer.vocabSize },
    seed: 0,
    corpus: corpusPath,
    preset: "tiny",
    heldOut: { fraction: 0.25, seed: 0 },
  };
  using writer = await CheckpointWriter.open(dir);
  const saved = await Deno.open(`${dir}/../saved.jsonl`, { append: true, create: true });
  for (let step = 1; step <= commits; step++) {
    const { metrics } = await trainer.trainStep([await stream.next()]);
    await metrics;
    const state = {
      step,
      epoch: stream.epoch,
      tokens: 0,
      random: trainer.random.state,
      seedCounter: 0,
      data: null,
    };
    await writer.save({ model, config, state, tokenizer: tokenizerBytes });
    const params = hash(await model.store.read("params"));
    const [m, v] = await Promise.all([model.store.read("m"), model.store.read("v")]);
    const moments = hash([
      ...[...m].map(([n, d]): [string, Float32Array] => [`m.${n}`, d]),
      ...[...v].map(
        ([n, d]): [string, Float32Array] => [`v.${n}`, d],
      ),
    ]);
    // Every checkpoint loads, and holds what was saved.
    const { checkpoint } = await loadCheckpoint(dir);
    if (checkpoint?.state.step !== step) {
      throw new Error(`commit ${step} reads back as ${checkpoint?.state.step}`);
    }
    if (hash(dataOf(checkpoint.weights, model.store.names)) !== params) {
      throw new Error(`commit ${step}: the weights read back differ from the model's`);
    }
    await saved.write(new TextEncoder().encode(JSON.stringify({ step, params, moments }) + "\n"));
  }
  saved.close();
}

async function read(dir: string): Promise<void> {
  const engine = await Engine.create();
  const done = `${dir}/../done`;
  const out = (record: unknown) => console.log(JSON.stringify(record));
  let reads = 0;
  for (;;) {
    const finished = await Deno.stat(done).then(() => true, () => false);
    try {
      const run = await loadRun(dir, { engine });
      out({ step: run.state.step, params: hash(await run.model.store.read("params")) });
      const { texts } = await new Sampler(run.model, {
        steps: 2,
        length: 8,
        seed: reads,
        tokenizer: run.tokenizer,
      })
        .generate({ count: 1 });
      if (texts?.length !== 1) throw new Error("sampling gave no text");
      run.model.store.dispose();
      const { checkpoint } = await loadCheckpoint(dir);
      if (checkpoint) {
        const names = [...checkpoint.moments.keys()].filter((n) => n.startsWith("exp_avg."));
        const moments = hash([
          ...names.map((n): [string, Float32Array] => [`m.${n.slice(8)}`, checkpoint.moments.get(n)!.data]),
          ...names.map((n): [string, Float32Array] => [
            `v.${n.slice(8)}`,
            checkpoint.moments.get(`exp_avg_sq.${n.slice(8)}`)!.data,
          ]),
        ]);
        out({ step: checkpoint.state.step, moments });
      }
      reads++;
    } catch (e) {
      // Before the first commit there is nothing to read yet; anything else is a failure.
      if (!/no config\.json|no checkpoint yet/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (finished) break;
  }
}

const [mode, dir, commits] = Deno.args;
if (mode === "train") await train(dir!, Number(commits));
else await read(dir!);
