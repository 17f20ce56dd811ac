/**
 * Checkpoints in a run directory: `model.safetensors` (the seed's parameter names and PyTorch shapes),
 * `optimizer.safetensors` (AdamW moments), `config.json`, `state.json`, `tokenizer.model`, `log.jsonl`
 * and `loss.svg`.
 *
 * A checkpoint is committed like a small journal: the new model, optimiser and state files are written
 * completely as `*.next`, then renamed over the old ones, state last. A crash before `state.json.next`
 * exists leaves the previous checkpoint intact; a crash during the renames is finished by the next
 * {@linkcode loadCheckpoint}. So a checkpoint is never lost or half-written.
 *
 * @module
 */
import { join } from "node:path";
import { type ModelConfig, modelConfig, type RunSettings, type TrainConfig } from "../diffusion/config.ts";
import { Diffusion } from "../diffusion/diffusion.ts";
import { Engine } from "../tensor/engine.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { pathExists as exists, readFileNamed, readJsonNamed, writeFileAtomic } from "./files.ts";
import { lossCurvesSvg, type LossPoint } from "./loss_plot.ts";
import { decodeSafetensors, encodeSafetensors, type HostTensor } from "./safetensors.ts";

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
}

const FILES = ["model.safetensors", "optimizer.safetensors", "state.json"] as const;

/** Prefix of the moving average of the weights in `optimizer.safetensors` (training state, like the moments). */
const AVERAGE_PREFIX = "ema.";

/** The moving average of the weights from the optimiser file's tensors, by parameter name, if saved. */
function savedAverage(
  model: Diffusion,
  tensors: ReadonlyMap<string, HostTensor>,
  source: string,
): Map<string, Float32Array> | null {
  if (!tensors.has(AVERAGE_PREFIX + model.store.names[0])) return null;
  const values = new Map<string, Float32Array>();
  for (const name of model.store.names) {
    const t = tensors.get(AVERAGE_PREFIX + name);
    if (!t) throw new TypeError(`Cannot load ${source}: "${AVERAGE_PREFIX + name}" is missing`);
    values.set(name, t.data);
  }
  return values;
}

/** Rotary frequencies of one attention layer, stored by the seed as a (non-trained) parameter. */
function rotaryFrequencies(config: ModelConfig): Float32Array<ArrayBuffer> {
  const dim = Math.min(config.rotaryDim, config.modelDim / config.heads);
  return Float32Array.from({ length: dim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / dim));
}

/**
 * The model's weights as host tensors keyed by the seed's parameter names (with the rotary
 * frequencies the seed also stores).
 *
 * @param model The model.
 * @returns Tensors in declaration order.
 */
