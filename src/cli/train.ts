// deno-lint-ignore-file no-console
/**
 * `cli.ts train`: trains a tokenizer (unless one is given) and a diffusion model on a corpus (the
 * built-in one by default), with a live progress line, checkpoints and samples; resumes a run given its
 * directory.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BatchStream } from "../data/batches.ts";
import { CorpusIndex } from "../data/corpus_index.ts";
import { builtinCorpus } from "../data/grammar.ts";
import {
  DEFAULT_TRAIN,
  type ModelConfig,
  modelConfig,
  PRESETS,
  type TrainConfig,
} from "../diffusion/config.ts";
import { Diffusion } from "../diffusion/diffusion.ts";
import { Sampler } from "../diffusion/sampler.ts";
import { Engine } from "../tensor/engine.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { trainTokenizer } from "../tokenizer/trainer.ts";
import {
  appendLog,
  type Checkpoint,
  CheckpointWriter,
  loadCheckpoint,
  restoreCheckpoint,
  truncateLog,
} from "../train/checkpoint.ts";
import type { RunConfig, RunState } from "../train/state_dict.ts";
import { pathExists as exists, readFileNamed } from "../train/files.ts";
import { type StepMetrics, Trainer } from "../train/trainer.ts";
import { numberFlag, UsageError } from "./_args.ts";

/**
 * A run given neither --epochs nor --steps on a CPU (software) adapter is a short demonstration: ten minutes
 * unless --minutes says otherwise, and, for a new run given no --batch, batches small enough that the loss
 * visibly falls in that time. On lavapipe with two cores (bench/RESULTS.md) the tiny preset's batches of 256
 * made 6 steps in ten minutes and printed empty samples; batches of 32 made 41 steps (loss 6.1 → 4.3, still
 * in the warm-up); batches of 8 made 100 (loss 6.1 → 3.3–3.7, samples of words). Its samples take 25 reverse
 * steps unless --sample-steps is given: 100 took about 2 minutes there each time samples were printed.
 */
const CPU_DEMO = { minutes: 10, batch: 8, sampleSteps: 25 } as const;
/** Training steps whose metrics may still be on their way back while the next step is recorded. */
const METRICS_IN_FLIGHT = 8;

/** Lines of the built-in corpus and the seed that generates them. */
export const BUILTIN_CORPUS = { lines: 20000, seed: 0 } as const;

export const TRAIN_USAGE = `usage: deno run [permissions] cli.ts train [options]

Trains a SentencePiece BPE tokenizer (unless --spm is given) and a diffusion model, printing samples
before training and after each epoch. Without --corpus it trains on the built-in corpus of simple
English sentences; without --ckpt it writes a new run directory under runs/. Given the --ckpt of an
existing run it resumes where that run's last checkpoint stopped.

data and run:
  --corpus FILE        training text, one example per line (default: the built-in corpus)
  --spm FILE           SentencePiece model to use (default: train one; its size from --vocab)
  --vocab N            vocabulary size of a tokenizer trained here (preset: tiny 400, small 2000, seed 8000)
  --ckpt DIR           run directory: created, or resumed when it holds a checkpoint
  --preset NAME        tiny | small | seed (default tiny); explicit flags override it
  --epochs N           stop after N epochs (default: ${PRESETS.tiny.epochs} for tiny, else until --steps)
  --steps N            stop after N optimiser steps in total
  --minutes X          stop after X minutes of training (checkpoint and samples as at the end); on a
                       CPU adapter a run given neither --epochs nor --steps stops after 10, and a
                       new one given no --batch trains batches of 8
  --samples N          samples printed before training and after each epoch (default 4; 0 for none)
  --sample-steps N     reverse-process steps of those samples (default: 100 tiny, 200 otherwise; 25 in a
                       CPU adapter's demonstration run, see --minutes)
  --seed N             seed of initialisation, data order and noise (default 0)
  --log-every N        steps between log.jsonl records and plain progress lines (default 10)
  --ckpt-every N       steps between checkpoints (default 500; also at each epoch end)

optimisation (defaults: the seed's, or the preset's):
  --batch N  --lr X  --warmup N  --decay N  --wd X  --accum N  --crop N
  --subword-alpha X    BPE-dropout of training-time tokenisation (the seed: 0.1)
  --self-cond X        probability of the self-conditioning pass (the seed: 0.5)
  --unconditional X    share of examples trained with no conditioning positions (the seed: 0)
  --ema X              decay of a moving average of the weights that sampling uses (the seed: 0, none)

model:
  --embedding-dim N  --model-dim N  --layers N  --heads N  --dropout X
  --noise-scale X      divides the noise schedule's signal-to-noise ratio by X² (the seed: 1)
  --embedding-affine on|off   learned weight and bias of the embedding LayerNorm (the seed: on)`;

