/**
 * `NoiseSchedule`: the seed's cosine schedule γ(t) and the forward diffusion process. Host-side
 * arithmetic only; the GPU applies the per-row factors it returns.
 *
 * @module
 */

/** Options of {@linkcode NoiseSchedule}. */
export interface NoiseScheduleOptions {
  /**
   * Offset added to t before the cosine.
   * @default {0.0002}
   */
  ns?: number;
  /**
   * Stretch of the time axis.
   * @default {0.00025}
   */
  ds?: number;
  /**
   * Noise scale s: the signal-to-noise ratio γ/(1−γ) of the cosine schedule is divided by s² (a shift of
   * log-SNR by −2·ln s, as in "simple diffusion"). With s > 1 more of t ∈ [0, 1] is spent at noise levels
   * where tokens are not yet readable from x_t, which low-dimensional embeddings otherwise pass through in a
   * few steps. 1 is the seed's schedule.
   * @default {1}
   */
  scale?: number;
}

/**
 * Cosine noise schedule: γ(t) = cos(((t + ns) / (1 + ds)) · π/2)², the fraction of signal power left at
 * time t; x_t = √γ(t)·x0 + √(1−γ(t))·z. With a noise scale s ≠ 1, γ becomes γ / (γ + s²·(1 − γ)).
 *
 * @example Usage
 * ```ts
 * import { NoiseSchedule } from "@difflm/core";
 * const schedule = new NoiseSchedule();
 * console.log(schedule.gamma(0).toFixed(6)); // "1.000000"
 * console.log(schedule.gamma(1) < 1e-6); // true
 * ```
 */
export class NoiseSchedule {
  /** Offset added to t. */
  readonly ns: number;
  /** Stretch of the time axis. */
  readonly ds: number;
  /** Noise scale s (1 = the seed's schedule). */
  readonly scale: number;

  /**
   * Creates the schedule.
   *
   * @param options The seed's constants by default.
   * @throws {RangeError} If `scale` is not a positive finite number.
   */
  constructor(options: NoiseScheduleOptions = {}) {
    this.ns = options.ns ?? 0.0002;
    this.ds = options.ds ?? 0.00025;
    this.scale = options.scale ?? 1;
    if (!(this.scale > 0 && Number.isFinite(this.scale))) {
      throw new RangeError(`Cannot build a noise schedule with scale ${this.scale}: it must be positive`);
    }
  }

  /**
   * γ(t), the signal fraction at time t.
   *
   * @param t Diffusion time in [0, 1].
   * @returns γ(t) in [0, 1].
   * @throws {RangeError} If `t` is outside [0, 1].
   */
  gamma(t: number): number {
    if (!(t >= 0 && t <= 1)) throw new RangeError(`Cannot evaluate gamma at t=${t}: t must be in [0, 1]`);
    const g = Math.cos(((t + this.ns) / (1 + this.ds)) * Math.PI / 2) ** 2;
    return this.scale === 1 ? g : g / (g + this.scale ** 2 * (1 - g));
  }

  /**
   * The factors of the forward process at time t: x_t = signal·x0 + noise·z.
   *
   * @param t Diffusion time in [0, 1].
   * @returns `signal` = √γ(t) and `noise` = √(1−γ(t)).
   */
  factors(t: number): { signal: number; noise: number } {
    const g = this.gamma(t);
    return { signal: Math.sqrt(g), noise: Math.sqrt(Math.max(0, 1 - g)) };
  }

  /**
   * Training times: t ~ U(0, 1) clamped to [1e-5, 1 − 1e-5] (so γ stays away from exactly 0 and 1).
   *
   * @param count How many.
   * @param uniform A source of U(0, 1) draws.
   * @returns The times.
   */
  sampleTimes(count: number, uniform: () => number): Float32Array<ArrayBuffer> {
    const t = new Float32Array(count);
    for (let i = 0; i < count; i++) t[i] = Math.min(Math.max(uniform(), 1e-5), 1 - 1e-5);
    return t;
  }

  /**
   * Forward diffusion on the host, for references and small data: x_t = √γ·x0 + √(1−γ)·z.
   *
   * @param x0 Clean values.
   * @param z Standard-normal noise, same length.
   * @param t Diffusion time.
   * @returns x_t.
   */
  diffuse(x0: ArrayLike<number>, z: ArrayLike<number>, t: number): Float64Array {
    const { signal, noise } = this.factors(t);
    return Float64Array.from(x0, (v, i) => signal * v + noise * z[i]!);
  }
}
