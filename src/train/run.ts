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
import { BatchStream, type BatchStreamState } from "../data/batches.ts";
import type { CorpusIndex } from "../data/corpus_index.ts";
import { Diffusion } from "../diffusion/diffusion.ts";
import { Sampler, type SamplerOptions } from "../diffusion/sampler.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { CheckpointWriter, loadCheckpoint, restoreCheckpoint, runFiles } from "./checkpoint.ts";
import { appendLog, logRecord, readLog, truncateLog } from "./run_log.ts";
import type { RunConfig, RunState } from "./state_dict.ts";
import { type StepMetrics, Trainer } from "./trainer.ts";
import {
  MAX_SKIPPED_IN_A_ROW,
  TokenRate,
  type TrainingProgress,
  type TrainOptions,
  type TrainResult,
} from "./training_progress.ts";
import {
  checkCadence,
  CPU_DEMONSTRATION,
  type NewRunParts,
  newRunParts,
  type RunChanges,
  savedRunParts,
  type TrainingRunConfig,
  type TrainingRunOptions,
} from "./training_run_config.ts";

export {
  BUILTIN_CORPUS,
  CHANGEABLE_TRAIN_KEYS,
  type ChangeableTrainKey,
  CPU_DEMONSTRATION,
  type RunChanges,
  type TrainingRunConfig,
  type TrainingRunOptions,
} from "./training_run_config.ts";
export {
  MAX_SKIPPED_IN_A_ROW,
  type TrainingProgress,
  type TrainOptions,
  type TrainResult,
} from "./training_progress.ts";

/** Training steps whose metrics may still be on their way back while the next step is recorded. */
const METRICS_IN_FLIGHT = 8;

interface RunParts extends NewRunParts {
  dir: string;
  changes: string[];
  writer: CheckpointWriter;
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
    const { config: runConfig, engine, tokenizer, tokenizerBytes, corpus, demonstration } = await newRunParts(
      dir,
      config,
      options,
    );
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
    const { config, engine, tokenizer, tokenizerBytes, corpus, demonstration, changed } = await savedRunParts(
      dir,
      saved,
      changes,
      options,
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
    const tokenRate = new TokenRate(this.#timeOffset, this.#tokens);
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
      const tokensPerSecond = tokenRate.add(time, this.#tokens);
      const rate = (metrics.step - sessionStep) / Math.max(time - this.#timeOffset, 1e-9);
      const logged = forceLog || metrics.step % logEvery === 0 || metrics.step === target;
      if (logged) {
        await appendLog(this.dir, logRecord(metrics, { epoch, tokensPerSecond, tokens: this.#tokens, time }));
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
