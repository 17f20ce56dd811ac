/**
 * The step guard and dynamic loss scaling, kept on the GPU (kernels/loss_scale.ts): gradients are made
 * with the backward seed multiplied by a loss scale, so that the small gradients of this model (down to
 * about 2e-9) stay inside f16's range where the products round their operands to f16; the guard checks
 * each step's gradient norm, skips a step whose gradients are not finite, halves the scale after such a
 * step and doubles it after a run of clean ones. In f32 the scale stays 1 and only the skipping remains:
 * one mechanism keeps a NaN or an overflow out of the weights in both precisions.
 *
 * @module
 */
import { STEP_GUARD, STEP_GUARD_STATE } from "../../kernels/loss_scale.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Dynamic loss scaling settings (PyTorch's `GradScaler` defaults). */
export interface LossScaleOptions {
  /**
   * Scale of the first step; 1 turns scaling off (f32).
   * @default {65536}
   */
  initial?: number;
  /**
   * Clean steps in a row after which the scale doubles.
   * @default {2000}
   */
  growthInterval?: number;
  /**
   * Whether the scale changes at all (halved on overflow, doubled after clean runs).
   * @default {true}
   */
  dynamic?: boolean;
}

/** The dynamic loss scale's state that a checkpoint keeps, so that a resumed run goes on as it was. */
export interface LossScaleState {
  /** The loss scale of the next step. */
  scale: number;
  /** Clean steps in a row since the scale last changed. */
  clean: number;
}

/** The host's view of the guard after a step, read back with the step's metrics. */
export interface StepVerdict {
  /** The step's gradients were not finite: weights and optimiser state were left as they were. */
  skipped: boolean;
  /** The loss scale the next step uses. */
  scale: number;
  /** Steps skipped so far (since the guard was created). */
  skippedTotal: number;
}

const MIN_SCALE = 1;
const MAX_SCALE = 2 ** 24;

/**
 * Whether a value can be a loss scale: a power of two in [1, 2^24] (powers of two scale gradients
 * exactly; 2^24 keeps the scaled f32 sums far from overflow).
 *
 * @example Usage
 * ```ts
 * import { isLossScale } from "./loss_scale.ts";
 * console.log(isLossScale(65536), isLossScale(3)); // true false
 * ```
 * @param value The candidate.
 * @returns True for a usable scale.
 */
export function isLossScale(value: unknown): value is number {
  return typeof value === "number" && value >= MIN_SCALE && value <= MAX_SCALE &&
    Number.isInteger(Math.log2(value));
}

/**
 * The GPU state of the step guard: owns the state buffer and the backward seed, and records the guard
 * after each step's gradient norm.
 *
 * @example Usage
 * ```ts
 * import { Engine } from "@difflm/core";
 * import { StepGuard } from "./loss_scale.ts";
 * const engine = await Engine.create();
 * const guard = new StepGuard(engine, { accumulate: 1, initial: 65536 });
 * const norm = engine.tensor(new Float32Array([Infinity]), [1]);
 * guard.record(norm);
 * console.log(guard.verdictOf(new Float32Array(await guard.state.read()))); // { skipped: true, scale: 32768, skippedTotal: 1 }
 * ```
 */
export class StepGuard {
  /** [scale, clean steps, skipped steps, gradient multiplier, skipped flag] (kernels/loss_scale.ts). */
  readonly state: Tensor;
  /** The backward seed of every micro-batch: scale / accumulation steps. */
  readonly seed: Tensor;
  readonly #seedFactor: number;
  readonly #growthInterval: number;
  readonly #dynamic: boolean;

  /**
   * Allocates the state and seed buffers.
   *
   * @param engine The engine.
   * @param options Accumulation steps (the seed averages over them) and the scaling settings.
   * @throws {RangeError} If the initial scale is not a power of two in [1, 2^24] or the interval not a
   * positive integer.
   */
  constructor(engine: Engine, options: LossScaleOptions & { accumulate: number }) {
    const initial = options.initial ?? 65536;
    if (!isLossScale(initial)) {
      throw new RangeError(
        `Cannot create step guard: initial loss scale is ${initial}, expected a power of two in [1, 2^24]`,
      );
    }
    const growthInterval = options.growthInterval ?? 2000;
    if (!Number.isInteger(growthInterval) || growthInterval < 1) {
      throw new RangeError(
        `Cannot create step guard: growth interval is ${growthInterval}, expected an integer >= 1`,
      );
    }
    this.#seedFactor = 1 / options.accumulate;
    this.#growthInterval = growthInterval;
    this.#dynamic = (options.dynamic ?? true) && initial > 1;
    const state = new Float32Array(STEP_GUARD_STATE);
    state.set([initial, 0, 0, 1 / initial, 0]);
    this.state = engine.keep(engine.tensor(state, [STEP_GUARD_STATE]));
    this.seed = engine.keep(engine.tensor(new Float32Array([initial * this.#seedFactor]), [1]));
  }

  /**
   * Records the guard over this step's gradient norm (replaced by the true norm when finite).
   *
   * @param norm The global norm of the scaled gradients, [1].
   */
  record(norm: Tensor): void {
    this.state.engine.runtime.dispatch(STEP_GUARD, {
      norm: norm.rows(0, 1),
      state: this.state,
      seed: this.seed,
    }, {
      seed_factor: this.#seedFactor,
      growth_interval: this.#growthInterval,
      dynamic: this.#dynamic ? 1 : 0,
      min_scale: MIN_SCALE,
      max_scale: MAX_SCALE,
    }, [1, 1, 1]);
  }

  /**
   * The scale and the clean steps in a row, read back from the GPU (for a checkpoint).
   *
   * @returns What {@linkcode StepGuard.restore} takes.
   */
  async saved(): Promise<LossScaleState> {
    const state = await this.state.read();
    return { scale: state[0]!, clean: state[1]! };
  }

  /**
   * Restores the scale and the clean-step count of a checkpoint (resuming), and the backward seed with it.
   *
   * @param saved What {@linkcode StepGuard.saved} returned.
   * @throws {RangeError} If the scale is not a power of two in [1, 2^24] or the count not a count.
   */
  restore(saved: LossScaleState): void {
    const { scale, clean } = saved;
    if (!isLossScale(scale)) {
      throw new RangeError(`Cannot restore loss scale ${scale}: expected a power of two in [1, 2^24]`);
    }
    if (!Number.isInteger(clean) || clean < 0) {
      throw new RangeError(`Cannot restore loss scale: ${clean} clean steps is not a count`);
    }
    const skipped = 0;
    this.state.write(new Float32Array([scale, clean, skipped, 1 / scale, 0]));
    this.seed.write(new Float32Array([scale * this.#seedFactor]));
  }

  /**
   * Reads a verdict from a copy of the state.
   *
   * @param state The state's five values as read back.
   * @returns Whether the step was skipped, the next scale and the skipped total.
   */
  verdictOf(state: ArrayLike<number>): StepVerdict {
    return { skipped: state[4] !== 0, scale: state[0]!, skippedTotal: state[2]! };
  }

  /** Returns the buffers to the pool. */
  dispose(): void {
    this.state.dispose();
    this.seed.dispose();
  }
}
