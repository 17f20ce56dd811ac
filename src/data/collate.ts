/**
 * The seed's collate: turns examples into one static-shape training batch [B, L]. Per example: token ids
 * (sampled subwords at training time) plus EOS, cropped to L; a conditional mask (a span of random length
 * in [0, len−1] at a random start, its bits shuffled over the example with probability 0.5); a length
 * drawn uniformly in [own length, longest in the batch], so the model learns to emit pads; pads up to L.
 * Every random draw comes from the {@linkcode Xoshiro128} passed in. Pure TypeScript, CPU only; the
 * tokenizer is reached through the structural {@linkcode BatchTokenizer} interface, not imported.
 *
 * Dimension letters: `B` batch size, `L` sequence length (the crop length).
 *
 * @module
 */
import { shuffle } from "./shuffle.ts";
import type { Xoshiro128 } from "./xoshiro128.ts";

/** What the data pipeline needs from a tokenizer; `Tokenizer` satisfies it. */
export interface BatchTokenizer {
  /**
   * Encodes text to token ids.
   *
   * @param text The text.
   * @param options `sample: true` draws a random segmentation (subword regularisation) with `alpha`,
   * from `seed` when given (so that a batch's segmentation depends only on the batch's generator).
   * @returns The ids, without BOS or EOS.
   */
  encode(text: string, options?: { sample?: boolean; alpha?: number; seed?: number }): number[];
  /** The end-of-sequence id, appended to every example. */
  readonly eosId: number;
  /** The padding id, written after each example's tokens. */
  readonly padId: number;
}

/** One training batch, every array row-major with shape [B, L] unless stated. */
export interface Batch {
  /** Token ids, `padId` after each example's tokens. [B·L] */
  ids: Int32Array<ArrayBuffer>;
  /** The length the model sees per example, in [own length, longest in batch]. [B] */
  lengths: Int32Array<ArrayBuffer>;
  /** 1 at conditioning positions (given to the model, not diffused), always inside the own length. [B·L] */
  condMask: Uint32Array<ArrayBuffer>;
  /** 1 where `pos < lengths[b]` and not conditioning: the positions both losses average over. [B·L] */
  diffMask: Uint32Array<ArrayBuffer>;
  /** `diffMask / count(diffMask)` over the whole batch (sums to 1; all zero if no position counts). [B·L] */
  rowWeight: Float32Array<ArrayBuffer>;
  /** Real tokens in the batch (own lengths summed: text tokens and EOS, no pads). */
  tokens: number;
  /** B, the number of examples. */
  batchSize: number;
  /** L, the crop length: every row has this many positions. */
  length: number;
}

/** Options of {@linkcode collateIds}. */
export interface CollateIdsOptions {
  /** The end-of-sequence id, appended to each example before cropping. */
  eosId: number;
  /** The padding id. */
  padId: number;
  /**
   * L: examples are cropped to it and every row is padded to it.
   *
   * @default {64}
   */
  cropLength?: number;
  /**
   * Probability that an example has no conditioning positions at all (every token diffused). The seed's
   * collate has none beyond its own span draw (an empty span, chance 1/n), so unconditional examples are
   * rare; a larger share trains unconditional generation more.
   *
   * @default {0}
   */
  unconditional?: number;
}

/** Options of {@linkcode Collator}: the crop and conditioning of {@linkcode CollateIdsOptions}, and the encoding. */
export interface CollatorOptions extends Pick<CollateIdsOptions, "cropLength" | "unconditional"> {
  /**
   * Whether to encode with subword sampling (the seed's training-time setting).
   *
   * @default {true}
   */
  sample?: boolean;
  /**
   * Subword sampling strength passed to the tokenizer (BPE-dropout probability for BPE models).
   *
   * @default {0.1}
   */
  alpha?: number;
}

function checkUnconditional(p: number): void {
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(`Cannot collate with unconditional ${p}: it must be in [0, 1]`);
  }
}

