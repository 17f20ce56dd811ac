/**
 * A checkpoint's contents as bytes and values, with no file access: the run's config and state read from
 * JSON and checked, the model's weights, AdamW moments and moving average as host tensors by the seed's
 * parameter names, and a model built from a config and a weights file's bytes. Runs anywhere WebGPU does
 * (a browser tab included): no `node:` import and no `Deno` namespace here; checkpoint.ts reads and writes
 * the files.
 *
 * @module
 */
import { isLossScale, type LossScaleState } from "./loss_scale.ts";
import { type ModelConfig, modelConfig, type RunSettings, type TrainConfig } from "../diffusion/config.ts";
import { Diffusion } from "../diffusion/diffusion.ts";
import type { Engine } from "../tensor/engine.ts";
import type { ArenaName } from "../tensor/parameters.ts";
import { decodeSafetensors, type HostTensor } from "./safetensors.ts";

/** What `config.json` holds: enough to rebuild the model and continue training. */
export interface RunConfig extends RunSettings {
  /** The model's shape. */
  model: ModelConfig;
  /** Training options. */
  train: TrainConfig;
  /** The tokenizer: its file in the run directory and vocabulary size. */
  tokenizer: { file: string; vocabSize: number };
  /** Seed of the run. */
  seed: number;
  /** The corpus file, or null for the built-in corpus. */
  corpus: string | null;
  /** Preset the run started from. */
  preset: string;
}

/** What `state.json` holds: where training stands. */
export interface RunState {
  /** Optimiser steps taken. */
  step: number;
  /** Epochs completed. */
  epoch: number;
  /** Real tokens trained on. */
  tokens: number;
  /** State of the host random generator. */
  random: number;
  /** Counter of the GPU seeds. */
  seedCounter: number;
  /** State of the data stream (order and position). */
  data: unknown;
  /**
   * The dynamic loss scale of mixed precision (absent in runs saved before it was kept, and meaningless
   * in f32, where it is 1); a run resumed in another precision starts its scale afresh.
   */
  lossScale?: LossScaleState;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseJson(text: string | Uint8Array, what: string, source: string): unknown {
  try {
    return JSON.parse(typeof text === "string" ? text : new TextDecoder().decode(text));
  } catch (e) {
    throw new SyntaxError(`Cannot read ${what} "${source}": invalid JSON (${(e as Error).message})`);
  }
}

/**
 * Reads a run's `config.json` and checks it: the model's shape (every field as {@linkcode modelConfig}
 * requires), the training options and the tokenizer entry.
 *
 * @example Usage
 * ```ts
 * import { decodeRunConfig } from "./state_dict.ts";
 * try {
 *   decodeRunConfig('{"model": "x"}', "runs/a/config.json");
 * } catch (e) {
 *   console.log((e as Error).message); // names "model" and the file
 * }
 * ```
 * @param text The file's text or bytes.
 * @param source The file, for messages.
 * @returns The config, its model filled in with the defaults of fields it leaves out.
 * @throws {SyntaxError} If the text is not JSON.
 * @throws {TypeError} If a field is missing or of the wrong type.
 * @throws {RangeError} If a model field is out of range.
 */
export function decodeRunConfig(text: string | Uint8Array, source: string): RunConfig {
  const config = parseJson(text, "run config", source);
  const fail = (problem: string): never => {
    throw new TypeError(`Cannot read run config "${source}": ${problem}`);
  };
  if (!isObject(config)) return fail(`it holds ${JSON.stringify(config)}, expected an object`);
  for (const key of ["model", "train", "tokenizer"]) {
    if (!isObject(config[key])) {
      fail(`"${key}" is ${JSON.stringify(config[key]) ?? "missing"}, expected an object`);
    }
  }
  const tokenizer = config.tokenizer as Record<string, unknown>;
  if (typeof tokenizer.file !== "string" || !tokenizer.file || /[\\/]/.test(tokenizer.file)) {
    fail(`"tokenizer.file" is ${JSON.stringify(tokenizer.file)}, expected a file name in the run directory`);
  }
  if (!Number.isInteger(tokenizer.vocabSize) || (tokenizer.vocabSize as number) < 1) {
    fail(`"tokenizer.vocabSize" is ${JSON.stringify(tokenizer.vocabSize)}, expected a positive integer`);
  }
  let model: ModelConfig;
  try {
    model = modelConfig(config.model as Partial<ModelConfig>);
  } catch (e) {
    const Class = e instanceof RangeError ? RangeError : TypeError;
    throw new Class(`Cannot read run config "${source}": ${(e as Error).message}`);
  }
  return { ...config, model } as RunConfig;
}

/**
 * Reads a run's `state.json` and checks that every field is there with the right type.
 *
 * @example Usage
 * ```ts
 * import { decodeRunState } from "./state_dict.ts";
 * const state = decodeRunState(
 *   '{"step": 3, "epoch": 0, "tokens": 96, "random": 1, "seedCounter": 9, "data": null}',
 *   "runs/a/state.json",
 * );
 * console.log(state.step); // 3
 * ```
 * @param text The file's text or bytes.
 * @param source The file, for messages.
 * @returns The state.
 * @throws {SyntaxError} If the text is not JSON.
 * @throws {TypeError} If the state is not an object or a field is missing or not a count.
 */
export function decodeRunState(text: string | Uint8Array, source: string): RunState {
  const state = parseJson(text, "training state", source);
  if (!isObject(state)) {
    throw new TypeError(
      `Cannot read training state "${source}": it holds ${JSON.stringify(state)}, expected an object`,
    );
  }
  // random and seedCounter are 32-bit generator states; the others are counts.
  for (const key of ["step", "epoch", "tokens", "random", "seedCounter"] as const) {
    const value = state[key];
    const max = key === "random" || key === "seedCounter" ? 2 ** 32 - 1 : Number.MAX_SAFE_INTEGER;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
      throw new TypeError(
        `Cannot read training state "${source}": "${key}" is ${
          JSON.stringify(value) ?? "missing"
        }, expected an integer in [0, ${max}]`,
      );
    }
  }
  if (!("data" in state)) throw new TypeError(`Cannot read training state "${source}": "data" is missing`);
  if (state.lossScale !== undefined) {
    const lossScale = state.lossScale as Record<string, unknown> | null;
    const scale = lossScale?.scale, clean = lossScale?.clean;
    if (
      !isLossScale(scale) ||
      typeof clean !== "number" || !Number.isInteger(clean) || clean < 0
    ) {
      throw new TypeError(
        `Cannot read training state "${source}": "lossScale" is ${
          JSON.stringify(state.lossScale)
        }, expected {scale: a power of two in [1, 2^24], clean: a count}`,
      );
    }
  }
  return state as unknown as RunState;
}

