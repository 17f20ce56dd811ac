/**
 * Sampling in a web page: opens a trained run from its files' bytes or from URLs (`config.json`,
 * `model.safetensors` and the tokenizer model) with only the byte-level pieces of difflm — the engine,
 * the model, the sampler, `Tokenizer.fromBytes` and `decodeSafetensors`. Nothing on this path needs the
 * file system, `node:` modules or the `Deno` namespace (the few `Deno.` references a bundle still holds
 * check `typeof Deno` first or sit in functions this path never calls; tests/browser/bundle_test.ts lists
 * them), so a bundle of this module (`deno bundle --platform browser`) runs in any browser with WebGPU.
 * The run's config and weights are decoded by state_dict.ts, the byte-level half of the checkpoint code.
 *
 * A browser grants a device the WebGPU minimum limits unless more are requested; {@linkcode requestGpu}
 * asks for the adapter's maximum, and {@linkcode checkSamplingLimits} compares what a sampling request
 * will bind with what the device granted before anything is dispatched.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run; a web page fetches one served over HTTP instead
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * const base = new URL(`file://${dir}/`); // in a page: new URL("./run/", location.href)
 * import { fetchRun, Sampler } from "@difflm/core/browser";
 * const { model: opened, tokenizer } = await fetchRun(base);
 * const sampler = new Sampler(opened, { tokenizer, steps: 10, length: 24 });
 * const { texts } = await sampler.generate({ template: "the _ _ fox sees a _ ." });
 * console.log(texts);
 * ```
 * @module
 */
import { DEFAULT_TRAIN, type TrainConfig } from "./diffusion/config.ts";
import { collateIds } from "./data/collate.ts";
import { Xoshiro128 } from "./data/xoshiro128.ts";
import { type StepMetrics, Trainer } from "./train/trainer.ts";
import { Diffusion } from "./diffusion/diffusion.ts";
import { Engine } from "./tensor/engine.ts";
import { Tokenizer } from "./tokenizer/tokenizer.ts";
import { decodeSafetensors } from "./train/safetensors.ts";
import { decodeRunConfig, loadStateDict, type RunConfig } from "./train/state_dict.ts";

export { GpuError, GpuUnavailableError } from "./errors.ts";
export { getGpu, type Gpu, requestGpu } from "./gpu/device.ts";
export { Engine } from "./tensor/engine.ts";
export { Diffusion } from "./diffusion/diffusion.ts";
export { type ModelConfig, modelConfig } from "./diffusion/config.ts";
export {
  type GenerateRequest,
  type GenerateResult,
  Sampler,
  type SamplerOptions,
  type SamplingMethod,
} from "./diffusion/sampler.ts";
export { Tokenizer } from "./tokenizer/tokenizer.ts";
export { decodeSafetensors, type HostTensor } from "./train/safetensors.ts";
export type { StepMetrics } from "./train/trainer.ts";
export { decodeRunConfig, type RunConfig } from "./train/state_dict.ts";

/** The bytes of a run's files, as fetched or read by the caller. */
export interface RunFiles {
  /** `config.json`: its bytes, its text or the parsed object. */
  config: Uint8Array | string | RunConfig;
  /** `model.safetensors`. */
  weights: Uint8Array;
  /** The SentencePiece model named by the config's `tokenizer.file`. */
  tokenizer: Uint8Array;
  /**
   * The weights' file name, for messages.
   * @default {"model.safetensors"}
   */
  weightsFile?: string;
}

/** A run opened for sampling. */
export interface OpenedRun {
  /** The model with the run's weights. */
  model: Diffusion;
  /** The run's tokenizer. */
  tokenizer: Tokenizer;
  /** The run's config. */
  config: RunConfig;
}