const OPTIONS = {
  corpus: { type: "string" },
  spm: { type: "string" },
  vocab: { type: "string" },
  ckpt: { type: "string" },
  preset: { type: "string" },
  epochs: { type: "string" },
  steps: { type: "string" },
  minutes: { type: "string" },
  samples: { type: "string" },
  "sample-steps": { type: "string" },
  seed: { type: "string" },
  "log-every": { type: "string" },
  "ckpt-every": { type: "string" },
  batch: { type: "string" },
  lr: { type: "string" },
  warmup: { type: "string" },
  decay: { type: "string" },
  wd: { type: "string" },
  accum: { type: "string" },
  crop: { type: "string" },
  "subword-alpha": { type: "string" },
  "self-cond": { type: "string" },
  unconditional: { type: "string" },
  ema: { type: "string" },
  "noise-scale": { type: "string" },
  "embedding-affine": { type: "string" },
  "embedding-dim": { type: "string" },
  "model-dim": { type: "string" },
  layers: { type: "string" },
  heads: { type: "string" },
  dropout: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Flags = Record<string, string | boolean | undefined>;

function parseTrainArgs(args: string[]): Flags {
  try {
    return parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split("\n")[0]}; see cli.ts train --help`);
  }
}

function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

/** Resolves the model and training configs: the seed's defaults, then the preset, then explicit flags. */
function configsFrom(flags: Flags, preset: keyof typeof PRESETS): {
  model: Partial<ModelConfig>;
  train: TrainConfig;
} {
  const p = PRESETS[preset];
  const int = (name: string, min = 1) => numberFlag(`--${name}`, str(flags, name), { integer: true, min });
  const num = (name: string, min = 0, max = Infinity) =>
    numberFlag(`--${name}`, str(flags, name), { min, max });
  const model: Partial<ModelConfig> = { ...p.model };
  const set = <K extends keyof ModelConfig>(key: K, value: ModelConfig[K] | undefined) => {
    if (value !== undefined) model[key] = value;
  };
  set("embeddingDim", int("embedding-dim"));
  set("modelDim", int("model-dim"));
  set("layers", int("layers"));
  set("heads", int("heads"));
  set("dropout", num("dropout", 0, 0.99));
  set("noiseScale", num("noise-scale", 1e-3, 1e3));
  const affine = str(flags, "embedding-affine");
  if (affine !== undefined) {
    if (affine !== "on" && affine !== "off") {
      throw new UsageError(`Invalid value for --embedding-affine: "${affine}"; expected on or off`);
    }
    model.embeddingAffine = affine === "on";
  }
  const train: TrainConfig = { ...DEFAULT_TRAIN, ...p.train };
  const tset = <K extends keyof TrainConfig>(key: K, value: TrainConfig[K] | undefined) => {
    if (value !== undefined) train[key] = value;
  };
  tset("batch", int("batch"));
  tset("crop", int("crop", 2));
  tset("lr", num("lr"));
  tset("warmup", int("warmup", 0));
  tset("decay", int("decay"));
  tset("weightDecay", num("wd"));
  tset("accumulate", int("accum"));
  tset("subwordAlpha", num("subword-alpha", 0, 1));
  tset("selfConditioning", num("self-cond", 0, 1));
  tset("unconditional", num("unconditional", 0, 1));
  tset("ema", num("ema", 0, 0.99999));
  return { model, train };
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function defaultRunDir(): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  const stamp = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${
    pad(now.getMinutes())
  }${pad(now.getSeconds())}`;
  return join("runs", stamp);
}

/**
 * Prints samples from the model (used before training and after each epoch).
 *
 * @param model The model.
 * @param tokenizer Its tokenizer.
 * @param options Count, steps, length, seed, and a heading.
 */
export async function printSamples(
  model: Diffusion,
  tokenizer: Tokenizer,
  options: { count: number; steps: number; length: number; seed: number; heading: string },
): Promise<void> {
  if (options.count <= 0) return;
  const sampler = new Sampler(model, {
    steps: options.steps,
    length: options.length,
    seed: options.seed,
    tokenizer,
  });
  const { texts } = await sampler.generate({ count: options.count });
  console.log(options.heading);
  // An early model often ends a text at once (EOS first): say so rather than print a blank line.
  for (const text of texts ?? []) console.log(`  ${text === "" ? "(empty)" : text}`);
}

/**
 * Runs `cli.ts train`.
 *
 * @param args The arguments after `train`.
 * @returns The exit code.
 */
export async function trainCommand(args: string[]): Promise<number> {
  const flags = parseTrainArgs(args);
  if (flags.help) {
    console.log(TRAIN_USAGE);
    return 0;
  }
  const runDir = str(flags, "ckpt") ?? defaultRunDir();
  const resuming = await exists(join(runDir, "config.json"));
  const engine = await Engine.create();
  const gpu = engine.runtime.gpu;
  console.log(`adapter: ${gpu.description} (${gpu.backend})`);
  // Neither --steps nor --epochs: the preset's full run, which would take a CPU adapter weeks.
  const cpuDemo = gpu.fallback && str(flags, "steps") === undefined && str(flags, "epochs") === undefined;
  const seed = numberFlag("--seed", str(flags, "seed"), { integer: true, min: 0 }) ?? 0;
  let config: RunConfig;
  let tokenizerBytes: Uint8Array;
  let checkpoint: Checkpoint | null = null;
  const corpusPath = str(flags, "corpus");
  using writer = await CheckpointWriter.open(runDir);
  if (resuming) {
    const loaded = await loadCheckpoint(runDir);
    config = loaded.config;
    checkpoint = loaded.checkpoint;
    tokenizerBytes = await readFileNamed(join(runDir, config.tokenizer.file), "tokenizer model");
    console.log(`resuming ${runDir} at step ${checkpoint?.state.step ?? 0}`);
  } else {
    const presetName = str(flags, "preset") ?? "tiny";
    if (!(presetName in PRESETS)) {
      throw new UsageError(`Invalid value for --preset: "${presetName}"; expected tiny, small or seed`);
    }
    const preset = presetName as keyof typeof PRESETS;
    const { model, train } = configsFrom(flags, preset);
    if (cpuDemo && str(flags, "batch") === undefined) train.batch = CPU_DEMO.batch;
    const spm = str(flags, "spm");
    if (spm) {
      tokenizerBytes = await readFileNamed(spm, "SentencePiece model");
    } else {
      const vocab = numberFlag("--vocab", str(flags, "vocab"), { integer: true, min: 20 }) ??
        PRESETS[preset].vocab;
      const corpus = corpusPath ?? builtinCorpus(BUILTIN_CORPUS);
      console.log(`training a ${vocab}-piece BPE tokenizer on ${corpusPath ?? "the built-in corpus"}`);
      tokenizerBytes = await trainTokenizer({
        corpus,
        vocabSize: vocab,
        log: (line) => console.log(`  ${line}`),
      });
    }
    const tokenizer = Tokenizer.fromBytes(tokenizerBytes);
    config = {
      model: modelConfig({ ...model, vocabSize: tokenizer.vocabSize }),
      train,
      tokenizer: { file: "tokenizer.model", vocabSize: tokenizer.vocabSize },
      seed,
      corpus: corpusPath ?? null,
      builtinCorpus: corpusPath ? null : BUILTIN_CORPUS,
      preset,
      heldOut: { fraction: 0.01, seed },
    };
  }
  const tokenizer = Tokenizer.fromBytes(tokenizerBytes);
  const preset = config.preset as keyof typeof PRESETS;
  // Stopping points: the flags given now, else those the run was started with; --steps alone replaces the
  // preset's default epochs, and with both the run stops at whichever comes first.
  const stepsFlag = numberFlag("--steps", str(flags, "steps"), { integer: true, min: 1 });
  const epochsFlag = numberFlag("--epochs", str(flags, "epochs"), { integer: true, min: 1 });
  const maxSteps = stepsFlag ?? (epochsFlag === undefined ? config.steps as number | undefined : undefined);
  const epochs = epochsFlag ??
    (stepsFlag === undefined ? (config.epochs as number | undefined) ?? PRESETS[preset]?.epochs : undefined);
  if (epochs === undefined && maxSteps === undefined) {
    throw new UsageError(
      `Cannot train the ${preset} preset without a stopping point: give --epochs or --steps`,
    );
  }
  config.epochs = epochs;
  config.steps = maxSteps;
  const minutesFlag = numberFlag("--minutes", str(flags, "minutes"), { min: 0 });
  const samples = numberFlag("--samples", str(flags, "samples"), { integer: true, min: 0 }) ?? 4;
  const sampleSteps = numberFlag("--sample-steps", str(flags, "sample-steps"), { integer: true, min: 1 }) ??
    (cpuDemo ? CPU_DEMO.sampleSteps : preset === "tiny" ? 100 : 200);
  const logEvery = numberFlag("--log-every", str(flags, "log-every"), { integer: true, min: 1 }) ?? 10;
  const ckptEvery = numberFlag("--ckpt-every", str(flags, "ckpt-every"), { integer: true, min: 1 }) ?? 500;

  const corpus = config.corpus
    ? await CorpusIndex.build(config.corpus as string)
    : CorpusIndex.fromLines(builtinCorpus(config.builtinCorpus as typeof BUILTIN_CORPUS ?? BUILTIN_CORPUS));
  const heldOut = config.heldOut as { fraction: number; seed: number };
  const split = corpus.split(heldOut.fraction, heldOut.seed);
  const train = config.train;
  const stream = new BatchStream(corpus, tokenizer, {
    batchSize: train.batch,
    cropLength: train.crop,
    seed: config.seed,
    indices: split.train,
    alpha: train.subwordAlpha,
    unconditional: train.unconditional,
  });

  const minutes = minutesFlag ?? (cpuDemo ? CPU_DEMO.minutes : undefined);
  if (cpuDemo) {
    console.log(
      `CPU adapter: training stops after ${minutes} minutes, batches of ${train.batch}, samples of ` +
        `${sampleSteps} reverse steps (--epochs, --steps, --minutes, --sample-steps${
          resuming ? "" : " or --batch"
        } to change)`,
    );
  }
  const model = Diffusion.create(engine, config.model, { seed: config.seed });
  const trainer = new Trainer(model, train, { seed: config.seed });
  let state: RunState = {
    step: 0,
    epoch: 0,
    tokens: 0,
    random: trainer.random.state,
    seedCounter: 0,
    data: null,
  };
  if (checkpoint) {
    restoreCheckpoint(model, checkpoint, runDir);
    state = checkpoint.state;
    trainer.step = state.step;
    trainer.random.state = state.random;
    engine.seedCounter = state.seedCounter;
    stream.restore(state.data as Parameters<BatchStream["restore"]>[0]);
    await truncateLog(runDir, state.step);
  }
  const m = config.model;
  console.log(
    `model: ${
      model.store.count.toLocaleString("en")
    } parameters (V=${m.vocabSize} E=${m.embeddingDim} D=${m.modelDim} ` +
      `layers=${m.layers} heads=${m.heads}); batch ${train.batch}×${train.crop}; corpus ${corpus.lineCount} lines ` +
      `(${split.train.length} train, ${split.heldOut.length} held out); run ${runDir}`,
  );
  let savedAt = -1;
  const save = async () => {
    savedAt = trainer.step;
    state = {
      step: trainer.step,
      epoch: stream.epoch,
      tokens: state.tokens,
      random: trainer.random.state,
      seedCounter: engine.seedCounter,
      data: stream.state(),
    };
    await writer.save({ model, config, state, tokenizer: tokenizerBytes });
  };
  if (checkpoint) savedAt = trainer.step;
  else await save();

  const sampleOptions = (heading: string) => ({
    count: samples,
    steps: sampleSteps,
    length: train.crop,
    seed: config.seed + trainer.step,
    heading,
  });
  await printSamples(model, tokenizer, sampleOptions(`samples at step ${trainer.step}:`));

  const interactive = Deno.stdout.isTerminal();
  const stepsPerEpoch = stream.batchesInEpoch(stream.epoch) / train.accumulate;
  const epochTarget = epochs === undefined
    ? Infinity
    : state.step + Math.ceil((epochs - stream.epoch) * stepsPerEpoch - stream.position / train.accumulate);
  const target = Math.min(maxSteps ?? Infinity, epochTarget);
  const started = performance.now();
  const startStep = trainer.step;
  let lastEpoch = stream.epoch;
  let sampledAt = trainer.step;
  let tokensSinceLog = 0;
  // Rates are taken between the times steps' metrics arrived, not were reported: reports come in bursts
  // when the metrics in flight are drained (at checkpoints and at the end).
  let logClock = performance.now();
  // `last`: the run's final step, logged whatever its number (a run stopped by time still shows its loss).
  const report = async (metrics: StepMetrics, epoch: number, arrivedAt: number, last = false) => {
    state.tokens += metrics.tokens;
    tokensSinceLog += metrics.tokens;
    const elapsed = (performance.now() - started) / 1000;
    const rate = (metrics.step - startStep) / Math.max(elapsed, 1e-9);
    const eta = (target - metrics.step) / rate;
    const line = `step ${metrics.step}/${target} · epoch ${epoch + 1} · ${
      Math.round(tokensSinceLog / Math.max((arrivedAt - logClock) / 1000, 1e-9))
    } tok/s · ETA ${formatDuration(eta)} · loss ${metrics.loss.toFixed(4)} mse ${metrics.mse.toFixed(4)} ce ${
      metrics.ce.toFixed(4)
    } acc ${metrics.accuracy.toFixed(3)}`;
    if (metrics.step % logEvery === 0 || metrics.step === target || last) {
      await appendLog(runDir, {
        step: metrics.step,
        epoch,
        loss: metrics.loss,
        mse: metrics.mse,
        ce: metrics.ce,
        accuracy: metrics.accuracy,
        lr: metrics.lr,
        grad_norm: metrics.gradNorm,
        tokens_per_s: Math.round(tokensSinceLog / Math.max((arrivedAt - logClock) / 1000, 1e-9)),
        tokens: state.tokens,
        time_s: Number(elapsed.toFixed(2)),
      });
      if (!interactive) console.log(line);
      tokensSinceLog = 0;
      logClock = arrivedAt;
    }
    if (interactive) await Deno.stdout.write(new TextEncoder().encode(`\r\x1b[2K${line}`));
  };
  // Metrics are read back while later steps run. Deno settles a buffer mapping on a ~10 ms poll, so
  // waiting on each step's metrics before recording the next would cap a small model at ~90 steps/s.
  const inFlight: { arrival: Promise<{ metrics: StepMetrics; arrivedAt: number }>; epoch: number }[] = [];
  const reportOldest = async (last = false) => {
    const oldest = inFlight.shift()!;
    const { metrics, arrivedAt } = await oldest.arrival;
    await report(metrics, oldest.epoch, arrivedAt, last);
  };
  const deadline = minutes === undefined ? Infinity : started + minutes * 60_000;
  while (trainer.step < target && performance.now() < deadline) {
    const epochOfStep = stream.epoch;
    const batches = [];
    for (let i = 0; i < train.accumulate; i++) batches.push(await stream.next());
    const { metrics } = await trainer.trainStep(batches);
    const arrival = metrics.then((m) => ({ metrics: m, arrivedAt: performance.now() }));
    arrival.catch(() => {}); // handled: a failed read-back rethrows where it is awaited, in order
    inFlight.push({ arrival, epoch: epochOfStep });
    if (inFlight.length > METRICS_IN_FLIGHT) await reportOldest();
    const epochEnded = stream.epoch !== lastEpoch;
    if (trainer.step % ckptEvery === 0 || epochEnded || trainer.step >= target) {
      const stopping = trainer.step >= target || performance.now() >= deadline;
      while (inFlight.length > 0) await reportOldest(stopping && inFlight.length === 1);
      if (interactive) console.log();
      await save();
      if (epochEnded) {
        lastEpoch = stream.epoch;
        sampledAt = trainer.step;
        await printSamples(
          model,
          tokenizer,
          sampleOptions(`samples after epoch ${lastEpoch} (step ${trainer.step}):`),
        );
      }
    }
  }
  while (inFlight.length > 0) await reportOldest(inFlight.length === 1);
  if (interactive) console.log();
  if (savedAt !== trainer.step) await save();
  if (sampledAt !== trainer.step) {
    await printSamples(model, tokenizer, sampleOptions(`samples at step ${trainer.step}:`));
  }
  console.log(
    `checkpoint: ${runDir} (step ${trainer.step}, ${formatDuration((performance.now() - started) / 1000)})`,
  );
  if (trainer.step < target) {
    console.log(
      `time limit of ${minutes} minutes reached at step ${trainer.step}; continue with --ckpt ${runDir}`,
    );
  }
  return 0;
}
