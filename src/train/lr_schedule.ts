/**
 * The learning-rate schedule of the seed (`linear_decay_with_warmup` in its pytorch/train.py, with no
 * hold phase): a linear warm-up from 0, then a linear decay floored at a fraction of the peak rate.
 * Pure host arithmetic; imports nothing.
 *
 * @module
 */

/** Options of {@linkcode learningRate}. */
export interface LearningRateOptions {
  /** Peak learning rate, reached at the end of warm-up (the seed: 1e-4). */
  lr: number;
  /** Warm-up length in optimiser steps; 0 for none (the seed: 2000). */
  warmup: number;
  /**
   * Decay length in optimiser steps (the seed's `decay_steps`): after warm-up the rate falls by
   * lr/decay per step, so it would reach 0 at step warmup + decay; the floor stops it at
   * minFactor·lr, reached at step warmup + (1 − minFactor)·decay. `Infinity` for no decay.
   */
  decay: number;
  /**
   * Floor as a fraction of `lr`.
   * @default {0.1}
   */
  minFactor?: number;
}

/**
 * The learning rate for an optimiser step: `lr·step/warmup` while `step < warmup`, then
 * `max(lr·(1 − (step − warmup)/decay), minFactor·lr)`. As in the seed, `step` is the number of updates
 * already made, so the first update (step 0) has rate 0 when there is a warm-up.
 *
 * @example Usage
 * ```ts
 * import { learningRate } from "./lr_schedule.ts";
 * const options = { lr: 1e-4, warmup: 2000, decay: 800000 };
 * console.log(learningRate(1000, options)); // 5e-5, half-way through warm-up
 * console.log(learningRate(2000, options)); // 1e-4, the peak
 * console.log(learningRate(1e7, options)); // 1e-5, the floor
 * ```
 * @param step Updates made so far (≥ 0).
 * @param options Peak rate, warm-up and decay lengths, floor.
 * @returns The learning rate to use for this update.
 * @throws {RangeError} If `step`, `lr` or `warmup` is negative or not finite, `decay` is not positive,
 * or `minFactor` is outside [0, 1].
 */
export function learningRate(step: number, options: LearningRateOptions): number {
  const { lr, warmup, decay, minFactor = 0.1 } = options;
  const check = (name: string, value: number, ok: boolean, expected: string) => {
    if (!ok) {
      throw new RangeError(`Cannot compute the learning rate: ${name} is ${value}, expected ${expected}`);
    }
  };
  check("step", step, Number.isFinite(step) && step >= 0, "a finite number >= 0");
  check("lr", lr, Number.isFinite(lr) && lr >= 0, "a finite number >= 0");
  check("warmup", warmup, Number.isFinite(warmup) && warmup >= 0, "a finite number >= 0");
  check("decay", decay, decay > 0, "a number > 0 (Infinity for no decay)");
  check("minFactor", minFactor, minFactor >= 0 && minFactor <= 1, "a number in [0, 1]");
  if (step < warmup) return lr * (step / warmup);
  return Math.max(lr * (1 - (step - warmup) / decay), lr * minFactor);
}