/** The commit record's name inside a run directory: it names the committed checkpoint. */
export const MANIFEST_FILE = "checkpoint.json";
/** The folder inside a run directory that holds each checkpoint's files in `<generation>/`. */
export const CHECKPOINTS_FOLDER = "checkpoints";
/** A file of a checkpoint: weights, AdamW moments, moving average of the weights, training state. */
export type CheckpointFile =
  | "model.safetensors"
  | "optimizer.safetensors"
  | "average.safetensors"
  | "state.json";
/** The files a checkpoint may hold. */
const CHECKPOINT_FILES: readonly CheckpointFile[] = [
  "model.safetensors",
  "optimizer.safetensors",
  "average.safetensors",
  "state.json",
];

/** What `checkpoint.json` holds: the committed checkpoint. */
export interface CheckpointManifest {
  /** Number of the commit, counting from 1; its files are in `checkpoints/<generation>/`. */
  generation: number;
  /** The training step of the checkpoint. */
  step: number;
  /** The checkpoint's files and their sizes in bytes. */
  files: Partial<Record<CheckpointFile, number>>;
}

/**
 * Reads a run's commit record, `checkpoint.json`, and checks its fields.
 *
 * @example Usage
 * ```ts
 * import { checkpointFilePath, decodeCheckpointManifest, samplingWeightsFile } from "./state_dict.ts";
 * const manifest = decodeCheckpointManifest(
 *   '{"generation": 4, "step": 30, "files": {"model.safetensors": 800, "state.json": 90}}',
 *   "run/checkpoint.json",
 * );
 * console.log(checkpointFilePath(manifest, samplingWeightsFile(manifest))); // "checkpoints/4/model.safetensors"
 * ```
 * @param text The file's text or bytes.
 * @param source The file, for messages.
 * @returns The record.
 * @throws {SyntaxError} If the text is not JSON.
 * @throws {TypeError} If a field is missing or wrong.
 */
