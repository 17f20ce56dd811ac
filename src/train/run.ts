/**
 * `TrainingRun`: a model being trained in a run directory. It is created from a typed config (a preset
 * and overrides) or opened from its directory to resume; it trains with progress reports and an
 * `AbortSignal`, writes checkpoints, `log.jsonl` and samples on its cadence, and hands back a sampler
 * bound to the run.
 *
 * Vocabulary: a run's *settings* are what `config.json` holds; *changeable* settings (where training
 * stops, the optimiser's rates, batch size, cadences) may be changed when the run resumes, the others
 * (model shape, tokenizer, corpus, seed, crop length) are fixed when it starts. *Training time* is the
 * wall time spent in {@linkcode TrainingRun.train} over all sessions, sampling excluded.
 *
 * @module
 */
import { join } from "node:path";
import { BatchStream, type BatchStreamState } from "../data/batches.ts";
import { CorpusIndex } from "../data/corpus_index.ts";
import { builtinCorpus } from "../data/grammar.ts";
import {
  type BuiltinCorpusConfig,
  type ModelConfig,
  modelConfig,
  type PresetName,
  PRESETS,
  type RunCadence,
  type TrainConfig,
  trainConfig,
} from "../diffusion/config.ts";
import { Diffusion } from "../diffusion/diffusion.ts";
import { Sampler, type SamplerOptions } from "../diffusion/sampler.ts";
import { Engine, type EngineOptions } from "../tensor/engine.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { trainTokenizer } from "../tokenizer/trainer.ts";
import {
  appendLog,
  CheckpointWriter,
  loadCheckpoint,
  readLog,
  restoreCheckpoint,
  runFiles,
  truncateLog,
} from "./checkpoint.ts";
import type { RunConfig, RunState } from "./state_dict.ts";
import { pathExists, readFileNamed } from "./files.ts";
import { type StepMetrics, Trainer } from "./trainer.ts";

/** Lines and seed of the built-in corpus a run trains on when it is given no corpus file. */
export const BUILTIN_CORPUS: Readonly<BuiltinCorpusConfig> = Object.freeze({ lines: 20000, seed: 0 });

/**
 * A run given neither `epochs` nor `steps` on a CPU (software) adapter is a short demonstration: it
 * trains for `minutes` per call of `train()` unless told otherwise, a new one in batches of `batch`
 * unless its config names a batch size, and samples with `sampleSteps` reverse steps. On lavapipe with
 * two cores the tiny preset's batches of 256 made 6 steps in ten minutes and printed empty samples;
 * batches of 8 made about 100 (loss 6.1 → 3.3–3.7, samples of words); 100 reverse steps took about two
 * minutes a time.
 */
export const CPU_DEMONSTRATION: Readonly<{ minutes: number; batch: number; sampleSteps: number }> = Object
  .freeze({ minutes: 10, batch: 8, sampleSteps: 25 });

/** Training steps whose metrics may still be on their way back while the next step is recorded. */
const METRICS_IN_FLIGHT = 8;
/**
 * Skipped steps in a row (non-finite gradients) after which training stops: more than the halvings that
 * take mixed precision's loss scale from its start, 2¹⁶, down to 1, so only a model that stays broken
 * stops.
 */
export const MAX_SKIPPED_IN_A_ROW = 25;
/** Shortest span of training time, in seconds, over which tokens per second are measured. */
const RATE_WINDOW = 2;
/** The cadence of a run whose config does not set it (runs written before these settings were saved too). */
function cadenceDefaults(preset: string): Required<Omit<RunCadence, "epochs" | "steps">> {
  return { checkpointEvery: 500, logEvery: 10, samples: 4, sampleSteps: preset === "tiny" ? 100 : 200 };
}
/** Share of the corpus held out of training. */
const HELD_OUT_FRACTION = 0.01;
/** Lines read to check that the tokenizer fits the corpus, and the share of unknown tokens tolerated. */
const FIT_CHECK = { lines: 200, unknownShare: 0.1 } as const;

/** The typed config of a new run: a preset, overrides of its model and training options, data and cadence. */
export interface TrainingRunConfig extends RunCadence {
  /**
   * The recipe the run starts from (see {@linkcode PRESETS}); the fields below override it.
   * @default {"tiny"}
   */
  preset?: PresetName;
  /** Overrides of the preset's model shape (the vocabulary size comes from the tokenizer). */
  model?: Partial<Omit<ModelConfig, "vocabSize">>;
  /** Overrides of the preset's training options. */
  train?: Partial<TrainConfig>;
  /** A corpus file, one example per line; without one the run trains on the built-in corpus. */
  corpus?: string;
  /** The bytes of a SentencePiece model; without one a BPE tokenizer is trained on the corpus. */
  tokenizer?: Uint8Array;
  /**
   * Pieces of the tokenizer trained when none is given, in [20, 65536].
   * @default {the preset's: tiny 400, small 2000, seed 8000}
   */
  vocabSize?: number;
  /**
   * Seed of initialisation, data order and noise, an integer in [0, 2³²).
   * @default {0}
   */
  seed?: number;
}

