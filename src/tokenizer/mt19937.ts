/**
 * The 32-bit Mersenne Twister (`std::mt19937`) and the libstdc++ recipe that turns it into uniform
 * doubles. SentencePiece draws its BPE-dropout and sampling decisions from this generator, so using it
 * with the same seed reproduces the reference's sampled encodings bit for bit.
 *
 * @module
 */

/** A source of uniformly distributed 32-bit unsigned integers. */
export interface RandomSource {
  /** Returns the next integer, uniform in [0, 2³²). */
  nextUint32(): number;
}

const N = 624;
const M = 397;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const MATRIX_A = 0x9908b0df;
const TWO_POW_32 = 4294967296;
/** Largest double below 1, which libstdc++ returns in place of a rounded-up 1.0. */
const ONE_MINUS_ULP = 1 - 2 ** -53;

/**
 * The standard 32-bit Mersenne Twister with the standard seeding, identical to C++'s `std::mt19937`.
 *
 * @example Usage
 * ```ts
 * import { Mt19937 } from "@difflm/core/tokenizer";
 *
 * const mt = new Mt19937(5489);
 * console.log(mt.nextUint32()); // 3499211612, the first output of std::mt19937 with its default seed
 * ```
 */
export class Mt19937 implements RandomSource {
  #state = new Uint32Array(N);
  #index = N;

  /**
   * Seeds the generator as `std::mt19937(seed)` does.
   *
   * @param seed Seed, an integer; only its low 32 bits are used.
   * @throws {TypeError} If the seed is not a number.
   * @throws {RangeError} If the seed is not a safe integer (NaN, a fraction, ±Infinity).
   */
  constructor(seed = 5489) {
    if (typeof seed !== "number") {
      throw new TypeError(`Cannot seed Mt19937 with ${JSON.stringify(seed)}: it is not a number`);
    }
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`Cannot seed Mt19937 with ${seed}: it must be an integer`);
    }
    const s = this.#state;
    s[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = s[i - 1]! ^ (s[i - 1]! >>> 30);
      s[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /**
   * Returns the next 32-bit output.
   *
   * @example Usage
   * ```ts
   * import { Mt19937 } from "@difflm/core/tokenizer";
   * const x = new Mt19937(42).nextUint32();
   * console.log(x >= 0 && x < 2 ** 32); // true
   * ```
   * @returns An integer in [0, 2³²).
   */
  nextUint32(): number {
    if (this.#index >= N) this.#twist();
    let y = this.#state[this.#index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /**
   * Returns a double uniform in [0, 1), drawn as libstdc++'s `uniform_real_distribution<double>` does.
   *
   * @example Usage
   * ```ts
   * import { Mt19937 } from "@difflm/core/tokenizer";
   * const u = new Mt19937(42).nextDouble();
   * console.log(u >= 0 && u < 1); // true
   * ```
   * @returns A double in [0, 1).
   */
  nextDouble(): number {
    return uniformDouble(this);
  }

  #twist(): void {
    const s = this.#state;
    for (let i = 0; i < N; i++) {
      const y = (s[i]! & UPPER_MASK) | (s[(i + 1) % N]! & LOWER_MASK);
      s[i] = s[(i + M) % N]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.#index = 0;
  }
}

/**
 * Draws a double uniform in [0, 1) from two consecutive 32-bit outputs, `(x₁ + x₂·2³²) / 2⁶⁴`, the
 * libstdc++ `generate_canonical<double, 53>` recipe that `uniform_real_distribution<double>` and
 * `discrete_distribution` use on Linux.
 *
 * @example Usage
 * ```ts
 * import { Mt19937, uniformDouble } from "@difflm/core/tokenizer";
 * const u = uniformDouble(new Mt19937(1));
 * console.log(u >= 0 && u < 1); // true
 * ```
 * @param rng The generator to draw two outputs from.
 * @returns A double in [0, 1).
 */
export function uniformDouble(rng: RandomSource): number {
  const lo = rng.nextUint32();
  const hi = rng.nextUint32();
  const u = (lo + hi * TWO_POW_32) / (TWO_POW_32 * TWO_POW_32);
  return u >= 1 ? ONE_MINUS_ULP : u;
}

/** Returns a generator seeded from the platform's cryptographic random source. */
export function randomlySeededMt19937(): Mt19937 {
  const seed = new Uint32Array(1);
  crypto.getRandomValues(seed);
  return new Mt19937(seed[0]!);
}