export function decodeCheckpointManifest(text: string | Uint8Array, source: string): CheckpointManifest {
  const record = parseJson(text, "checkpoint record", source);
  const fail = (problem: string): never => {
    throw new TypeError(`Cannot read checkpoint record "${source}": ${problem}`);
  };
  if (!isObject(record)) return fail(`it holds ${JSON.stringify(record)}, expected an object`);
  if (!Number.isSafeInteger(record.generation) || (record.generation as number) < 1) {
    fail(`"generation" is ${JSON.stringify(record.generation) ?? "missing"}, expected a positive integer`);
  }
  if (!Number.isSafeInteger(record.step) || (record.step as number) < 0) {
    fail(`"step" is ${JSON.stringify(record.step) ?? "missing"}, expected a non-negative integer`);
  }
  const files = record.files;
  if (!isObject(files) || !("model.safetensors" in files) || !("state.json" in files)) {
    return fail(`"files" must list model.safetensors and state.json`);
  }
  for (const [name, size] of Object.entries(files)) {
    if (!CHECKPOINT_FILES.includes(name as CheckpointFile) || !Number.isSafeInteger(size)) {
      fail(`"files" lists ${JSON.stringify(name)} of ${JSON.stringify(size)} bytes`);
    }
  }
  return record as unknown as CheckpointManifest;
}

/**
 * Where a file of the committed checkpoint lies, relative to the run directory (a path, or the tail of a
 * URL).
 *
 * @example Usage
 * ```ts
 * import { checkpointFilePath } from "./state_dict.ts";
 * const manifest = { generation: 2, step: 10, files: { "model.safetensors": 8, "state.json": 9 } };
 * console.log(checkpointFilePath(manifest, "state.json")); // "checkpoints/2/state.json"
 * ```
 * @param manifest The commit record.
 * @param file The file.
 * @returns `checkpoints/<generation>/<file>`.
 */
export function checkpointFilePath(manifest: CheckpointManifest, file: CheckpointFile): string {
  return `${CHECKPOINTS_FOLDER}/${manifest.generation}/${file}`;
}

/**
 * The weights file that sampling uses: the moving average of the weights when the run keeps one, else the
 * weights.
 *
 * @example Usage
 * ```ts
 * import { samplingWeightsFile } from "./state_dict.ts";
 * const manifest = { generation: 2, step: 10, files: { "model.safetensors": 8, "state.json": 9 } };
 * console.log(samplingWeightsFile(manifest)); // "model.safetensors"
 * ```
 * @param manifest The commit record.
 * @returns `average.safetensors` or `model.safetensors`.
 */
export function samplingWeightsFile(
  manifest: CheckpointManifest,
): "average.safetensors" | "model.safetensors" {
  return manifest.files["average.safetensors"] === undefined ? "model.safetensors" : "average.safetensors";
}

/** Rotary frequencies of one attention layer, stored by the seed as a (non-trained) parameter. */
function rotaryFrequencies(config: ModelConfig): Float32Array<ArrayBuffer> {
  const dim = Math.min(config.rotaryDim, config.modelDim / config.heads);
  return Float32Array.from({ length: dim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / dim));
}

/**
 * The model's weights (or their moving average) as host tensors keyed by the seed's parameter names, with
 * the rotary frequencies the seed also stores.
 *
 * @example Usage
 * ```ts
 * import { Diffusion, Engine } from "@difflm/core";
 * const model = Diffusion.create(await Engine.create(), { vocabSize: 50, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2 });
 * import { encodeSafetensors } from "./safetensors.ts";
 * import { modelStateDict } from "./state_dict.ts";
 * const weights = await modelStateDict(model);
 * console.log(weights.get("estimator.encoder_layers.0.attention.w_q.weight")?.shape); // [ 16, 16 ]
 * const bytes = encodeSafetensors(weights); // model.safetensors
 * ```
 * @param model The model.
 * @param arena `"params"` for the weights, `"average"` for their moving average.
 * @returns Tensors in declaration order.
 */