/**
 * Opens a run from its files' bytes: builds the model of the config on the engine and loads the weights
 * by the seed's parameter names.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run; a web page fetches one served over HTTP instead
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * const base = new URL(`file://${dir}/`); // in a page: new URL("./run/", location.href)
 * import { Engine, openRun } from "@difflm/core/browser";
 * const get = async (name: string) => new Uint8Array(await (await fetch(new URL(name, base))).arrayBuffer());
 * const run = openRun(await Engine.create(), {
 *   config: await get("config.json"),
 *   weights: await get("checkpoints/1/model.safetensors"), // the generation checkpoint.json names
 *   tokenizer: await get("tokenizer.model"),
 * });
 * console.log(run.model.config.vocabSize === run.tokenizer.vocabSize); // true
 * ```
 * @param engine The engine the model runs on.
 * @param files The config, weights and tokenizer bytes.
 * @param source Where the files came from, for messages (e.g. the run's URL).
 * @returns The model, tokenizer and config.
 * @throws {SyntaxError} If the config is not JSON.
 * @throws {TypeError} If the config is not a run config, a parameter is missing or mis-shaped, or the
 * tokenizer's vocabulary differs from the model's.
 * @throws {RangeError} If a parameter or the arena is over the device's limits.
 */
export function openRun(engine: Engine, files: RunFiles, source = "run"): OpenedRun {
  const config = typeof files.config === "string" || files.config instanceof Uint8Array
    ? decodeRunConfig(files.config, `${source}/config.json`)
    : files.config;
  const tokenizer = Tokenizer.fromBytes(files.tokenizer);
  const model = new Diffusion(engine, config.model);
  if (tokenizer.vocabSize !== model.config.vocabSize) {
    throw new TypeError(
      `Cannot open ${source}: the tokenizer has ${tokenizer.vocabSize} pieces, the model ${model.config.vocabSize}`,
    );
  }
  const weightsSource = `${source}/${files.weightsFile ?? "model.safetensors"}`;
  const { tensors } = decodeSafetensors(files.weights, weightsSource);
  checkSamplingLimits(model, { count: 1, length: 1 });
  model.store.allocate(0);
  try {
    loadStateDict(model, tensors, weightsSource);
  } catch (error) {
    model.store.dispose();
    throw error;
  }
  return { model, tokenizer, config };
}

/**
 * Fetches a run from a base URL (a folder served over HTTP) and opens it with {@linkcode openRun}: its
 * `config.json`, its tokenizer model, and its weights. A run directory names its committed checkpoint in
 * `checkpoint.json` (the weights are then `checkpoints/<generation>/average.safetensors` when the run keeps
 * a moving average, else `model.safetensors` there); a folder without one holds `model.safetensors` beside
 * `config.json`.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run; a web page fetches one served over HTTP instead
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * const base = new URL(`file://${dir}/`); // in a page: new URL("./run/", location.href)
 * import { fetchRun } from "@difflm/core/browser";
 * const { model: opened, tokenizer, weights } = await fetchRun(base); // or "https://example.org/runs/tiny/"
 * console.log(opened.store.count, tokenizer.vocabSize, weights); // …, 80, "file:///…/checkpoints/1/model.safetensors"
 * ```
 * @param base The run's folder URL (a trailing slash is added when missing).
 * @param options The engine (default: a new one on the shared GPU) and a `fetch` to use.
 * @returns The model, tokenizer and config, and the URL the weights came from.
 * @throws {Error} If a file cannot be fetched (the message names its URL and the HTTP status).
 * @throws {SyntaxError} If `config.json` or `checkpoint.json` is not JSON.
 * @throws {TypeError} If `checkpoint.json` is not a commit record, and as {@linkcode openRun}.
 */
