/**
 * Seeded shuffling: Fisher–Yates over arrays, and the per-epoch permutation of a corpus's lines that
 * depends only on the seed and the epoch number (so a resumed run recomputes it instead of saving it).
 * Pure TypeScript; imports only the data pipeline's random generator.
 *
 * @module
 */
import { Xoshiro128 } from "./xoshiro128.ts";

/** Stream key of the per-epoch permutations (see the `stream` argument of {@linkcode Xoshiro128}). */
const PERMUTATION_STREAM = 1;

/**
 * Shuffles an array in place with the Fisher–Yates algorithm: every order is equally likely.
 *
 * @example Usage
 * ```ts
 * import { shuffle } from "./shuffle.ts";
 * import { Xoshiro128 } from "./xoshiro128.ts";
 * import assert from "node:assert/strict";
 *
 * const items = shuffle([1, 2, 3, 4, 5], new Xoshiro128(9));
 * assert.deepEqual([...items].sort(), [1, 2, 3, 4, 5]);
 * ```
 * @typeParam T The array type: a plain array or a typed array.
 * @param items The array to shuffle; it is modified.
 * @param rng The generator that supplies the randomness.
 * @returns `items`, shuffled.
 */
export function shuffle<T extends { length: number; [i: number]: unknown }>(items: T, rng: Xoshiro128): T {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}

/**
 * Returns a uniformly random permutation of 0 … count−1.
 *
 * @example Usage
 * ```ts
 * import { permutation } from "./shuffle.ts";
 * import { Xoshiro128 } from "./xoshiro128.ts";
 * import assert from "node:assert/strict";
 *
 * const p = permutation(5, new Xoshiro128(1));
 * assert.deepEqual([...p].sort(), [0, 1, 2, 3, 4]);
 * ```
 * @param count How many indices to permute, an integer in [0, 2³²).
 * @param rng The generator that supplies the randomness.
 * @returns The permutation.
 * @throws {RangeError} If `count` is not an integer in [0, 2³²).
 */
export function permutation(count: number, rng: Xoshiro128): Uint32Array<ArrayBuffer> {
  if (!Number.isInteger(count) || count < 0 || count >= 2 ** 32) {
    throw new RangeError(
      `Cannot build a permutation of ${count} items: count must be an integer in [0, 2^32)`,
    );
  }
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = i;
  return shuffle(out, rng);
}

/**
 * Returns the permutation of 0 … count−1 used for one epoch: a function of `seed` and `epoch` alone.
 *
 * @example Usage
 * ```ts
 * import { epochPermutation } from "./shuffle.ts";
 * import assert from "node:assert/strict";
 *
 * const a = epochPermutation(10, { seed: 7, epoch: 3 });
 * assert.deepEqual(epochPermutation(10, { seed: 7, epoch: 3 }), a);
 * ```
 * @param count How many indices to permute.
 * @param options The run's seed and the epoch number (both non-negative integers).
 * @returns The epoch's permutation.
 * @throws {RangeError} If `count`, `seed` or `epoch` is out of range.
 */
export function epochPermutation(
  count: number,
  options: { seed: number; epoch: number },
): Uint32Array<ArrayBuffer> {
  return permutation(count, new Xoshiro128(options.seed, [PERMUTATION_STREAM, options.epoch]));
}