export async function modelStateDict(
  model: Diffusion,
  arena: "params" | "average" = "params",
): Promise<Map<string, HostTensor>> {
  const values = await model.store.read(arena);
  const out = new Map<string, HostTensor>();
  for (const [name, data] of values) {
    out.set(name, { shape: [...model.store.shapeOf(name)], data });
    const layer = /^(estimator\.encoder_layers\.\d+\.attention)\.w_o\.bias$/.exec(name);
    if (layer) {
      const freqs = rotaryFrequencies(model.config);
      out.set(`${layer[1]}.rotary_emb.freqs`, { shape: [freqs.length], data: freqs });
    }
  }
  return out;
}

/** Prefixes of the AdamW moments in `optimizer.safetensors`, by arena (PyTorch's state names). */
const MOMENT_PREFIXES = [["m", "exp_avg."], ["v", "exp_avg_sq."]] as const;

/**
 * The AdamW moments as host tensors named `exp_avg.<name>` and `exp_avg_sq.<name>`.
 *
 * @example Usage
 * ```ts
 * import { Diffusion, Engine } from "@difflm/core";
 * const model = Diffusion.create(await Engine.create(), { vocabSize: 50, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2 });
 * import { encodeSafetensors } from "./safetensors.ts";
 * import { momentsStateDict } from "./state_dict.ts";
 * const bytes = encodeSafetensors(await momentsStateDict(model)); // optimizer.safetensors: exp_avg.*, exp_avg_sq.*
 * ```
 * @param model The model.
 * @returns Tensors, first moments then second moments.
 */
export async function momentsStateDict(model: Diffusion): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const [arena, prefix] of MOMENT_PREFIXES) {
    for (const [name, data] of await model.store.read(arena)) {
      out.set(prefix + name, { shape: [...model.store.shapeOf(name)], data });
    }
  }
  return out;
}

/** Writes the tensors named `prefix + <parameter>` into an arena, checking each is there with its shape. */
function writeArena(
  model: Diffusion,
  tensors: ReadonlyMap<string, HostTensor>,
  target: { arena: ArenaName; prefix: string; source: string },
): void {
  const values = new Map<string, Float32Array>();
  for (const name of model.store.names) {
    const key = target.prefix + name;
    const t = tensors.get(key);
    if (!t) throw new TypeError(`Cannot load ${target.source}: "${key}" is missing`);
    const expected = model.store.shapeOf(name);
    if (t.shape.join() !== expected.join()) {
      throw new TypeError(
        `Cannot load ${target.source}: "${key}" has shape [${t.shape}], expected [${expected}]`,
      );
    }
    values.set(name, t.data);
  }
  model.store.write(values, target.arena, target.source);
}

/**
 * Loads weights by the seed's names into the model (extra names such as the rotary frequencies are
 * ignored; a missing or mis-shaped parameter is an error naming the file).
 *
 * @example Usage
 * ```ts
 * import { Diffusion, Engine } from "@difflm/core";
 * const model = Diffusion.create(await Engine.create(), { vocabSize: 50, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2 });
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * import { loadStateDict, modelStateDict } from "./state_dict.ts";
 * const bytes = encodeSafetensors(await modelStateDict(model));
 * const copy = Diffusion.create(model.engine, model.config, { seed: 1 });
 * loadStateDict(copy, decodeSafetensors(bytes, "model.safetensors").tensors, "model.safetensors");
 * ```
 * @param model The model.
 * @param tensors Weights by name.
 * @param source The file, for messages.
 * @param arena Where they go: the weights (default) or their moving average.
 * @throws {TypeError} If a parameter is missing or has another shape.
 */
