/**
 * Checkpoints in a run directory, and who may change them.
 *
 * ```
 * runs/a/config.json                    the run's config (rewritten atomically)
 * runs/a/tokenizer.model                the SentencePiece model
 * runs/a/checkpoint.json                the commit record: generation, step and each file's size
 * runs/a/checkpoints/<generation>/      model.safetensors  the weights (the seed's names and shapes)
 *                                       optimizer.safetensors  AdamW moments (training only)
 *                                       average.safetensors    moving average of the weights (--ema)
 *                                       state.json         where training stands
 * runs/a/log.jsonl, loss.svg, train.lock
 * ```
 *
 * Committing: a checkpoint's files are written completely into a new generation's directory, then
 * `checkpoint.json` naming that generation replaces the old one by an atomic rename. That rename is the
 * commit: before it, readers see the previous checkpoint, after it the new one, never a mixture. The
 * previous generation is kept so that a reader that opened it a moment ago can finish; older ones are
 * removed.
 *
 * Readers ({@linkcode loadRun}, {@linkcode loadCheckpoint}) never write: they need only read permission and
 * read only the files they use (sampling: config, tokenizer and one weights file). A reader whose
 * generation is removed under it starts again from the new `checkpoint.json`. Only the trainer, holding the
 * run's lock ({@linkcode CheckpointWriter.open}), discards what an interrupted commit left behind.
 *
 * @module
 */
import { join } from "node:path";
import type { Diffusion } from "../diffusion/diffusion.ts";
import { Engine } from "../tensor/engine.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { pathExists, readFileNamed, writeFileAtomic, writeFileSynced } from "./files.ts";
import { lossCurvesSvg } from "./loss_plot.ts";
import { readLog } from "./run_log.ts";
import { RunLock } from "./run_lock.ts";
import { decodeSafetensors, encodeSafetensors, type HostTensor } from "./safetensors.ts";
import {
  type CheckpointFile,
  type CheckpointManifest,
  CHECKPOINTS_FOLDER,
  decodeCheckpointManifest,
  decodeRunConfig,
  decodeRunState,
  loadMoments,
  loadStateDict,
  MANIFEST_FILE,
  modelFromStateDict,
  modelStateDict,
  momentsStateDict,
  type RunConfig,
  type RunState,
  samplingWeightsFile,
} from "./state_dict.ts";
import { assertCurrentLayout, convertOlderLayout, OLDER_LAYOUT } from "./older_layout.ts";

export { appendLog, readLog, truncateLog } from "./run_log.ts";

/** How many times a reader starts again when the generation it read was removed under it. */
const READ_ATTEMPTS = 20;

/** A committed checkpoint as read back for training. */
export interface Checkpoint {
  /** The run's config. */
  config: RunConfig;
  /** Where training stands. */
  state: RunState;
  /** The commit record. */
  manifest: CheckpointManifest;
  /** The weights by the seed's names. */
  weights: Map<string, HostTensor>;
  /** AdamW moments, `exp_avg.<name>` and `exp_avg_sq.<name>`. */
  moments: Map<string, HostTensor>;
  /** The moving average of the weights, or null when the run keeps none. */
  average: Map<string, HostTensor> | null;
}

/**
 * Reads a run's commit record.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run, checkpointed at step 0
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * import { readCheckpointManifest } from "./checkpoint.ts";
 * console.log((await readCheckpointManifest(dir))?.step); // 0
 * ```
 * @param dir The run directory.
 * @returns The committed checkpoint's generation, step and files, or null when none was committed.
 * @throws {SyntaxError} If the record is not JSON.
 * @throws {TypeError} If the record lacks a field.
 */
export async function readCheckpointManifest(dir: string): Promise<CheckpointManifest | null> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return decodeCheckpointManifest(text, path);
}

function generationDir(dir: string, generation: number): string {
  return join(dir, CHECKPOINTS_FOLDER, String(generation));
}

/** The generation directory is gone: removed by the trainer once two newer ones were committed. */
class GenerationRemoved extends Error {}

/** Reads one of the committed generation's files, checking its size against the record. */
async function readCommitted(dir: string, manifest: CheckpointManifest, name: CheckpointFile) {
  const path = join(generationDir(dir, manifest.generation), name);
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new GenerationRemoved(path);
    throw e;
  }
  if (bytes.length !== manifest.files[name]) {
    throw new Error(
      `Cannot read checkpoint "${path}": it has ${bytes.length} bytes, ${MANIFEST_FILE} committed ${
        manifest.files[name]
      } (the file was changed after its commit)`,
    );
  }
  return { bytes, path };
}