/** The training options that may change when a run resumes, in the order changes are reported. */
export const CHANGEABLE_TRAIN_KEYS = [
  "batch",
  "lr",
  "warmup",
  "decay",
  "weightDecay",
  "beta1",
  "beta2",
  "eps",
  "clip",
  "accumulate",
  "selfConditioning",
  "subwordAlpha",
  "unconditional",
] as const;

/** A training option that may change when a run resumes. */
export type ChangeableTrainKey = typeof CHANGEABLE_TRAIN_KEYS[number];

/**
 * Settings changed when a run resumes (see {@linkcode TrainingRun.open}). `steps` given alone replaces
 * the run's `epochs`, and `epochs` alone its `steps`; with both the run stops at whichever comes first.
 */
export interface RunChanges extends RunCadence {
  /** Changeable training options. */
  train?: Partial<Pick<TrainConfig, ChangeableTrainKey>>;
}

/** How a run gets its engine, and whether a new one may replace what a directory holds. */
export interface TrainingRunOptions extends EngineOptions {
  /** The engine to train on (default: a new one from `gpu` and `precision`). */
  engine?: Engine;
  /**
   * Start a new run even where the directory holds (part of) one: its run files are deleted first.
   * Only {@linkcode TrainingRun.create} reads it.
   * @default {false}
   */
  fresh?: boolean;
  /** Changed settings; only {@linkcode TrainingRun.open} reads it. */
  changes?: RunChanges;
}

/** What {@linkcode TrainingRun.train} reports while it runs. */
export type TrainingProgress =
  | {
    /** One optimiser step's metrics arrived. */
    type: "step";
    /** The step's number (1-based). */
    step: number;
    /** The step at which training is expected to stop (steps, or the end of the last epoch). */
    target: number;
    /** The epoch the step trained in, 1-based. */
    epoch: number;
    /** Epochs the run stops after, if it stops at an epoch. */
    epochs: number | undefined;
    /** The step's loss, accuracy, gradient norm and learning rate. */
    metrics: StepMetrics;
    /** Real tokens per second of training time over the last few seconds (this session's only). */
    tokensPerSecond: number;
    /** Training time of the run so far, in seconds (all sessions). */
    time: number;
    /** Seconds of training left at this session's rate. */
    eta: number;
    /** Whether the step was written to `log.jsonl`. */
    logged: boolean;
  }
  | {
    /** A checkpoint was committed. */
    type: "checkpoint";
    /** Its step. */
    step: number;
  }
  | {
    /** Samples were drawn: before training, after an epoch, or at the end. */
    type: "samples";
    /** When: `start`, `epoch` (after an epoch ended) or `end`. */
    when: "start" | "epoch" | "end";
    /** The step of the weights sampled. */
    step: number;
    /** Epochs completed. */
    epoch: number;
    /** The texts (empty when a sample ended at once). */
    texts: string[];
  };

/** Options of {@linkcode TrainingRun.train}. */
export interface TrainOptions {
  /** Called with every step's metrics, each checkpoint and each set of samples; awaited. */
  onProgress?: (progress: TrainingProgress) => unknown;
  /** Aborting it finishes the step in progress, writes a checkpoint and returns. */
  signal?: AbortSignal;
  /** Stop after this many minutes of training, with a checkpoint (default: none, or a CPU demonstration's). */
  minutes?: number;
}

/** How a call of {@linkcode TrainingRun.train} ended. */
export interface TrainResult {
  /** The step reached (and checkpointed). */
  step: number;
  /** Epochs completed. */
  epoch: number;
  /**
   * `finished`: the run's steps or epochs are done; `aborted`: the signal; `time`: the minutes ran out;
   * `non-finite`: {@linkcode MAX_SKIPPED_IN_A_ROW} steps in a row had non-finite gradients and were
   * skipped (the checkpoint holds the weights before them).
   */
  stopped: "finished" | "aborted" | "time" | "non-finite";
  /** Steps skipped for non-finite gradients in this call. */
  skipped: number;
}

interface RunParts {
  dir: string;
  config: RunConfig;
  engine: Engine;
  tokenizer: Tokenizer;
  tokenizerBytes: Uint8Array;
  corpus: CorpusIndex;
  demonstration: boolean;
  changes: string[];
  writer: CheckpointWriter;
}

