/**
 * `Trainer`: the GPU training loop. One optimiser step records every micro-batch's forward and
 * backward, the global gradient-norm clip and the AdamW update into the engine, with no read-back
 * inside the step; the metrics of step k are read while step k+1 is being recorded (lagged).
 *
 * @module
 */
import type { Diffusion, LossInputs } from "../diffusion/diffusion.ts";
import type { TrainConfig } from "../diffusion/config.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { adamwUpdate, emaUpdate, gradNormInto } from "../tensor/ops/adamw.ts";
import { STEP_GUARD_STATE } from "../../kernels/loss_scale.ts";
import { type LossScaleOptions, type LossScaleState, StepGuard } from "./loss_scale.ts";
import { learningRate } from "./lr_schedule.ts";

/** A collated batch on the host (what `src/data` produces). */
export interface HostBatch {
  /** Token ids, B·L. */
  ids: Int32Array<ArrayBuffer>;
  /** Sequence lengths, B. */
  lengths: Int32Array<ArrayBuffer>;
  /** Conditioning mask, B·L. */
  condMask: Uint32Array<ArrayBuffer>;
  /** Loss weight per position, B·L. */
  rowWeight: Float32Array<ArrayBuffer>;
  /** Real (non-pad) tokens in the batch. */
  tokens: number;
}

/** The metrics of one optimiser step, read back after the step ran. */
export interface StepMetrics {
  /** Optimiser step (1-based). */
  step: number;
  /** mse + ce. */
  loss: number;
  /** Masked MSE. */
  mse: number;
  /** Masked cross-entropy. */
  ce: number;
  /** Token accuracy on diffused positions. */
  accuracy: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate used. */
  lr: number;
  /** Real tokens in the step's batches. */
  tokens: number;
  /**
   * The step's gradients were not finite (an f16 overflow under loss scaling, or a NaN): weights and
   * optimiser state were left unchanged; `gradNorm` is then the non-finite norm.
   */
  skipped: boolean;
  /** The loss scale the next step uses (1 in f32). */
  lossScale: number;
}

/** A seeded uniform generator whose state can be saved and restored (xorshift-multiply, 32-bit). */
export class HostRandom {
  /** The generator's state; save it to resume the same stream. */
  state: number;

  /**
   * Creates a generator.
   *
   * @param seed Initial state.
   */
  constructor(seed: number) {
    this.state = (seed ^ 0x2545f491) >>> 0;
  }

  /** A draw from U(0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  }
}

/**
 * Runs optimiser steps of a {@linkcode Diffusion} model on host batches. Under the engine's `mixed`
 * precision the backward seed carries a dynamic loss scale; in both precisions a step whose gradients
 * are not finite is skipped on the GPU and counted (see src/train/loss_scale.ts).
 *
 * @example Usage
 * ```ts
 * import { Diffusion, Engine, Trainer, DEFAULT_TRAIN } from "@difflm/core";
 * const engine = await Engine.create();
 * const model = Diffusion.create(engine, { vocabSize: 100, modelDim: 64, layers: 1, heads: 2 });
 * const trainer = new Trainer(model, { ...DEFAULT_TRAIN, batch: 4, crop: 8 }, { seed: 1 });
 * ```
 */
export class Trainer {
  /** The model being trained. */
  readonly model: Diffusion;
  /** Training options. */
  readonly config: TrainConfig;
  /** Host randomness: diffusion times and the self-conditioning coin. */
  readonly random: HostRandom;
  /** Base seed of the GPU randomness (noise, dropout). */
  readonly seed: number;
  /** Optimiser steps taken. */
  step = 0;
  /** Steps skipped for non-finite gradients, as far as their metrics have been read. */
  skippedSteps = 0;
  #inputs: LossInputs;
  #metrics: Tensor;
  #norm: Tensor;
  #guard: StepGuard;