export function loadStateDict(
  model: Diffusion,
  tensors: ReadonlyMap<string, HostTensor>,
  source: string,
  arena: "params" | "average" = "params",
): void {
  writeArena(model, tensors, { arena, prefix: "", source });
}

/**
 * Loads the AdamW moments saved by {@linkcode momentsStateDict} into the model's arenas.
 *
 * @example Usage
 * ```ts
 * import { Diffusion, Engine } from "@difflm/core";
 * const model = Diffusion.create(await Engine.create(), { vocabSize: 50, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2 });
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * import { loadMoments, momentsStateDict } from "./state_dict.ts";
 * const bytes = encodeSafetensors(await momentsStateDict(model));
 * loadMoments(model, decodeSafetensors(bytes, "optimizer.safetensors").tensors, "optimizer.safetensors");
 * ```
 * @param model The model.
 * @param moments `exp_avg.<name>` and `exp_avg_sq.<name>` tensors.
 * @param source The file, for messages.
 * @throws {TypeError} If a moment is missing or has another shape.
 */
export function loadMoments(
  model: Diffusion,
  moments: ReadonlyMap<string, HostTensor>,
  source: string,
): void {
  for (const [arena, prefix] of MOMENT_PREFIXES) writeArena(model, moments, { arena, prefix, source });
}

/**
 * Builds a model for sampling from its shape and weights by the seed's names.
 *
 * @example Usage
 * ```ts
 * import { Diffusion, Engine } from "@difflm/core";
 * const model = Diffusion.create(await Engine.create(), { vocabSize: 50, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2 });
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * import { modelFromStateDict, modelStateDict } from "./state_dict.ts";
 * const bytes = encodeSafetensors(await modelStateDict(model));
 * const { tensors } = decodeSafetensors(bytes, "model.safetensors");
 * const copy = modelFromStateDict(model.engine, model.config, tensors, "model.safetensors");
 * console.log(copy.store.count === model.store.count); // true
 * ```
 * @param engine The engine to allocate the model on.
 * @param config The model's shape.
 * @param tensors The weights by name.
 * @param source The weights' file, for messages.
 * @returns The model with the weights loaded.
 * @throws {TypeError} If a weight is missing or of another shape.
 */
export function modelFromStateDict(
  engine: Engine,
  config: ModelConfig,
  tensors: ReadonlyMap<string, HostTensor>,
  source: string,
): Diffusion {
  const model = new Diffusion(engine, config);
  model.store.allocate(0);
  loadStateDict(model, tensors, source);
  return model;
}

/**
 * Builds a model for sampling from a run's `config.json` and a weights file (`model.safetensors`, or
 * `average.safetensors` for the moving average), given as bytes: how a browser loads a run fetched by URL.
 *
 * @example Usage
 * ```ts
 * import { Engine, modelFromBytes, TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run, checkpointed at step 0
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * // In a web page these bytes come from fetch(); here from the run's files.
 * const config = await Deno.readFile(`${dir}/config.json`);
 * const weights = await Deno.readFile(`${dir}/checkpoints/1/model.safetensors`);
 * const loaded = modelFromBytes(await Engine.create(), { config, weights });
 * console.log(loaded.config.modelDim); // 32
 * ```
 * @param engine The engine to allocate the model on.
 * @param files `config.json` (bytes, text or an already decoded config) and the weights' bytes.
 * @param sources The files' names, for messages.
 * @returns The model with the weights loaded.
 * @throws {SyntaxError} If a file cannot be parsed.
 * @throws {TypeError} If the config is incomplete or a weight is missing or of another shape.
 */
export function modelFromBytes(
  engine: Engine,
  files: { config: string | Uint8Array | RunConfig; weights: Uint8Array | ArrayBuffer },
  sources: { config?: string; weights?: string } = {},
): Diffusion {
  const configSource = sources.config ?? "config.json";
  const weightsSource = sources.weights ?? "model.safetensors";
  const config = typeof files.config === "string" || files.config instanceof Uint8Array
    ? decodeRunConfig(files.config, configSource)
    : files.config;
  const { tensors } = decodeSafetensors(files.weights, weightsSource);
  return modelFromStateDict(engine, config.model, tensors, weightsSource);
}