/** Decodes a committed safetensors file, checking that it is of the committed step. */
function decodeCommitted(file: { bytes: Uint8Array; path: string }, step: number): Map<string, HostTensor> {
  const { tensors, metadata } = decodeSafetensors(file.bytes, file.path);
  if (metadata.step !== String(step)) {
    throw new Error(
      `Cannot read checkpoint "${file.path}": it is from step ${metadata.step}, ${MANIFEST_FILE} from ${step}`,
    );
  }
  return tensors;
}

/**
 * Runs `read` on the committed generation, starting again from the new record when the generation is
 * removed under it (the trainer committed twice meanwhile).
 */
async function withCommitted<T>(
  dir: string,
  read: (manifest: CheckpointManifest) => Promise<T>,
): Promise<T | null> {
  for (let attempt = 1;; attempt++) {
    const manifest = await readCheckpointManifest(dir);
    if (!manifest) return null;
    try {
      return await read(manifest);
    } catch (e) {
      if (!(e instanceof GenerationRemoved)) throw e;
      const now = await readCheckpointManifest(dir);
      if (now?.generation === manifest.generation || attempt === READ_ATTEMPTS) {
        throw new Error(
          `Cannot read checkpoint "${e.message}": the file is missing, though ${MANIFEST_FILE} committed it`,
        );
      }
    }
  }
}

async function readConfig(dir: string): Promise<RunConfig> {
  const path = join(dir, "config.json");
  if (!(await pathExists(path))) throw new Error(`Cannot open run "${dir}": it has no config.json`);
  return decodeRunConfig(await readFileNamed(path, "run config"), path);
}

/** The files of a complete run besides the log, the plot, the lock and the checkpoints' folder. */
export const RUN_FILES = ["config.json", "tokenizer.model", MANIFEST_FILE] as const;

/**
 * Which files of a run a directory holds, and which it lacks. A directory holding none holds no run; one
 * holding some but not all holds part of one. A checkpoint in the layout of an older difflm (`state.json`
 * beside `config.json`, which {@linkcode CheckpointWriter.open} converts) stands for `checkpoint.json`.
 *
 * @example Usage
 * ```ts
 * import { runFiles } from "./checkpoint.ts";
 * const { present, missing } = await runFiles(await Deno.makeTempDir());
 * console.log(present, missing); // [] [ "config.json", "tokenizer.model", "checkpoint.json" ]
 * ```
 * @param dir The directory (it need not exist).
 * @returns The run files present and missing, by name.
 */
export async function runFiles(dir: string): Promise<{ present: string[]; missing: string[] }> {
  const present: string[] = [], missing: string[] = [];
  for (const name of RUN_FILES) {
    const found = await pathExists(join(dir, name)) ||
      (name === MANIFEST_FILE && await pathExists(join(dir, "state.json")));
    (found ? present : missing).push(name);
  }
  return { present, missing };
}

/**
 * Reads a run's config and its committed checkpoint with everything training needs. Writes nothing.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run, checkpointed at step 0
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * import { loadCheckpoint } from "@difflm/core";
 * const { config, checkpoint } = await loadCheckpoint(dir);
 * console.log(config.model.modelDim, checkpoint?.state.step); // 32 0
 * ```
 * @param dir The run directory.
 * @returns The config, and the checkpoint or null when none was committed yet.
 * @throws {Error} If the directory has no config.json, or a committed file is missing or damaged.
 */
export async function loadCheckpoint(
  dir: string,
): Promise<{ config: RunConfig; checkpoint: Checkpoint | null }> {
  const config = await readConfig(dir);
  const checkpoint = await withCommitted(dir, async (manifest): Promise<Checkpoint> => {
    const [model, optimizer, average, state] = await Promise.all([
      readCommitted(dir, manifest, "model.safetensors"),
      readCommitted(dir, manifest, "optimizer.safetensors"),
      manifest.files["average.safetensors"] === undefined
        ? null
        : readCommitted(dir, manifest, "average.safetensors"),
      readCommitted(dir, manifest, "state.json"),
    ]);
    const decoded = decodeRunState(state.bytes, state.path);
    if (decoded.step !== manifest.step) {
      throw new Error(
        `Cannot read checkpoint "${state.path}": it is from step ${decoded.step}, ${MANIFEST_FILE} from ${manifest.step}`,
      );
    }
    return {
      config,
      state: decoded,
      manifest,
      weights: decodeCommitted(model, manifest.step),
      moments: decodeCommitted(optimizer, manifest.step),
      average: average && decodeCommitted(average, manifest.step),
    };
  });
  if (!checkpoint) await assertCurrentLayout(dir);
  return { config, checkpoint };
}