export async function fetchRun(
  base: string | URL,
  options: { engine?: Engine; fetch?: typeof fetch } = {},
): Promise<OpenedRun & { weights: string }> {
  const get = options.fetch ?? fetch;
  const folder = new URL(String(base).endsWith("/") ? String(base) : `${base}/`, globalThis.location?.href);
  const request = async (name: string, optional = false) => {
    const url = new URL(name, folder);
    let response: Response;
    try {
      response = await get(url);
    } catch (error) {
      throw new Error(`Cannot fetch ${url}: ${(error as Error).message}`);
    }
    if (optional && response.status === 404) return null;
    if (!response.ok) throw new Error(`Cannot fetch ${url}: HTTP ${response.status} ${response.statusText}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  const bytes = async (name: string) => (await request(name))!;
  const [configBytes, manifestBytes] = await Promise.all([
    bytes("config.json"),
    request("checkpoint.json", true),
  ]);
  const config = decodeRunConfig(configBytes, new URL("config.json", folder).href);
  const weightsFile = manifestBytes
    ? committedWeights(manifestBytes, new URL("checkpoint.json", folder).href)
    : "model.safetensors";
  const [weights, tokenizer] = await Promise.all([bytes(weightsFile), bytes(config.tokenizer.file)]);
  const engine = options.engine ?? await Engine.create();
  const source = folder.href.replace(/\/$/, "");
  return {
    ...openRun(engine, { config, weights, tokenizer, weightsFile }, source),
    weights: new URL(weightsFile, folder).href,
  };
}

/** The weights file a commit record (`checkpoint.json`) names, relative to the run directory. */
function committedWeights(bytes: Uint8Array, source: string): string {
  let record: { generation?: unknown; files?: Record<string, unknown> } | null = null;
  try {
    record = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new SyntaxError(
      `Cannot read checkpoint record "${source}": invalid JSON (${(error as Error).message})`,
    );
  }
  const generation = record?.generation;
  if (!Number.isSafeInteger(generation) || !record?.files || typeof record.files !== "object") {
    throw new TypeError(`Cannot read checkpoint record "${source}": "generation" or "files" is missing`);
  }
  const file = "average.safetensors" in record.files ? "average.safetensors" : "model.safetensors";
  return `checkpoints/${generation}/${file}`;
}

/** What a sampling request allocates, for {@linkcode checkSamplingLimits}. */
export interface SamplingSize {
  /** Samples drawn at once (B). */
  count: number;
  /** Tokens per sample (L). */
  length: number;
  /**
   * Steps recorded per submission (their time conditioning is computed in one pass).
   * @default {10}
   */
  stepsPerSubmit?: number;
}

/**
 * Checks, before anything is dispatched, that the buffers a sampling request binds fit the limits the
 * model's device was granted: every parameter and the parameter arena, and the largest activations (the
 * logits B·L·V, the feed-forward rows B·L·4D, the time conditioning of a submission). A browser's device
 * may grant far less than Deno's (a phone's adapter, or a device requested without limits), and an
 * over-large binding would otherwise fail as a validation error in the middle of a step.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run; a web page fetches one served over HTTP instead
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * const base = new URL(`file://${dir}/`); // in a page: new URL("./run/", location.href)
 * import { checkSamplingLimits, fetchRun } from "@difflm/core/browser";
 * const { model: opened } = await fetchRun(base);
 * checkSamplingLimits(opened, { count: 4, length: 24 }); // throws if the device could not bind that much
 * ```
 * @param model The model (declared; it need not be allocated yet).
 * @param size Samples, length and steps per submission.
 * @throws {RangeError} If a buffer would exceed `maxStorageBufferBindingSize` or `maxBufferSize`; the
 * message names the buffer, its size and the limit.
 */
export function checkSamplingLimits(model: Diffusion, size: SamplingSize): void {
  const { count: B, length: L } = size;
  const { vocabSize: V, embeddingDim: E, modelDim: D, layers } = model.config;
  const submit = size.stepsPerSubmit ?? 10;
  const { maxStorageBufferBindingSize: binding, maxBufferSize: buffer } = model.engine.runtime.gpu.limits;
  const arena = model.store.count * 4;
  if (arena > buffer) {
    throw new RangeError(
      `Cannot load the model: its parameter arena of ${arena} bytes is over the device's maxBufferSize ${buffer}`,
    );
  }
  for (const name of model.store.names) {
    const need = model.store.shapeOf(name).reduce((a, b) => a * b, 1) * 4;
    if (need > binding) {
      throw new RangeError(
        `Cannot load the model: parameter "${name}" has ${need} bytes, over the device's ` +
          `maxStorageBufferBindingSize ${binding}`,
      );
    }
  }
  const activations: [string, number][] = [
    ["the logits (B·L·V)", B * L * V * 4],
    ["the feed-forward rows (B·L·4D)", B * L * 4 * D * 4],
    ["the estimator input (B·L·3E)", B * L * 3 * E * 4],
    ["the time conditioning of a submission", submit * B * layers * 4 * D * 4],
  ];
  for (const [what, need] of activations) {
    if (need > binding) {
      throw new RangeError(
        `Cannot sample ${B}×${L} tokens: ${what} needs ${need} bytes, over the device's ` +
          `maxStorageBufferBindingSize ${binding}`,
      );
    }
  }
}