function checkCropLength(cropLength: number): void {
  if (!Number.isInteger(cropLength) || cropLength < 1) {
    throw new RangeError(`Cannot collate with cropLength ${cropLength}: it must be a positive integer`);
  }
}

function checkId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < -(2 ** 31) || id >= 2 ** 31) {
    throw new TypeError(`Cannot collate: ${what} must be a 32-bit integer, got ${id}`);
  }
}

/**
 * Collates already-encoded examples as the seed does (EOS, crop, conditional mask, random length,
 * padding). Random draws per example, in order: span length, span start, shuffle coin (and the shuffle),
 * and when `unconditional` > 0 a coin that clears the mask; then one length per example.
 *
 * @example Usage
 * ```ts
 * import { collateIds } from "./collate.ts";
 * import { Xoshiro128 } from "./xoshiro128.ts";
 * import assert from "node:assert/strict";
 *
 * const batch = collateIds([[5, 6, 7], [8]], new Xoshiro128(0), { eosId: 1, padId: 2, cropLength: 6 });
 * assert.deepEqual([...batch.ids], [5, 6, 7, 1, 2, 2, 8, 1, 2, 2, 2, 2]);
 * assert.equal(batch.tokens, 6);
 * assert.ok(batch.lengths[1]! >= 2 && batch.lengths[1]! <= 4);
 * ```
 * @param examples Token ids per example, without EOS; may be empty (the example is then EOS alone).
 * @param rng The generator for every random draw.
 * @param options EOS and pad ids, crop length.
 * @returns The batch, B = `examples.length`.
 * @throws {RangeError} If there are no examples or `cropLength` is not a positive integer.
 * @throws {TypeError} If an id is not a 32-bit integer.
 */
export function collateIds(
  examples: readonly (readonly number[])[],
  rng: Xoshiro128,
  options: CollateIdsOptions,
): Batch {
  const { eosId, padId, cropLength = 64, unconditional = 0 } = options;
  checkCropLength(cropLength);
  checkUnconditional(unconditional);
  checkId(eosId, "eosId");
  checkId(padId, "padId");
  const B = examples.length;
  if (B === 0) throw new RangeError("Cannot collate an empty batch: at least one example is needed");
  const L = cropLength;
  const ids = new Int32Array(B * L).fill(padId);
  const lengths = new Int32Array(B);
  const condMask = new Uint32Array(B * L);
  const diffMask = new Uint32Array(B * L);
  const rowWeight = new Float32Array(B * L);
  const own = new Int32Array(B);
  const mask = new Uint8Array(L);
  for (let b = 0; b < B; b++) {
    const example = examples[b]!;
    // ids + [eos], cropped to L
    const n = Math.min(example.length + 1, L);
    const row = b * L;
    for (let p = 0; p < n; p++) {
      const id = p < example.length ? example[p]! : eosId;
      checkId(id, `token id at example ${b}, position ${p}`);
      ids[row + p] = id;
    }
    own[b] = n;
    // Conditional mask: a span of length in [0, n−1] at a start in [0, n − span]; half the time its
    // bits are shuffled over the example, so conditioning positions are scattered.
    const span = rng.int(0, n - 1);
    const start = rng.int(0, n - span);
    const bits = mask.subarray(0, n).fill(0);
    bits.fill(1, start, start + span);
    if (rng.float() < 0.5) shuffle(bits, rng);
    if (unconditional > 0 && rng.float() < unconditional) bits.fill(0);
    for (let p = 0; p < n; p++) condMask[row + p] = bits[p]!;
  }
  let longest = 0;
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    longest = Math.max(longest, own[b]!);
    tokens += own[b]!;
  }
  let counted = 0;
  for (let b = 0; b < B; b++) {
    const length = rng.int(own[b]!, longest);
    lengths[b] = length;
    for (let p = 0; p < length; p++) {
      const i = b * L + p;
      if (condMask[i] === 0) {
        diffMask[i] = 1;
        counted++;
      }
    }
  }
  if (counted > 0) {
    const w = 1 / counted;
    for (let i = 0; i < B * L; i++) if (diffMask[i] === 1) rowWeight[i] = w;
  }
  return { ids, lengths, condMask, diffMask, rowWeight, tokens, batchSize: B, length: L };
}