function checkInteger(what: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot configure the run: ${what} is ${value}, expected an integer in [${min}, ${max}]`,
    );
  }
}

function checkCadence(settings: RunChanges): void {
  checkInteger("epochs", settings.epochs, 1, 1e6);
  checkInteger("steps", settings.steps, 1, 1e9);
  checkInteger("checkpointEvery", settings.checkpointEvery, 1, 1e9);
  checkInteger("logEvery", settings.logEvery, 1, 1e9);
  checkInteger("samples", settings.samples, 0, 64);
  checkInteger("sampleSteps", settings.sampleSteps, 1, 10000);
}

/** The corpus a run trains on: its file, or the built-in sentences. */
async function openCorpus(config: RunConfig): Promise<CorpusIndex> {
  if (config.corpus) return await CorpusIndex.build(config.corpus);
  return CorpusIndex.fromLines(builtinCorpus(config.builtinCorpus ?? BUILTIN_CORPUS));
}

/**
 * Checks that tokenizer, model and corpus belong together: the model's vocabulary is the tokenizer's,
 * the tokenizer has EOS and pad pieces, and it knows most of the corpus's text.
 */
async function checkFit(
  vocabulary: { model: number; config: number; corpusLines?: number | undefined },
  tokenizer: Tokenizer,
  corpus: CorpusIndex,
  names: { tokenizer: string; corpus: string; run: string },
): Promise<void> {
  const V = tokenizer.vocabSize;
  if (vocabulary.model !== V || vocabulary.config !== V) {
    throw new RangeError(
      `Cannot train ${names.run}: ${names.tokenizer} has ${V} pieces, but the model's vocabulary is ` +
        `${vocabulary.model} (config.json's tokenizer: ${vocabulary.config})`,
    );
  }
  if (tokenizer.eosId < 0 || tokenizer.padId < 0) {
    throw new RangeError(`Cannot train ${names.run}: ${names.tokenizer} has no </s> or <pad> piece`);
  }
  if (vocabulary.corpusLines !== undefined && corpus.lineCount !== vocabulary.corpusLines) {
    throw new RangeError(
      `Cannot train ${names.run}: ${names.corpus} has ${corpus.lineCount} lines, but the run started on ` +
        `${vocabulary.corpusLines}; the corpus changed`,
    );
  }
  const count = Math.min(corpus.lineCount, FIT_CHECK.lines);
  const lines = await corpus.readLines(Array.from({ length: count }, (_, i) => i));
  let tokens = 0, unknown = 0;
  for (const line of lines) {
    for (const id of tokenizer.encode(line)) {
      tokens++;
      if (id === tokenizer.unkId) unknown++;
    }
  }
  if (tokens > 0 && unknown / tokens > FIT_CHECK.unknownShare) {
    throw new RangeError(
      `Cannot train ${names.run}: ${names.tokenizer} does not fit ${names.corpus}: ` +
        `${(100 * unknown / tokens).toFixed(1)}% of the first ${count} lines' tokens are unknown`,
    );
  }
}

/** The fields of `record` that are not undefined. */
function definedFields<T extends Record<string, unknown>>(record: T): Partial<T> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function describeValue(value: unknown): string {
  return value === undefined ? "none" : String(value);
}

/**
 * A training run in a directory: the model, its tokenizer and corpus, and where training stands.
 *
 * @example Train, stop, resume and sample
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 *
 * const dir = await Deno.makeTempDir();
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
 * const stop = new AbortController();
 * {
 *   using run = await TrainingRun.create(dir, { preset: "tiny", model, train: { batch: 4 }, steps: 20, samples: 0 });
 *   await run.train({
 *     signal: stop.signal,
 *     onProgress: (p) => p.type === "step" && p.step === 5 && stop.abort(),
 *   });
 * } // disposed: its lock and GPU memory are released
 * using resumed = await TrainingRun.open(dir);
 * await resumed.train();
 * const { texts } = await resumed.sampler({ steps: 10 }).generate({ count: 2 });
 * console.log(resumed.step, texts); // 20 and two texts
 * ```
 */
export class TrainingRun {
  /** The run directory. */
  readonly dir: string;
  /** The run's settings, as `config.json` holds them. */
  readonly config: RunConfig;
  /** The engine the model runs on. */
  readonly engine: Engine;
  /** The model being trained. */
  readonly model: Diffusion;
  /** The run's tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The corpus the run trains on. */
  readonly corpus: CorpusIndex;
  /** Whether the run is a CPU adapter's short demonstration (see {@linkcode CPU_DEMONSTRATION}). */
  readonly demonstration: boolean;
  /** The settings changed when the run was opened, as `name old → new` lines. */
  readonly changes: readonly string[];
  #tokenizerBytes: Uint8Array;
  #writer: CheckpointWriter;
  #trainer: Trainer;
  #stream: BatchStream;
  #heldOut: number;
  #tokens = 0;
  #savedAt = -1;
  /** Training time of earlier sessions, in seconds. */
  #timeOffset = 0;
  #training = false;
  #checkpointRequests: (() => void)[] = [];
  #disposed = false;