/**
 * Puts a checkpoint's weights, AdamW moments and moving average into a model, to train on from it (the
 * average starts as a copy of the weights when the run kept none).
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run, checkpointed at step 0
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * import { Diffusion, Engine, loadCheckpoint, restoreCheckpoint } from "@difflm/core";
 * const { config, checkpoint } = await loadCheckpoint(dir);
 * const restored = Diffusion.create(await Engine.create(), config.model);
 * if (checkpoint) restoreCheckpoint(restored, checkpoint, dir); // weights and AdamW moments
 * ```
 * @param model The model, allocated.
 * @param checkpoint What {@linkcode loadCheckpoint} read.
 * @param dir The run directory, for messages.
 * @throws {TypeError} If a parameter is missing or has another shape.
 */
export function restoreCheckpoint(model: Diffusion, checkpoint: Checkpoint, dir: string): void {
  const files = generationDir(dir, checkpoint.manifest.generation);
  loadStateDict(model, checkpoint.weights, join(files, "model.safetensors"));
  loadMoments(model, checkpoint.moments, join(files, "optimizer.safetensors"));
  if (!model.store.arenas.average) return;
  if (checkpoint.average) {
    loadStateDict(model, checkpoint.average, join(files, "average.safetensors"), "average");
  } else {
    model.engine.runtime.copy(model.store.arenas.params, model.store.arenas.average);
  }
}

