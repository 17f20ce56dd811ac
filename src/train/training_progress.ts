/**
 * What {@linkcode TrainingRun.train} reports while it runs, the options it takes and how it ends.
 *
 * @module
 */
import type { StepMetrics } from "./trainer.ts";

/**
 * Skipped steps in a row (non-finite gradients) after which training stops: more than the halvings that
 * take mixed precision's loss scale from its start, 2¹⁶, down to 1, so only a model that stays broken
 * stops.
 */
export const MAX_SKIPPED_IN_A_ROW = 25;

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

/** Shortest span of training time, in seconds, over which tokens per second are measured. */
const RATE_WINDOW = 2;

/**
 * Tokens per second over the last `RATE_WINDOW` seconds of training time at least (from the start before
 * that): metrics arrive in bursts, several at one poll, so the rate between two arrivals means nothing.
 *
 * @example Usage
 * ```ts
 * import { TokenRate } from "./training_progress.ts";
 * const rate = new TokenRate(0, 0);
 * rate.add(1, 1000);
 * console.log(rate.add(2, 2000), rate.add(4, 3000)); // 1000 500
 * ```
 */
export class TokenRate {
  #history: { time: number; tokens: number }[];

  /**
   * Starts measuring.
   *
   * @param time Training time at the start, in seconds.
   * @param tokens Tokens trained on by then.
   */
  constructor(time: number, tokens: number) {
    this.#history = [{ time, tokens }];
  }

  /**
   * Records where training stands.
   *
   * @param time Training time, in seconds.
   * @param tokens Tokens trained on by then.
   * @returns Tokens per second over the window, rounded.
   */
  add(time: number, tokens: number): number {
    const history = this.#history;
    while (history.length > 1 && history[1]!.time <= time - RATE_WINDOW) history.shift();
    const base = history[0]!;
    history.push({ time, tokens });
    return Math.round((tokens - base.tokens) / Math.max(time - base.time, 1e-9));
  }
}