  private constructor(parts: RunParts) {
    this.dir = parts.dir;
    this.config = parts.config;
    this.engine = parts.engine;
    this.tokenizer = parts.tokenizer;
    this.#tokenizerBytes = parts.tokenizerBytes;
    this.corpus = parts.corpus;
    this.demonstration = parts.demonstration;
    this.changes = parts.changes;
    this.#writer = parts.writer;
    const config = parts.config;
    this.model = Diffusion.create(parts.engine, config.model, { seed: config.seed });
    this.#trainer = new Trainer(this.model, config.train, { seed: config.seed });
    const split = parts.corpus.split(config.heldOut.fraction, config.heldOut.seed);
    this.#heldOut = split.heldOut.length;
    this.#stream = new BatchStream(parts.corpus, parts.tokenizer, {
      batchSize: config.train.batch,
      cropLength: config.train.crop,
      seed: config.seed,
      indices: split.train,
      alpha: config.train.subwordAlpha,
      unconditional: config.train.unconditional,
    });
  }

  /**
   * Starts a new run in `dir` and writes its step-0 checkpoint, so the directory holds a complete run.
   *
   * @example Usage
   * ```ts
   * import { TrainingRun } from "@difflm/core";
   * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
   * using run = await TrainingRun.create(await Deno.makeTempDir(), { preset: "tiny", model, epochs: 10, samples: 2 });
   * console.log(run.step, run.target()); // 0 and the step at the end of epoch 10
   * ```
   * @param dir The run directory (created if missing).
   * @param config The preset and overrides, data, stopping point and cadence.
   * @param options The engine (or its provider and precision), and `fresh` to replace a run in `dir`.
   * @returns The run, at step 0.
   * @throws {Error} If `dir` already holds a run or part of one and `fresh` is not set, or another
   *   process trains there.
   * @throws {RangeError} If a setting is out of range, there is no stopping point, or the tokenizer does
   *   not fit the corpus.
   */
  static async create(
    dir: string,
    config: TrainingRunConfig = {},
    options: TrainingRunOptions = {},
  ): Promise<TrainingRun> {
    const presetName = config.preset ?? "tiny";
    const preset = PRESETS[presetName];
    if (!preset) {
      throw new RangeError(`Cannot create a run with preset "${presetName}": expected tiny, small or seed`);
    }
    checkCadence(config);
    checkInteger("seed", config.seed, 0, 2 ** 32 - 1);
    checkInteger("vocabSize", config.vocabSize, 20, 65536);
    const { present } = await runFiles(dir);
    if (await pathExists(join(dir, "log.jsonl"))) present.push("log.jsonl");
    if (present.length > 0 && !options.fresh) {
      throw new Error(
        `Cannot start a new run in "${dir}": it holds ${present.join(", ")} of another run; resume it, ` +
          `or start fresh there (this deletes it)`,
      );
    }
    const epochs = config.epochs ?? (config.steps === undefined ? preset.epochs : undefined);
    if (epochs === undefined && config.steps === undefined) {
      throw new RangeError(
        `Cannot train the ${presetName} preset without a stopping point: give epochs or steps`,
      );
    }
    const corpus = config.corpus
      ? await CorpusIndex.build(config.corpus)
      : CorpusIndex.fromLines(builtinCorpus(BUILTIN_CORPUS));
    let tokenizerBytes: Uint8Array;
    if (config.tokenizer) tokenizerBytes = config.tokenizer;
    else {
      const lines = config.corpus ?? builtinCorpus(BUILTIN_CORPUS);
      tokenizerBytes = await trainTokenizer({ corpus: lines, vocabSize: config.vocabSize ?? preset.vocab });
    }
    const tokenizer = Tokenizer.fromBytes(tokenizerBytes);
    if (config.tokenizer && config.vocabSize !== undefined && config.vocabSize !== tokenizer.vocabSize) {
      throw new RangeError(
        `Cannot create a run with vocabSize ${config.vocabSize}: the given tokenizer has ${tokenizer.vocabSize} pieces`,
      );
    }
    const model = modelConfig({
      ...preset.model,
      ...definedFields(config.model ?? {}),
      vocabSize: tokenizer.vocabSize,
    });
    await checkFit({ model: model.vocabSize, config: tokenizer.vocabSize }, tokenizer, corpus, {
      tokenizer: config.tokenizer ? "the tokenizer" : "the tokenizer trained here",
      corpus: config.corpus ?? "the built-in corpus",
      run: `"${dir}"`,
    });
    const engine = options.engine ?? await Engine.create({ gpu: options.gpu, precision: options.precision });
    const seed = config.seed ?? 0;
    const demonstration = engine.runtime.gpu.fallback && config.epochs === undefined &&
      config.steps === undefined;
    const runConfig: RunConfig = {
      model,
      train: trainConfig({
        ...preset.train,
        ...(demonstration ? { batch: CPU_DEMONSTRATION.batch } : {}),
        ...definedFields(config.train ?? {}),
      }),
      tokenizer: { file: "tokenizer.model", vocabSize: tokenizer.vocabSize },
      seed,
      corpus: config.corpus ?? null,
      builtinCorpus: config.corpus ? null : { ...BUILTIN_CORPUS },
      corpusLines: corpus.lineCount,
      preset: presetName,
      heldOut: { fraction: HELD_OUT_FRACTION, seed },
      epochs,
      steps: config.steps,
      ...cadenceDefaults(presetName),
      ...(demonstration ? { sampleSteps: CPU_DEMONSTRATION.sampleSteps } : {}),
      ...definedFields({
        checkpointEvery: config.checkpointEvery,
        logEvery: config.logEvery,
        samples: config.samples,
        sampleSteps: config.sampleSteps,
      }),
    };
    // The writer takes the run's lock, and only then deletes what a fresh start replaces.
    const writer = await CheckpointWriter.open(dir, { fresh: options.fresh === true });
    let run: TrainingRun | undefined;
    try {
      run = new TrainingRun({
        dir,
        config: runConfig,
        engine,
        tokenizer,
        tokenizerBytes,
        corpus,
        demonstration,
        changes: [],
        writer,
      });
      await run.#save();
      return run;
    } catch (error) {
      if (run) run.dispose();
      else writer.close();
      throw error;
    }
  }

  /**
   * Opens the run in `dir` where its last checkpoint stopped, applying changed settings.
   *
   * @example Usage
   * ```ts
   * import { TrainingRun } from "@difflm/core";
   * const dir = await Deno.makeTempDir();
   * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
   * (await TrainingRun.create(dir, { model, train: { batch: 4 }, vocabSize: 80, steps: 4, samples: 0 })).dispose();
   * using run = await TrainingRun.open(dir, { changes: { steps: 8, train: { lr: 5e-4 } } });
   * console.log(run.step, run.changes); // 0 [ "lr 0.001 → 0.0005", "steps 4 → 8" ] (the order may differ)
   * ```
   * @param dir The run directory.
   * @param options The engine (or its provider and precision), and `changes` to the changeable settings.
   * @returns The run.
   * @throws {Error} If `dir` holds no run, or only part of one (the message names what is missing), or
   *   another process trains it (the run's lock is held while the run is open, until `dispose()`).
   * @throws {RangeError} If a change is out of range, or tokenizer, model and corpus do not fit.
   */
  static async open(dir: string, options: TrainingRunOptions = {}): Promise<TrainingRun> {
    const { present, missing } = await runFiles(dir);
    if (present.length === 0) throw new Error(`Cannot open run "${dir}": it holds no run (no config.json)`);
    if (missing.length > 0) {
      throw new Error(
        `Cannot open run "${dir}": it holds part of a run, ${missing.join(", ")} missing; ` +
          `nothing was changed (start fresh there to replace it)`,
      );
    }
    const changes = options.changes ?? {};
    checkCadence(changes);
    // The writer takes the run's lock and finishes or discards an interrupted commit before the read.
    const writer = await CheckpointWriter.open(dir);
    try {
      return await TrainingRun.#open(dir, writer, changes, options);
    } catch (error) {
      writer.close();
      throw error;
    }
  }

  static async #open(
    dir: string,
    writer: CheckpointWriter,
    changes: RunChanges,
    options: TrainingRunOptions,
  ): Promise<TrainingRun> {
    const { config: saved, checkpoint } = await loadCheckpoint(dir);
    if (!checkpoint) {
      throw new Error(`Cannot open run "${dir}": it holds part of a run, no checkpoint was committed`);
    }
    const config: RunConfig = { ...cadenceDefaults(saved.preset), ...saved };
    const tokenizerPath = join(dir, config.tokenizer.file);
    const tokenizerBytes = await readFileNamed(tokenizerPath, "tokenizer model");
    const tokenizer = Tokenizer.fromBytes(tokenizerBytes);
    const corpus = await openCorpus(config);
    const vocabulary = {
      model: config.model.vocabSize,
      config: config.tokenizer.vocabSize,
      corpusLines: config.corpusLines,
    };
    await checkFit(vocabulary, tokenizer, corpus, {
      tokenizer: `"${tokenizerPath}"`,
      corpus: config.corpus ? `"${config.corpus}"` : "the built-in corpus",
      run: `"${dir}"`,
    });
    const changed: string[] = [];
    const change = <T>(name: string, before: T, after: T | undefined): T => {
      if (after === undefined || after === before) return before;
      changed.push(`${name} ${describeValue(before)} → ${describeValue(after)}`);
      return after;
    };
    const train: TrainConfig = { ...config.train };
    for (const key of CHANGEABLE_TRAIN_KEYS) train[key] = change(key, train[key], changes.train?.[key]);
    config.train = trainConfig(train);
    // Stopping points: --steps alone replaces the epochs and --epochs alone the steps; with both the run
    // stops at whichever comes first.
    if (changes.steps !== undefined || changes.epochs !== undefined) {
      for (const key of ["epochs", "steps"] as const) {
        if (changes[key] !== config[key]) {
          changed.push(`${key} ${describeValue(config[key])} → ${describeValue(changes[key])}`);
        }
        config[key] = changes[key];
      }
    }
    config.checkpointEvery = change("checkpointEvery", config.checkpointEvery, changes.checkpointEvery);
    config.logEvery = change("logEvery", config.logEvery, changes.logEvery);
    config.samples = change("samples", config.samples, changes.samples);
    const engine = options.engine ?? await Engine.create({ gpu: options.gpu, precision: options.precision });
    const demonstration = engine.runtime.gpu.fallback && changes.epochs === undefined &&
      changes.steps === undefined;
    config.sampleSteps = change(
      "sampleSteps",
      config.sampleSteps,
      changes.sampleSteps ?? (demonstration ? CPU_DEMONSTRATION.sampleSteps : undefined),
    );
    const run = new TrainingRun({
      dir,
      config,
      engine,
      tokenizer,
      tokenizerBytes,
      corpus,
      demonstration,
      changes: changed,
      writer,
    });
    const state = checkpoint.state;
    try {
      restoreCheckpoint(run.model, checkpoint, dir);
      run.#trainer.step = state.step;
      run.#trainer.random.state = state.random;
      engine.seedCounter = state.seedCounter;
      if (state.lossScale && engine.precision === "mixed") run.#trainer.restoreLossScale(state.lossScale);
      run.#stream.restore(rebatched(state.data as BatchStreamState, config.train.batch));
      run.#tokens = state.tokens;
      run.#savedAt = state.step;
      await truncateLog(dir, state.step);
      const last = (await readLog(dir)).at(-1);
      run.#timeOffset = typeof last?.time_s === "number" ? last.time_s : 0;
      return run;
    } catch (error) {
      // The caller releases the lock; the GPU memory is this run's to free.
      run.#trainer.dispose();
      run.model.dispose();
      throw error;
    }
  }

  /** Optimiser steps taken. */
  get step(): number {
    return this.#trainer.step;
  }

  /** Epochs completed. */
  get epoch(): number {
    return this.#stream.epoch;
  }

  /** Real tokens trained on. */
  get tokens(): number {
    return this.#tokens;
  }

  /** Lines of the corpus held out of training. */
  get heldOutLines(): number {
    return this.#heldOut;
  }

  /**
   * The step at which training stops: the run's steps, or the end of its last epoch, whichever comes first.
   *
   * @returns The step number (`Infinity` when neither is set).
   */
  target(): number {
    const { epochs, steps } = this.config;
    let byEpochs = Infinity;
    if (epochs !== undefined) {
      const stream = this.#stream;
      let batches = -stream.position;
      for (let e = stream.epoch; e < epochs; e++) batches += stream.batchesInEpoch(e);
      byEpochs = this.step + Math.ceil(Math.max(batches, 0) / this.config.train.accumulate);
    }
    return Math.min(steps ?? Infinity, byEpochs);
  }

  #finished(): boolean {
    const { epochs, steps } = this.config;
    return (steps !== undefined && this.step >= steps) || (epochs !== undefined && this.epoch >= epochs);
  }

  #state(): RunState {
    return {
      step: this.step,
      epoch: this.epoch,
      tokens: this.#tokens,
      random: this.#trainer.random.state,
      seedCounter: this.engine.seedCounter,
      data: this.#stream.state(),
    };
  }

  async #save(): Promise<void> {
    const state = this.#state();
    // The loss scale lives on the GPU and matters only in mixed precision.
    if (this.engine.precision === "mixed") state.lossScale = await this.#trainer.lossScaleState();
    await this.#writer.save({
      model: this.model,
      config: this.config,
      state,
      tokenizer: this.#tokenizerBytes,
    });
    this.#savedAt = this.step;
  }

  /**
   * Writes a checkpoint of where the run stands. While {@linkcode TrainingRun.train} runs, the checkpoint
   * is written after the step in progress, and the promise settles then.
   *
   * @example Usage
   * ```ts
   * import { TrainingRun } from "@difflm/core";
   * const dir = await Deno.makeTempDir();
   * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
   * (await TrainingRun.create(dir, { model, train: { batch: 4 }, vocabSize: 80, steps: 4, samples: 0 })).dispose();
   * using run = await TrainingRun.open(dir);
   * const training = run.train();
   * await run.checkpoint(); // at the next step's end, whatever the cadence
   * await training;
   * ```
   * @returns A promise that settles once the checkpoint is committed.
   */
  checkpoint(): Promise<void> {
    this.#checkDisposed();
    if (!this.#training) return this.#save();
    return new Promise((resolve) => this.#checkpointRequests.push(resolve));
  }

  /**
   * A sampler bound to the run: its model and tokenizer, texts of the run's sequence length, and the
   * run's sample steps, unless `options` say otherwise. It samples with the current weights.
   *
   * @example Usage
   * ```ts
   * import { TrainingRun } from "@difflm/core";
   * const dir = await Deno.makeTempDir();
   * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
   * (await TrainingRun.create(dir, { model, train: { batch: 4 }, vocabSize: 80, steps: 4, samples: 0 })).dispose();
   * using run = await TrainingRun.open(dir);
   * using sampler = run.sampler({ steps: 10 });
   * console.log((await sampler.generate({ template: "the _ dog _ ." })).texts); // the gaps filled in
   * ```
   * @param options Overrides of the sampler's options.
   * @returns The sampler.
   */
  sampler(options: SamplerOptions = {}): Sampler {
    this.#checkDisposed();
    return new Sampler(this.model, {
      length: this.config.train.crop,
      steps: this.config.sampleSteps,
      seed: this.config.seed,
      tokenizer: this.tokenizer,
      ...options,
    });
  }

  /**
   * Trains until the run's steps or epochs are done, the signal aborts, or the minutes run out; then
   * writes a checkpoint (unless the last one is of the same step) and returns. Samples are drawn before
   * training, after each epoch and at the end, unless aborted.
   *
   * @example Usage
   * ```ts
   * import { TrainingRun } from "@difflm/core";
   * const dir = await Deno.makeTempDir();
   * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
   * (await TrainingRun.create(dir, { model, train: { batch: 4 }, vocabSize: 80, steps: 4, samples: 0 })).dispose();
   * using run = await TrainingRun.open(dir);
   * const result = await run.train({
   *   signal: AbortSignal.timeout(60_000),
   *   onProgress: (p) => p.type === "step" && p.logged && console.log(p.step, p.metrics.loss),
   * });
   * console.log(result.stopped); // "finished": the 4 steps took less than a minute (else "aborted")
   * ```
   * @param options Progress callback, abort signal, time limit.
   * @returns The step reached and why training stopped.
   * @throws {RangeError} If `minutes` is negative or not a number.
   */
  async train(options: TrainOptions = {}): Promise<TrainResult> {
    this.#checkDisposed();
    if (this.#training) throw new Error(`Cannot train run "${this.dir}": it is already training`);
    const minutes = options.minutes ?? (this.demonstration ? CPU_DEMONSTRATION.minutes : undefined);
    if (minutes !== undefined && !(minutes >= 0)) {
      throw new RangeError(`Cannot train for ${minutes} minutes: expected a non-negative number`);
    }
    this.#training = true;
    try {
      return await this.#train(options, minutes);
    } finally {
      this.#training = false;
      for (const resolve of this.#checkpointRequests.splice(0)) resolve();
    }
  }

  async #train(options: TrainOptions, minutes: number | undefined): Promise<TrainResult> {
    const { signal } = options;
    const emit = async (progress: TrainingProgress) => await options.onProgress?.(progress);
    const config = this.config;
    const { logEvery = 10, checkpointEvery = 500, samples = 0 } = config;
    // Sampling time is left out of training time: it would make tokens/s and the ETA wrong.
    let sampling = 0;
    const sample = async (when: "start" | "epoch" | "end") => {
      if (samples <= 0 || signal?.aborted) return;
      const begun = performance.now();
      let texts: string[];
      try {
        ({ texts } = await this.sampler({ seed: config.seed + this.step }).generate({
          count: samples,
          signal,
        }));
      } catch (error) {
        // Samples on a CPU adapter take minutes: an abort stops them too, and training then stops.
        if (signal?.aborted) return;
        throw error;
      } finally {
        sampling += performance.now() - begun;
      }
      await emit({ type: "samples", when, step: this.step, epoch: this.epoch, texts });
    };
    await sample("start");
    sampling = 0;
    let sampledAt = this.step;
    const sessionStart = performance.now();
    const sessionStep = this.step;
    const trainingTime = (at: number) => this.#timeOffset + (at - sessionStart - sampling) / 1000;
    const deadline = minutes === undefined ? Infinity : sessionStart + minutes * 60_000;
    // Tokens per second over the last RATE_WINDOW seconds at least (from this session's start before
    // that): metrics arrive in bursts, several at one poll, so the rate between two arrivals means nothing.
    const history = [{ time: this.#timeOffset, tokens: this.#tokens }];
    const target = this.target();
    let skipped = 0, skippedInARow = 0;
    const report = async (metrics: StepMetrics, epoch: number, arrivedAt: number, forceLog: boolean) => {
      // A skipped step changed nothing: its tokens were not trained on.
      if (metrics.skipped) {
        skipped++;
        skippedInARow++;
      } else {
        skippedInARow = 0;
        this.#tokens += metrics.tokens;
      }
      const time = trainingTime(arrivedAt);
      while (history.length > 1 && history[1]!.time <= time - RATE_WINDOW) history.shift();
      const base = history[0]!;
      history.push({ time, tokens: this.#tokens });
      const tokensPerSecond = Math.round((this.#tokens - base.tokens) / Math.max(time - base.time, 1e-9));
      const rate = (metrics.step - sessionStep) / Math.max(time - this.#timeOffset, 1e-9);
      const logged = forceLog || metrics.step % logEvery === 0 || metrics.step === target;
      if (logged) {
        await appendLog(this.dir, {
          step: metrics.step,
          epoch,
          loss: metrics.loss,
          mse: metrics.mse,
          ce: metrics.ce,
          accuracy: metrics.accuracy,
          lr: metrics.lr,
          grad_norm: metrics.gradNorm,
          skipped: metrics.skipped,
          tokens_per_s: tokensPerSecond,
          tokens: this.#tokens,
          time_s: Number(time.toFixed(3)),
        });
      }
      await emit({
        type: "step",
        step: metrics.step,
        target,
        epoch: epoch + 1,
        epochs: config.epochs,
        metrics,
        tokensPerSecond,
        time,
        eta: (target - metrics.step) / rate,
        logged,
      });
    };
    // Metrics are read back while later steps run. Deno settles a buffer mapping on a ~10 ms poll, so
    // waiting on each step's metrics before recording the next would cap a small model at ~90 steps/s.
    const inFlight: { arrival: Promise<{ metrics: StepMetrics; arrivedAt: number }>; epoch: number }[] = [];
    const reportOldest = async (forceLog: boolean) => {
      const oldest = inFlight.shift()!;
      const { metrics, arrivedAt } = await oldest.arrival;
      await report(metrics, oldest.epoch, arrivedAt, forceLog);
    };
    // The checkpoint's step is always logged: a resumed run continues its training time from there.
    const checkpoint = async () => {
      while (inFlight.length > 0) await reportOldest(inFlight.length === 1);
      await this.#save();
      for (const resolve of this.#checkpointRequests.splice(0)) resolve();
      await emit({ type: "checkpoint", step: this.step });
    };
    let stopped: TrainResult["stopped"] = "finished";
    let lastEpoch = this.epoch;
    while (!this.#finished()) {
      if (signal?.aborted) {
        stopped = "aborted";
        break;
      }
      if (skippedInARow >= MAX_SKIPPED_IN_A_ROW) {
        stopped = "non-finite";
        break;
      }
      if (performance.now() >= deadline) {
        stopped = "time";
        break;
      }
      const epochOfStep = this.epoch;
      const batches = [];
      for (let i = 0; i < config.train.accumulate; i++) batches.push(await this.#stream.next());
      const { metrics } = await this.#trainer.trainStep(batches);
      const arrival = metrics.then((m) => ({ metrics: m, arrivedAt: performance.now() }));
      arrival.catch(() => {}); // handled: a failed read-back rethrows where it is awaited, in order
      inFlight.push({ arrival, epoch: epochOfStep });
      if (inFlight.length > METRICS_IN_FLIGHT) await reportOldest(false);
      const epochEnded = this.epoch !== lastEpoch;
      if (
        this.step % checkpointEvery === 0 || epochEnded || this.#finished() ||
        this.#checkpointRequests.length > 0
      ) {
        await checkpoint();
        if (epochEnded && !this.#finished()) {
          lastEpoch = this.epoch;
          await sample("epoch");
          sampledAt = this.step;
        }
      }
    }
    if (inFlight.length > 0 || this.#savedAt !== this.step) await checkpoint();
    if (skippedInARow >= MAX_SKIPPED_IN_A_ROW) stopped = "non-finite";
    if (stopped !== "aborted" && stopped !== "non-finite" && sampledAt !== this.step) await sample("end");
    return { step: this.step, epoch: this.epoch, stopped, skipped };
  }

  #checkDisposed(): void {
    if (this.#disposed) throw new Error(`Cannot use run "${this.dir}": it was disposed`);
  }

  /**
   * Frees the model's and the trainer's GPU memory and releases the run directory's lock; the run cannot
   * be used afterwards.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#trainer.dispose();
    this.model.dispose();
    this.#writer.close();
  }

  /** Frees the GPU memory, as {@linkcode TrainingRun.dispose}. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * A saved stream state moved to another batch size: the next batch starts at the first example not yet
 * trained on (rounded up to a whole batch of the new size).
 */
function rebatched(state: BatchStreamState, batchSize: number): BatchStreamState {
  if (state?.batchSize === undefined || state.batchSize === batchSize) return state;
  const examples = state.batch * state.batchSize;
  return { ...state, batch: Math.ceil(examples / batchSize), batchSize };
}