  /**
   * Creates the trainer and its persistent GPU input buffers.
   *
   * @param model The model (allocated).
   * @param config Training options.
   * @param options `seed` of the host and GPU randomness; `lossScale` settings (used under `mixed`
   * precision; in f32 the scale is 1).
   */
  constructor(
    model: Diffusion,
    config: TrainConfig,
    options: { seed?: number; lossScale?: LossScaleOptions } = {},
  ) {
    this.model = model;
    this.config = config;
    this.seed = options.seed ?? 0;
    this.random = new HostRandom(this.seed);
    const engine = model.engine;
    const { batch: B, crop: L } = config;
    const keep = (t: Tensor) => engine.keep(t);
    this.#inputs = {
      ids: keep(engine.zeros([B, L], "i32", "ids")),
      lengths: keep(engine.zeros([B], "i32", "lengths")),
      cond: keep(engine.zeros([B, L], "u32", "cond mask")),
      rowWeight: keep(engine.zeros([B * L], "f32", "row weights")),
      t: keep(engine.zeros([B], "f32", "t")),
      signal: keep(engine.zeros([B], "f32", "signal")),
      noise: keep(engine.zeros([B], "f32", "noise")),
    };
    this.#metrics = keep(engine.zeros([4 * config.accumulate + 1 + STEP_GUARD_STATE], "f32", "metrics"));
    this.#norm = keep(engine.zeros([1], "f32", "grad norm"));
    const mixed = engine.precision === "mixed";
    this.#guard = new StepGuard(engine, {
      ...options.lossScale,
      initial: mixed ? options.lossScale?.initial : 1,
      accumulate: config.accumulate,
    });
    // Runs configured before the average existed have no `ema` field.
    if ((config.ema ?? 0) > 0) model.store.keepAverage();
  }

  #upload(batch: HostBatch): void {
    const { batch: B, crop: L } = this.config;
    if (batch.ids.length !== B * L || batch.lengths.length !== B) {
      throw new TypeError(
        `Cannot train on batch: ids has ${batch.ids.length} values and lengths ${batch.lengths.length}, expected ${
          B * L
        } and ${B}`,
      );
    }
    const schedule = this.model.schedule;
    const t = schedule.sampleTimes(B, () => this.random.next());
    const signal = new Float32Array(B);
    const noise = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      const f = schedule.factors(t[b]!);
      signal[b] = f.signal;
      noise[b] = f.noise;
    }
    const inputs = this.#inputs;
    inputs.ids.write(batch.ids);
    inputs.lengths.write(batch.lengths);
    inputs.cond.write(batch.condMask);
    inputs.rowWeight.write(batch.rowWeight);
    inputs.t.write(t);
    inputs.signal.write(signal);
    inputs.noise.write(noise);
  }

  /**
   * Records one optimiser step over `batches` (one per accumulation micro-step) and submits it without
   * waiting for the GPU or for the submission's validation. The returned `metrics` promise settles once
   * the GPU has run the step (and rejects with the GpuError if the step raised one), so a loop can record
   * step k+1 while step k runs and read step k's numbers afterwards.
   *
   * @param batches `config.accumulate` host batches.
   * @returns The step number and a promise of its metrics.
   */
  // deno-lint-ignore require-await -- async so that argument errors reject, as the step's own errors do
  async trainStep(batches: readonly HostBatch[]): Promise<{ step: number; metrics: Promise<StepMetrics> }> {
    const config = this.config;
    if (batches.length !== config.accumulate) {
      throw new RangeError(`Cannot train: got ${batches.length} batches, expected ${config.accumulate}`);
    }
    const engine = this.model.engine;
    const runtime = engine.runtime;
    const step = ++this.step;
    // As in the seed, the schedule counts updates already made: the first update uses learningRate(0).
    const lr = learningRate(step - 1, { lr: config.lr, warmup: config.warmup, decay: config.decay });
    let tokens = 0;
    for (const [micro, batch] of batches.entries()) {
      this.#upload(batch);
      tokens += batch.tokens;
      const selfCondition = this.random.next() < config.selfConditioning;
      engine.tidy(() => {
        engine.startTape();
        const out = this.model.loss(this.#inputs, { selfCondition, seed: this.seed });
        engine.backward(out.loss, this.#guard.seed);
        // Metrics: four slots per micro-batch (loss, mse, ce, accuracy), averaged on the host.
        for (const [i, value] of [out.loss, out.mse, out.ce, out.accuracy].entries()) {
          runtime.copy(value, this.#metrics.rows(4 * micro + i, 1));
        }
      });
    }
    const store = this.model.store;
    gradNormInto(this.#norm, store.arenas.grads);
    this.#guard.record(this.#norm);
    runtime.copy(this.#norm, this.#metrics.rows(4 * batches.length, 1));
    runtime.copy(this.#guard.state, this.#metrics.rows(4 * batches.length + 1, STEP_GUARD_STATE));
    adamwUpdate(store.arenas, this.#norm, {
      guard: this.#guard.state,
      lr,
      beta1: config.beta1,
      beta2: config.beta2,
      eps: config.eps,
      weightDecay: config.weightDecay,
      step,
      maxNorm: config.clip,
    });
    if (store.arenas.average) emaUpdate(store.arenas.params, store.arenas.average, config.ema);
    store.zeroGrads();
    const bytes = runtime.readLater(this.#metrics);
    // Not awaited: the next step is recorded while this submission's error scopes settle; a WebGPU
    // error of this step rejects its metrics.
    const submitted = runtime.flush("train step");
    const n = batches.length;
    const metrics = Promise.all([bytes, submitted]).then(([buffer]) => {
      const v = new Float32Array(buffer);
      const mean = (k: number) => {
        let s = 0;
        for (let m = 0; m < n; m++) s += v[4 * m + k]!;
        return s / n;
      };
      const verdict = this.#guard.verdictOf(v.subarray(4 * n + 1));
      if (verdict.skipped) this.skippedSteps++;
      return {
        step,
        skipped: verdict.skipped,
        lossScale: verdict.scale,
        loss: mean(0),
        mse: mean(1),
        ce: mean(2),
        accuracy: mean(3),
        gradNorm: v[4 * n]!,
        lr,
        tokens,
      };
    });
    return { step, metrics };
  }

  /**
   * The loss scale and its clean-step count as of the last recorded step (read back from the GPU), for a
   * checkpoint; in f32 the scale is always 1.
   *
   * @returns The state {@linkcode Trainer.restoreLossScale} takes.
   */
  lossScaleState(): Promise<LossScaleState> {
    return this.#guard.saved();
  }

  /**
   * Restores the loss scale of a checkpoint, so that a resumed mixed-precision run scales, skips and
   * grows exactly as it would have without the interruption.
   *
   * @param state What {@linkcode Trainer.lossScaleState} returned.
   * @throws {RangeError} If the scale is not a power of two in [1, 2^24] (1 in f32).
   */
  restoreLossScale(state: LossScaleState): void {
    if (this.model.engine.precision === "f32" && state.scale !== 1) {
      throw new RangeError(`Cannot restore loss scale ${state.scale} in f32, where it is 1`);
    }
    this.#guard.restore(state);
  }

  /** Returns the persistent input buffers to the pool. */
  dispose(): void {
    for (const t of Object.values(this.#inputs)) t.dispose();
    this.#metrics.dispose();
    this.#norm.dispose();
    this.#guard.dispose();
  }
}