/** Names of the generation directories under `checkpoints/`, as numbers (other entries are not ours). */
async function listGenerations(dir: string): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const entry of Deno.readDir(join(dir, CHECKPOINTS_FOLDER))) {
      if (entry.isDirectory && /^[1-9]\d*$/.test(entry.name)) out.push(Number(entry.name));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** Removes generation directories for which `remove` says so; a failure is left for the next commit. */
async function removeGenerations(dir: string, remove: (generation: number) => boolean): Promise<void> {
  for (const generation of await listGenerations(dir)) {
    if (!remove(generation)) continue;
    await Deno.remove(generationDir(dir, generation), { recursive: true }).catch(() => {});
  }
}

/** Deletes what `dir` holds of a run (in either layout), leaving the lock and files of other kinds. */
async function removeRun(dir: string): Promise<void> {
  await Deno.remove(join(dir, CHECKPOINTS_FOLDER), { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  for (const name of [...RUN_FILES, ...OLDER_LAYOUT, "log.jsonl", "loss.svg"]) {
    for (const suffix of ["", ".tmp", ".next", ".next.tmp"]) {
      await Deno.remove(join(dir, name + suffix)).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    }
  }
}

function isDiskFull(e: unknown): boolean {
  return (e as { code?: string })?.code === "ENOSPC" || /os error 28\)/.test(String((e as Error)?.message));
}

/**
 * The one writer of a run directory's checkpoints: holds the run's lock while open, and on opening
 * discards what an interrupted commit left behind.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run, checkpointed at step 0
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * import { CheckpointWriter, Diffusion, Engine, loadCheckpoint, restoreCheckpoint } from "@difflm/core";
 * const { config, checkpoint } = await loadCheckpoint(dir);
 * const restored = Diffusion.create(await Engine.create(), config.model);
 * restoreCheckpoint(restored, checkpoint!, dir);
 * using writer = await CheckpointWriter.open(dir);
 * await writer.save({ model: restored, config, state: { ...checkpoint!.state, step: 1 } });
 * console.log(writer.committed?.step, writer.committed?.generation); // 1 2
 * ```
 */
export class CheckpointWriter {
  /** The run directory. */
  readonly dir: string;
  #lock: RunLock;
  #committed: CheckpointManifest | null;

  private constructor(dir: string, lock: RunLock, committed: CheckpointManifest | null) {
    this.dir = dir;
    this.#lock = lock;
    this.#committed = committed;
  }

  /**
   * Opens a run directory for training: creates it if missing, takes its lock, discards the files of a
   * commit that did not finish (a generation newer than the committed one, temporary files), and converts
   * a checkpoint in the layout of an older difflm (files beside config.json) into a committed generation.
   *
   * @example Usage
   * ```ts
   * import { CheckpointWriter } from "@difflm/core";
   * const writer = await CheckpointWriter.open(await Deno.makeTempDir());
   * console.log(writer.committed); // null: an empty directory has no checkpoint yet
   * writer.close();
   * ```
   * @param dir The run directory.
   * @param options `fresh` to delete what the directory holds of a run first (its config, tokenizer
   *   model, checkpoints, log and plot), once the lock is held.
   * @returns The writer, holding the lock until {@linkcode CheckpointWriter.close}.
   * @throws {Error} If another process holds the lock, or the checkpoint is damaged.
   */
  static async open(dir: string, options: { fresh?: boolean } = {}): Promise<CheckpointWriter> {
    await Deno.mkdir(dir, { recursive: true });
    const lock = await RunLock.acquire(dir);
    try {
      if (options.fresh) await removeRun(dir);
      const committed = await readCheckpointManifest(dir) ?? await convertOlderLayout(dir);
      const generation = committed?.generation ?? 0;
      await removeGenerations(dir, (g) => g > generation || g < generation - 1);
      for (const name of [MANIFEST_FILE, "config.json", "tokenizer.model", "log.jsonl", "loss.svg"]) {
        await Deno.remove(join(dir, `${name}.tmp`)).catch((e) => {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        });
      }
      return new CheckpointWriter(dir, lock, committed);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  /** The committed checkpoint's record, or null before the first commit. */
  get committed(): CheckpointManifest | null {
    return this.#committed;
  }

  /**
   * Writes and commits a checkpoint of the model (weights, AdamW moments, the moving average if kept), the
   * run's config and state, and the tokenizer model if the directory has none yet; then redraws
   * `loss.svg` from `log.jsonl`.
   *
   * @example Usage
   * ```ts
   * import { TrainingRun } from "@difflm/core";
   * const dir = await Deno.makeTempDir(); // a small run, checkpointed at step 0
   * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
   * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
   * import { CheckpointWriter, Diffusion, Engine, loadCheckpoint } from "@difflm/core";
   * const { config, checkpoint } = await loadCheckpoint(dir);
   * const fresh = Diffusion.create(await Engine.create(), config.model, { seed: 1 });
   * using writer = await CheckpointWriter.open(dir);
   * await writer.save({ model: fresh, config, state: { ...checkpoint!.state, step: 1 } });
   * ```
   * @param checkpoint The model, the run's config and state, and the tokenizer model's bytes.
   * @throws {RangeError} If a tensor holds a value that is not finite: nothing is committed.
   * @throws {Error} If a file cannot be written (a full disk, say): the committed checkpoint stays.
   */
  async save(
    checkpoint: { model: Diffusion; config: RunConfig; state: RunState; tokenizer?: Uint8Array },
  ): Promise<void> {
    if (!this.#lock.held) throw new Error(`Cannot save a checkpoint in "${this.dir}": the writer is closed`);
    const { model, config, state } = checkpoint;
    const previous = this.#committed;
    const generation = (previous?.generation ?? 0) + 1;
    const target = generationDir(this.dir, generation);
    const kept = previous ? `; the checkpoint of step ${previous.step} is intact` : "";
    const failed = `Cannot write the checkpoint of step ${state.step} to "${target}"`;
    const meta = { format: "pt", step: String(state.step) };
    const files = new Map<CheckpointFile, Uint8Array>();
    try {
      files.set("model.safetensors", encodeSafetensors(await modelStateDict(model), meta));
      files.set("optimizer.safetensors", encodeSafetensors(await momentsStateDict(model), meta));
      if (model.store.arenas.average) {
        files.set("average.safetensors", encodeSafetensors(await modelStateDict(model, "average"), meta));
      }
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw new RangeError(`${failed}: ${e.message}${kept}`, { cause: e });
    }
    files.set("state.json", new TextEncoder().encode(JSON.stringify(state, null, 2) + "\n"));
    const manifest: CheckpointManifest = { generation, step: state.step, files: {} };
    try {
      await Deno.mkdir(target, { recursive: true });
      for (const [name, bytes] of files) {
        await writeFileSynced(join(target, name), bytes);
        manifest.files[name] = bytes.length;
      }
      await writeFileAtomic(join(this.dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
      const tokenizerPath = join(this.dir, config.tokenizer.file);
      if (checkpoint.tokenizer && !(await pathExists(tokenizerPath))) {
        await writeFileAtomic(tokenizerPath, checkpoint.tokenizer);
      }
      await writeFileAtomic(join(this.dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");
    } catch (e) {
      await Deno.remove(target, { recursive: true }).catch(() => {});
      await Deno.remove(join(this.dir, `${MANIFEST_FILE}.tmp`)).catch(() => {});
      const problem = isDiskFull(e) ? "the disk is full" : (e as Error).message;
      throw new Error(`${failed}: ${problem}${kept}`, { cause: e });
    }
    this.#committed = manifest;
    await removeGenerations(this.dir, (g) => g < generation - 1);
    const log = await readLog(this.dir);
    await writeFileAtomic(join(this.dir, "loss.svg"), lossCurvesSvg(log, `difflm — ${this.dir}`));
  }

  /**
   * Releases the run's lock; the writer saves no more.
   *
   * @example Usage
   * ```ts
   * import { CheckpointWriter } from "@difflm/core";
   * const dir = await Deno.makeTempDir();
   * const writer = await CheckpointWriter.open(dir);
   * writer.close(); // the lock is released: another writer may open the directory
   * (await CheckpointWriter.open(dir)).close();
   * ```
   */
  close(): void {
    this.#lock.release();
  }

  /** Closes the writer. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens a trained run for sampling or evaluation, reading only its config, tokenizer and one weights file
 * (the moving average of the weights when the run keeps one, `--ema`) of the committed checkpoint. Writes
 * nothing, so read permission is enough, even while the run trains.
 *
 * @example Usage
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 * const dir = await Deno.makeTempDir(); // a small run, checkpointed at step 0
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 };
 * (await TrainingRun.create(dir, { model, vocabSize: 80, steps: 2, samples: 0 })).dispose();
 * import { loadRun, Sampler } from "@difflm/core";
 * const { model: trained, tokenizer } = await loadRun(dir);
 * const { texts } = await new Sampler(trained, { tokenizer, steps: 5 }).generate({ count: 2 });
 * console.log(texts.length); // 2
 * ```
 * @param dir The run directory.
 * @param options The engine to use (default: a new one on the shared GPU).
 * @returns The model, tokenizer, config and state, and whether the weights are the moving average.
 * @throws {Error} If the run has no committed checkpoint, or one of its files is missing or damaged.
 */
export async function loadRun(
  dir: string,
  options: { engine?: Engine } = {},
): Promise<
  { model: Diffusion; tokenizer: Tokenizer; config: RunConfig; state: RunState; averaged: boolean }
> {
  const config = await readConfig(dir);
  const read = await withCommitted(dir, async (manifest) => {
    const weightsFile = samplingWeightsFile(manifest);
    const averaged = weightsFile === "average.safetensors";
    const [weights, state] = await Promise.all([
      readCommitted(dir, manifest, weightsFile),
      readCommitted(dir, manifest, "state.json"),
    ]);
    return { weights, state: decodeRunState(state.bytes, state.path), averaged, step: manifest.step };
  });
  if (!read) {
    await assertCurrentLayout(dir);
    throw new Error(`Cannot load run "${dir}": it has no checkpoint yet (${MANIFEST_FILE} is missing)`);
  }
  const tokenizerPath = join(dir, config.tokenizer.file);
  let tokenizer: Tokenizer;
  try {
    tokenizer = Tokenizer.fromBytes(await readFileNamed(tokenizerPath, "tokenizer model"));
  } catch (e) {
    if (!(e instanceof SyntaxError) || e.message.includes(tokenizerPath)) throw e;
    throw new SyntaxError(`Cannot read tokenizer model "${tokenizerPath}": ${e.message}`, { cause: e });
  }
  if (tokenizer.vocabSize !== config.model.vocabSize) {
    throw new TypeError(
      `Cannot load run "${dir}": tokenizer model "${tokenizerPath}" has ${tokenizer.vocabSize} pieces, ` +
        `the model's vocabulary ${config.model.vocabSize}`,
    );
  }
  const weights = decodeCommitted(read.weights, read.step);
  const engine = options.engine ?? await Engine.create();
  const model = modelFromStateDict(engine, config.model, weights, read.weights.path);
  return { model, tokenizer, config, state: read.state, averaged: read.averaged };
}