export async function modelStateDict(model: Diffusion): Promise<Map<string, HostTensor>> {
  const values = await model.store.read("params");
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

/**
 * Loads weights by the seed's names into the model (extra names such as the rotary frequencies are
 * ignored; a missing or mis-shaped parameter is an error naming the file).
 *
 * @param model The model.
 * @param tensors Weights by name.
 * @param source The file, for messages.
 */
export function loadStateDict(
  model: Diffusion,
  tensors: ReadonlyMap<string, HostTensor>,
  source: string,
): void {
  const values = new Map<string, Float32Array>();
  for (const name of model.store.names) {
    const t = tensors.get(name);
    if (!t) throw new TypeError(`Cannot load ${source}: parameter "${name}" is missing`);
    const expected = model.store.shapeOf(name);
    if (t.shape.join() !== expected.join()) {
      throw new TypeError(
        `Cannot load ${source}: parameter "${name}" has shape [${t.shape}], expected [${expected}]`,
      );
    }
    values.set(name, t.data);
  }
  model.store.write(values, "params", source);
}

/** Writes `<path>.next` completely (through a temporary name and a rename), so it never exists half-written. */
async function writeNext(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const temporary = `${path}.next.tmp`;
  const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(temporary, `${path}.next`);
}

async function finishCommit(dir: string): Promise<void> {
  for (const name of FILES) {
    const next = join(dir, `${name}.next`);
    if (await exists(next)) await Deno.rename(next, join(dir, name));
  }
}

/**
 * Writes a checkpoint of the model, the optimiser moments and the training state into `dir`, and
 * redraws `loss.svg` from `log.jsonl`.
 *
 * @example Usage
 * ```ts ignore
 * import { saveCheckpoint } from "@difflm/core";
 * await saveCheckpoint("runs/a", { model, config, state });
 * ```
 * @param dir The run directory (created if missing).
 * @param checkpoint The model, the run's config and state, and the tokenizer model's bytes.
 */
export async function saveCheckpoint(
  dir: string,
  checkpoint: { model: Diffusion; config: RunConfig; state: RunState; tokenizer?: Uint8Array },
): Promise<void> {
  const { model, config, state } = checkpoint;
  await Deno.mkdir(dir, { recursive: true });
  const weights = await modelStateDict(model);
  const [m, v] = await Promise.all([model.store.read("m"), model.store.read("v")]);
  const average = model.store.arenas.average ? await model.store.read("average") : null;
  const moments = new Map<string, HostTensor>();
  for (const name of model.store.names) {
    const shape = [...model.store.shapeOf(name)];
    moments.set(`exp_avg.${name}`, { shape, data: m.get(name)! });
    moments.set(`exp_avg_sq.${name}`, { shape, data: v.get(name)! });
    if (average) moments.set(`${AVERAGE_PREFIX}${name}`, { shape, data: average.get(name)! });
  }
  const meta = { format: "pt", step: String(state.step) };
  await writeFileAtomic(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  if (checkpoint.tokenizer && !(await exists(join(dir, config.tokenizer.file)))) {
    await writeFileAtomic(join(dir, config.tokenizer.file), checkpoint.tokenizer);
  }
  await writeNext(join(dir, "model.safetensors"), encodeSafetensors(weights, meta));
  await writeNext(join(dir, "optimizer.safetensors"), encodeSafetensors(moments, meta));
  await writeNext(join(dir, "state.json"), JSON.stringify(state, null, 2) + "\n");
  await finishCommit(dir);
  const log = await readLog(dir);
  await writeFileAtomic(join(dir, "loss.svg"), lossCurvesSvg(log, `difflm — ${dir}`));
}

/**
 * Reads a run directory's checkpoint (finishing an interrupted commit first).
 *
 * @param dir The run directory.
 * @returns The config, the state, the weights and the AdamW moments by parameter name.
 */
export async function loadCheckpoint(dir: string): Promise<{
  config: RunConfig;
  state: RunState | null;
  weights: Map<string, HostTensor> | null;
  moments: Map<string, HostTensor> | null;
}> {
  const configPath = join(dir, "config.json");
  if (!(await exists(configPath))) throw new Error(`Cannot resume from "${dir}": it has no config.json`);
  if (await exists(join(dir, "state.json.next"))) await finishCommit(dir);
  else {
    for (const name of FILES) {
      for (const stale of [join(dir, `${name}.next`), join(dir, `${name}.next.tmp`)]) {
        if (await exists(stale)) await Deno.remove(stale);
      }
    }
  }
  const config = await readJsonNamed(configPath, "run config") as RunConfig;
  if (!config || typeof config !== "object" || !config.model || !config.train || !config.tokenizer) {
    throw new TypeError(`Cannot read run config "${configPath}": model, train or tokenizer is missing`);
  }
  const statePath = join(dir, "state.json");
  if (!(await exists(statePath))) return { config, state: null, weights: null, moments: null };
  const state = await readJsonNamed(statePath, "training state") as RunState;
  const modelPath = join(dir, "model.safetensors");
  const model = decodeSafetensors(await readFileNamed(modelPath, "checkpoint"), modelPath);
  const optimizerPath = join(dir, "optimizer.safetensors");
  const optimizer = decodeSafetensors(await readFileNamed(optimizerPath, "checkpoint"), optimizerPath);
  for (const [path, file] of [[modelPath, model], [optimizerPath, optimizer]] as const) {
    if (file.metadata.step !== String(state.step)) {
      throw new Error(
        `Cannot resume from "${dir}": ${path} is from step ${file.metadata.step}, state.json from ${state.step}`,
      );
    }
  }
  return { config, state, weights: model.tensors, moments: optimizer.tensors };
}

/**
 * Loads AdamW moments saved by {@linkcode saveCheckpoint} into the model's arenas, and the moving
 * average of the weights when the store keeps one (a copy of the weights if the file has none).
 *
 * @param model The model.
 * @param moments `exp_avg.<name>` and `exp_avg_sq.<name>` tensors.
 * @param source The file, for messages.
 */
export function loadMoments(
  model: Diffusion,
  moments: ReadonlyMap<string, HostTensor>,
  source: string,
): void {
  for (const [arena, prefix] of [["m", "exp_avg."], ["v", "exp_avg_sq."]] as const) {
    const values = new Map<string, Float32Array>();
    for (const name of model.store.names) {
      const t = moments.get(prefix + name);
      if (!t) throw new TypeError(`Cannot load ${source}: "${prefix + name}" is missing`);
      values.set(name, t.data);
    }
    model.store.write(values, arena, source);
  }
  if (model.store.arenas.average) {
    const average = savedAverage(model, moments, source);
    if (average) model.store.write(average, "average", source);
    else model.engine.runtime.copy(model.store.arenas.params, model.store.arenas.average);
  }
}

/**
 * Appends one metrics record to `log.jsonl`.
 *
 * @param dir The run directory.
 * @param record A JSON object with at least `step`.
 */
export async function appendLog(dir: string, record: Record<string, unknown>): Promise<void> {
  await Deno.writeTextFile(join(dir, "log.jsonl"), JSON.stringify(record) + "\n", {
    append: true,
    create: true,
  });
}

/**
 * Reads `log.jsonl` (skipping lines that do not parse, such as a line cut by a crash).
 *
 * @param dir The run directory.
 * @returns The logged points.
 */
export async function readLog(dir: string): Promise<(LossPoint & Record<string, unknown>)[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(join(dir, "log.jsonl"));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const out: (LossPoint & Record<string, unknown>)[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // a partial last line from an interrupted run
    }
  }
  return out;
}

/**
 * Keeps only the log records up to `step` (used on resume, so the log matches the checkpoint).
 *
 * @param dir The run directory.
 * @param step The checkpoint's step.
 */
export async function truncateLog(dir: string, step: number): Promise<void> {
  const kept = (await readLog(dir)).filter((r) => r.step <= step);
  await writeFileAtomic(join(dir, "log.jsonl"), kept.map((r) => JSON.stringify(r) + "\n").join(""));
}

/**
 * Opens a trained run for sampling or evaluation: the model with its latest weights (the moving
 * average of the weights when the run keeps one, `--ema`) and the run's tokenizer.
 *
 * @example Usage
 * ```ts ignore
 * import { loadRun, Sampler } from "@difflm/core";
 * const { model, tokenizer } = await loadRun("runs/a");
 * const { texts } = await new Sampler(model, { tokenizer }).generate({ count: 4 });
 * ```
 * @param dir The run directory.
 * @param options The engine to use (default: a new one on the shared GPU).
 * @returns The model, tokenizer, config and state, and whether the weights are the moving average.
 */
export async function loadRun(
  dir: string,
  options: { engine?: Engine } = {},
): Promise<
  { model: Diffusion; tokenizer: Tokenizer; config: RunConfig; state: RunState; averaged: boolean }
> {
  const checkpoint = await loadCheckpoint(dir);
  if (!checkpoint.state || !checkpoint.weights) {
    throw new Error(`Cannot load run "${dir}": it has no checkpoint yet (state.json is missing)`);
  }
  const tokenizerPath = join(dir, checkpoint.config.tokenizer.file);
  const tokenizer = Tokenizer.fromBytes(await readFileNamed(tokenizerPath, "tokenizer model"));
  const engine = options.engine ?? await Engine.create();
  const model = new Diffusion(engine, modelConfig(checkpoint.config.model));
  model.store.allocate(0);
  const average = checkpoint.moments &&
    savedAverage(model, checkpoint.moments, join(dir, "optimizer.safetensors"));
  if (average) model.store.write(average, "params", join(dir, "optimizer.safetensors"));
  else loadStateDict(model, checkpoint.weights, join(dir, "model.safetensors"));
  return { model, tokenizer, config: checkpoint.config, state: checkpoint.state, averaged: !!average };
}
