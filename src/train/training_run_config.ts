/**
 * The settings of a {@linkcode TrainingRun}: the typed config of a new run, the changes allowed when it
 * resumes, their checks, and the check that a run's tokenizer fits its model and corpus.
 *
 * @module
 */
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
import { Engine, type EngineOptions } from "../tensor/engine.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { trainTokenizer } from "../tokenizer/trainer.ts";
import { join } from "node:path";
import { runFiles } from "./checkpoint.ts";
import { pathExists, readFileNamed } from "./files.ts";
import type { RunConfig } from "./state_dict.ts";

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

/** What a new run is made of, before its directory is written. */
export interface NewRunParts {
  config: RunConfig;
  engine: Engine;
  tokenizer: Tokenizer;
  tokenizerBytes: Uint8Array;
  corpus: CorpusIndex;
  demonstration: boolean;
}

function checkInteger(what: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot configure the run: ${what} is ${value}, expected an integer in [${min}, ${max}]`,
    );
  }
}

/**
 * Checks the stopping point and cadence of a new run or of a run's changes.
 *
 * @example Usage
 * ```ts
 * import { checkCadence } from "./training_run_config.ts";
 * checkCadence({ steps: 100, samples: 2 }); // in range
 * try {
 *   checkCadence({ samples: 100 });
 * } catch (e) {
 *   console.log((e as RangeError).message); // names samples and its range
 * }
 * ```
 * @param settings The settings given.
 * @throws {RangeError} If one is not an integer in its range.
 */
export function checkCadence(settings: RunChanges): void {
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
 * The settings, data and engine of a new run in `dir`, checked before anything is written there: the
 * tokenizer is trained here when the config gives none.
 *
 * @example Usage
 * ```ts
 * import { newRunParts } from "./training_run_config.ts";
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
 * const parts = await newRunParts(await Deno.makeTempDir(), { model, vocabSize: 80, steps: 4 }, {});
 * console.log(parts.config.model.vocabSize, parts.corpus.lineCount); // the tokenizer's pieces, the corpus's lines
 * ```
 * @param dir The run directory.
 * @param config The preset and overrides, data, stopping point and cadence.
 * @param options The engine (or its provider and precision), and `fresh` to replace a run in `dir`.
 * @returns The run's settings, engine, tokenizer (and its bytes), corpus, and whether it is a demonstration.
 * @throws {Error} If `dir` already holds a run or part of one and `fresh` is not set.
 * @throws {RangeError} If a setting is out of range, there is no stopping point, or the tokenizer does
 *   not fit the corpus.
 */
export async function newRunParts(
  dir: string,
  config: TrainingRunConfig,
  options: TrainingRunOptions,
): Promise<NewRunParts> {
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
  return { config: runConfig, engine, tokenizer, tokenizerBytes, corpus, demonstration };
}

/** Applies `changes` to the settings of a run being opened (in place), then makes its engine. */
async function applyChanges(
  config: RunConfig,
  changes: RunChanges,
  options: TrainingRunOptions,
): Promise<{ engine: Engine; demonstration: boolean; changed: string[] }> {
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
  return { engine, demonstration, changed };
}

/**
 * The settings, data and engine of the run in `dir` as it resumes: its saved settings (with the cadence
 * defaults of runs written before the cadence was saved), checked to fit its tokenizer and corpus, with
 * `changes` applied.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "./run.ts";
 * import { loadCheckpoint } from "./checkpoint.ts";
 * import { savedRunParts } from "./training_run_config.ts";
 * const dir = await Deno.makeTempDir();
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
 * (await TrainingRun.create(dir, { model, train: { batch: 4 }, vocabSize: 80, steps: 4, samples: 0 })).dispose();
 * const { config: saved } = await loadCheckpoint(dir);
 * const { config, changed } = await savedRunParts(dir, saved, { steps: 8 }, {});
 * console.log(config.steps, changed); // 8 [ "steps 4 → 8" ]
 * ```
 * @param dir The run directory.
 * @param saved The settings its `config.json` holds.
 * @param changes Changed settings.
 * @param options The engine (or its provider and precision).
 * @returns The settings, engine, tokenizer (and its bytes), corpus, whether the run is a demonstration,
 *   and the changes made, as `name old → new` lines.
 * @throws {Error} If the tokenizer model cannot be read.
 * @throws {RangeError} If tokenizer, model and corpus do not fit, or a changed setting is out of range.
 */
export async function savedRunParts(
  dir: string,
  saved: RunConfig,
  changes: RunChanges,
  options: TrainingRunOptions,
): Promise<NewRunParts & { changed: string[] }> {
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
  const { engine, demonstration, changed } = await applyChanges(config, changes, options);
  return { config, engine, tokenizer, tokenizerBytes, corpus, demonstration, changed };
}
