/**
 * The seeded random generator of the data pipeline: xoshiro128** (Blackman and Vigna), 128 bits of
 * state in four 32-bit words. Its state is a plain array, so a checkpoint can save it and a resumed run
 * continue the same random sequence. Pure TypeScript; imports nothing.
 *
 * Vocabulary: a *stream* is a list of integers mixed into the seed, so that one user-facing seed gives
 * independent generators for independent purposes (one per epoch's shuffle, one per batch's masks).
 *
 * @module
 */

const TWO_POW_32 = 4294967296;

/** The state of a {@linkcode Xoshiro128}: four unsigned 32-bit words, not all zero. JSON-serialisable. */
export type Xoshiro128State = [number, number, number, number];

/** Murmur3's 32-bit finaliser: a bijection that spreads every input bit over every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Splits a non-negative safe integer into its low and high 32-bit words. */
function words(value: number, what: string): [number, number] {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot seed the random generator: ${what} must be a non-negative safe integer, got ${value}`,
    );
  }
  return [value >>> 0, Math.floor(value / TWO_POW_32) >>> 0];
}

/**
 * xoshiro128**: a small, fast generator of uniform 32-bit integers with a serialisable state. Seeding
 * hashes the seed and the optional stream keys, so nearby seeds give unrelated sequences.
 *
 * @example Usage
 * ```ts
 * import { Xoshiro128 } from "./xoshiro128.ts";
 * import assert from "node:assert/strict";
 *
 * const rng = new Xoshiro128(42);
 * const saved = rng.state();
 * const a = [rng.int(1, 6), rng.int(1, 6), rng.float()];
 * const resumed = Xoshiro128.fromState(saved);
 * assert.deepEqual([resumed.int(1, 6), resumed.int(1, 6), resumed.float()], a);
 * ```
 */
export class Xoshiro128 {
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;

  /**
   * Seeds a generator from a seed and an optional stream.
   *
   * @param seed A non-negative safe integer.
   * @param stream Non-negative safe integers that select an independent sequence for the same seed
   *   (for example `[1, epoch]`); `[]` by default.
   * @throws {RangeError} If the seed or a stream key is not a non-negative safe integer.
   */
  constructor(seed: number, stream: readonly number[] = []) {
    let h = 0x9e3779b9;
    const keys = [...words(seed, "the seed")];
    for (const key of stream) keys.push(...words(key, "a stream key"));
    keys.push(stream.length);
    for (const w of keys) h = fmix32((h ^ fmix32((w + 0x632be5ab) >>> 0)) + 0x9e3779b9);
    this.#s0 = fmix32(h + 0x3c6ef372);
    this.#s1 = fmix32(h + 0xdaa66d2b);
    this.#s2 = fmix32(h + 0x78dde6e4);
    this.#s3 = fmix32(h + 0x1715609d);
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1;
  }

  /**
   * Creates a generator that continues from a saved state.
   *
   * @example Usage
   * ```ts
   * import { Xoshiro128 } from "./xoshiro128.ts";
   * import assert from "node:assert/strict";
   *
   * const rng = new Xoshiro128(7);
   * const copy = Xoshiro128.fromState(JSON.parse(JSON.stringify(rng.state())));
   * assert.equal(copy.nextUint32(), rng.nextUint32());
   * ```
   * @param state A state returned by {@linkcode Xoshiro128.prototype.state}.
   * @returns A generator whose next outputs are those the saved one would have produced.
   * @throws {TypeError} If `state` is not an array of four integers.
   * @throws {RangeError} If a word is outside [0, 2³²) or all four are zero.
   */
  static fromState(state: readonly number[]): Xoshiro128 {
    if (!Array.isArray(state) || state.length !== 4 || !state.every((w) => Number.isInteger(w))) {
      throw new TypeError(
        `Cannot restore the random generator: expected 4 integers, got ${JSON.stringify(state)}`,
      );
    }
    if (state.some((w) => w < 0 || w >= TWO_POW_32) || state.every((w) => w === 0)) {
      throw new RangeError(
        `Cannot restore the random generator: words must be in [0, 2^32) and not all zero, got ${
          JSON.stringify(state)
        }`,
      );
    }
    const rng = new Xoshiro128(0);
    [rng.#s0, rng.#s1, rng.#s2, rng.#s3] = state as Xoshiro128State;
    return rng;
  }

  /**
   * Returns the current state; {@linkcode Xoshiro128.fromState} continues from it.
   *
   * @example Usage
   * ```ts
   * import { Xoshiro128 } from "./xoshiro128.ts";
   * console.log(new Xoshiro128(1).state().length); // 4
   * ```
   * @returns Four unsigned 32-bit words (a fresh array).
   */
  state(): Xoshiro128State {
    return [this.#s0, this.#s1, this.#s2, this.#s3];
  }

  /**
   * Returns the next output.
   *
   * @example Usage
   * ```ts
   * import { Xoshiro128 } from "./xoshiro128.ts";
   * const x = new Xoshiro128(3).nextUint32();
   * console.log(Number.isInteger(x) && x >= 0 && x < 2 ** 32); // true
   * ```
   * @returns An integer uniform in [0, 2³²).
   */
  nextUint32(): number {
    const s1 = this.#s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = (this.#s3 << 11) | (this.#s3 >>> 21);
    this.#s0 >>>= 0;
    this.#s1 >>>= 0;
    this.#s2 >>>= 0;
    this.#s3 >>>= 0;
    return result;
  }

  /**
   * Returns a float uniform in [0, 1) with 32 random bits.
   *
   * @example Usage
   * ```ts
   * import { Xoshiro128 } from "./xoshiro128.ts";
   * const u = new Xoshiro128(3).float();
   * console.log(u >= 0 && u < 1); // true
   * ```
   * @returns A number in [0, 1).
   */
  float(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /**
   * Returns an integer uniform in [min, max], both ends included (as Python's `random.randint`),
   * without modulo bias.
   *
   * @example Usage
   * ```ts
   * import { Xoshiro128 } from "./xoshiro128.ts";
   * const die = new Xoshiro128(3).int(1, 6);
   * console.log(die >= 1 && die <= 6); // true
   * ```
   * @param min The smallest possible value, an integer.
   * @param max The largest possible value, an integer with `max - min < 2³²`.
   * @returns An integer in [min, max].
   * @throws {RangeError} If the bounds are not integers, `max < min`, or the range exceeds 2³².
   */
  int(min: number, max: number): number {
    const range = max - min + 1;
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || range < 1 || range > TWO_POW_32) {
      throw new RangeError(
        `Cannot draw an integer in [${min}, ${max}]: bounds must be integers spanning 1 to 2^32`,
      );
    }
    if (range === 1) return min;
    const limit = TWO_POW_32 - (TWO_POW_32 % range);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return min + (x % range);
  }
}