/**
 * Encodes texts with the tokenizer (subword sampling on by default, as the seed trains) and collates
 * them with {@linkcode collateIds}.
 *
 * @example Usage
 * ```ts
 * import { Collator } from "./collate.ts";
 * import { Xoshiro128 } from "./xoshiro128.ts";
 *
 * // A character-level stand-in for a trained Tokenizer: ids 4… for letters, EOS 1, pad 2.
 * const tokenizer = {
 *   eosId: 1,
 *   padId: 2,
 *   encode: (text: string) => [...text].map((c) => c.charCodeAt(0) - 93),
 * };
 * const collator = new Collator(tokenizer, { cropLength: 8 });
 * const batch = collator.collate(["abc", "hello world"], new Xoshiro128(1));
 * console.log(batch.ids.length); // 16: B = 2 rows of L = 8
 * ```
 */
export class Collator {
  #tokenizer: BatchTokenizer;
  #cropLength: number;
  #sample: boolean;
  #alpha: number;
  #unconditional: number;

  /**
   * Creates a collator.
   *
   * @param tokenizer Encodes the texts; supplies EOS and pad ids.
   * @param options Crop length and subword sampling.
   * @throws {RangeError} If `cropLength` is not a positive integer, or `alpha` or `unconditional` is not in
   *   [0, 1].
   */
  constructor(tokenizer: BatchTokenizer, options: CollatorOptions = {}) {
    const { cropLength = 64, sample = true, alpha = 0.1, unconditional = 0 } = options;
    checkCropLength(cropLength);
    checkUnconditional(unconditional);
    if (!(alpha >= 0 && alpha <= 1)) {
      throw new RangeError(`Cannot create a collator with alpha ${alpha}: it must be in [0, 1]`);
    }
    this.#tokenizer = tokenizer;
    this.#cropLength = cropLength;
    this.#sample = sample;
    this.#alpha = alpha;
    this.#unconditional = unconditional;
  }

  /**
   * L, the crop length of every batch.
   *
   * @example Usage
   * ```ts
   * import { Collator } from "./collate.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: () => [] };
   * console.log(new Collator(tokenizer).cropLength); // 64
   * ```
   * @returns The crop length.
   */
  get cropLength(): number {
    return this.#cropLength;
  }

  /**
   * Encodes and collates texts into one batch.
   *
   * @example Usage
   * ```ts
   * import { Collator } from "./collate.ts";
   * import { Xoshiro128 } from "./xoshiro128.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: (t: string) => t.split(" ").map((w) => 4 + w.length) };
   * const batch = new Collator(tokenizer, { cropLength: 4 }).collate(["a bb"], new Xoshiro128(0));
   * console.log([...batch.ids]); // [5, 6, 1, 2]
   * ```
   * @param texts The examples, B of them.
   * @param rng The generator for the masks and lengths.
   * @returns The batch.
   * @throws {RangeError} If `texts` is empty.
   * @throws {TypeError} If the tokenizer returns an id that is not a 32-bit integer.
   */
  collate(texts: readonly string[], rng: Xoshiro128): Batch {
    // Sampling seeds come from the batch's generator, so a resumed stream segments text the same way.
    const examples = texts.map((text) =>
      this.#tokenizer.encode(
        text,
        this.#sample ? { sample: true, alpha: this.#alpha, seed: rng.nextUint32() } : { sample: false },
      )
    );
    return collateIds(examples, rng, {
      eosId: this.#tokenizer.eosId,
      padId: this.#tokenizer.padId,
      cropLength: this.#cropLength,
      unconditional: this.#unconditional,
    });
  }
}