/** Options of {@linkcode fineTune}. */
export interface FineTuneOptions {
  /** Optimiser steps. */
  steps: number;
  /**
   * Examples per step, drawn from the lines with replacement.
   * @default {4}
   */
  batch?: number;
  /**
   * Tokens per example (longer lines are cropped).
   * @default {the run's training crop}
   */
  crop?: number;
  /**
   * Learning rate, constant (no warm-up or decay).
   * @default {the run's training lr}
   */
  lr?: number;
  /**
   * Seed of the draws of lines, conditioning masks, diffusion times and noise.
   * @default {0}
   */
  seed?: number;
  /** Called after each step with its metrics (loss, mse, ce, accuracy, gradient norm). */
  onStep?: (metrics: StepMetrics) => void | Promise<void>;
}

/**
 * Trains the model a few steps on the lines of a text (one example per line), with the run's training
 * options (self-conditioning, unconditional share, AdamW settings) at a constant learning rate. The AdamW
 * moments start from zero, as the run's are not loaded for sampling. The same model, text, options and
 * seed give the same steps: the engine's noise counter is set from the seed.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run; a web page fetches one served over HTTP instead
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * const base = new URL(`file://${dir}/`); // in a page: new URL("./run/", location.href)
 * import { fetchRun, fineTune } from "@difflm/core/browser";
 * const run = await fetchRun(base);
 * const steps = await fineTune(run, "the red fox sees a dog .\nthe old cat sees two birds .", { steps: 5 });
 * console.log(steps.map((m) => m.loss));
 * ```
 * @param run The run opened with {@linkcode openRun} or {@linkcode fetchRun}.
 * @param text Training text, one example per line; blank lines are skipped.
 * @param options Steps, batch, crop, learning rate, seed and a per-step callback.
 * @returns The metrics of every step.
 * @throws {RangeError} If the text has no line, or steps, batch, crop or lr is out of range.
 */
export async function fineTune(
  run: OpenedRun,
  text: string,
  options: FineTuneOptions,
): Promise<StepMetrics[]> {
  const { model, tokenizer } = run;
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
  if (lines.length === 0) throw new RangeError("Cannot fine-tune on this text: it has no line to train on");
  const saved: TrainConfig = { ...DEFAULT_TRAIN, ...run.config.train };
  const { steps, batch = 4, crop = saved.crop, lr = saved.lr, seed = 0 } = options;
  for (const [name, value] of [["steps", steps], ["batch", batch], ["crop", crop]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`Cannot fine-tune with ${name} ${value}: it must be a positive integer`);
    }
  }
  if (!(lr > 0 && Number.isFinite(lr))) {
    throw new RangeError(`Cannot fine-tune with lr ${lr}: it must be positive`);
  }
  checkSamplingLimits(model, { count: batch, length: crop });
  const config: TrainConfig = {
    ...saved,
    batch,
    crop,
    lr,
    warmup: 0,
    decay: Infinity,
    accumulate: 1,
    ema: 0,
  };
  const examples = lines.map((line) => tokenizer.encode(line));
  const random = new Xoshiro128(seed);
  model.engine.seedCounter = seed;
  const trainer = new Trainer(model, config, { seed });
  const metrics: StepMetrics[] = [];
  try {
    for (let step = 0; step < steps; step++) {
      const picked = Array.from({ length: batch }, () => examples[random.int(0, examples.length - 1)]!);
      const hostBatch = collateIds(picked, random, {
        eosId: tokenizer.eosId,
        padId: tokenizer.padId,
        cropLength: crop,
        unconditional: config.unconditional,
      });
      const { metrics: pending } = await trainer.trainStep([hostBatch]);
      const done = await pending;
      metrics.push(done);
      await options.onStep?.(done);
    }
  } finally {
    trainer.dispose();
  }
  return metrics;
}
