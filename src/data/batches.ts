/**
 * The training data stream: shuffled lines of a corpus, encoded and collated into static-shape batches,
 * epoch after epoch, resumable from a small JSON state. Pure TypeScript, CPU only.
 *
 * How lines become batches: the epochs' permutations are laid end to end as one endless sequence of
 * examples, and batch k takes examples [k·B, (k+1)·B) of it. No line is dropped and every batch has
 * exactly B rows; the last batch of an epoch is completed with the first lines of the next epoch's
 * permutation. Batch k belongs to the epoch in which its first example lies. Everything random is a
 * function of the seed and the batch number (epoch e shuffles with stream [1, e], batch k collates with
 * stream [2, k]), so the state is just that number. Subword sampling draws from the tokenizer's own
 * generator, which the caller saves beside this state for an exact resume.
 *
 * @module
 */
import type { CorpusIndex } from "./corpus_index.ts";
import { type Batch, type BatchTokenizer, Collator, type CollatorOptions } from "./collate.ts";
import { epochPermutation } from "./shuffle.ts";
import { Xoshiro128 } from "./xoshiro128.ts";

/** Stream key of each batch's collate generator (see the `stream` argument of {@linkcode Xoshiro128}). */
const COLLATE_STREAM = 2;
/** Permutations kept in memory: a batch spans at most two epochs unless the corpus is smaller than B. */
const CACHED_PERMUTATIONS = 2;

/** Options of {@linkcode BatchStream}: the batch size, the order, and the {@linkcode Collator}'s options. */
export interface BatchStreamOptions extends CollatorOptions {
  /** B, examples per batch. */
  batchSize: number;
  /**
   * Seed of the shuffles and the masks, a non-negative integer.
   *
   * @default {0}
   */
  seed?: number;
  /** The corpus lines to draw from (for example the `train` part of a split); all lines by default. */
  indices?: ArrayLike<number>;
}

/** Where a {@linkcode BatchStream} stands: JSON-serialisable, saved in checkpoints. */
export interface BatchStreamState {
  /** The stream's seed. */
  seed: number;
  /** Batches produced so far: the number of the next batch. */
  batch: number;
  /** Lines the stream draws from (checked on restore). */
  lineCount: number;
  /** B (checked on restore). */
  batchSize: number;
}

/**
 * Yields training batches in a per-epoch shuffled order, forever, and can resume from its
 * {@linkcode BatchStream.prototype.state}. Iterating it with `for await` gives the rest of the current
 * epoch; {@linkcode BatchStream.prototype.next} gives the next batch whatever its epoch.
 *
 * @example Usage
 * ```ts
 * import { BatchStream } from "./batches.ts";
 * import { CorpusIndex } from "./corpus_index.ts";
 * import assert from "node:assert/strict";
 *
 * const corpus = CorpusIndex.fromLines(["a b", "c d e", "f", "g h", "i"]);
 * const tokenizer = { eosId: 1, padId: 2, encode: (t: string) => t.split(" ").map((w) => w.charCodeAt(0)) };
 * const stream = new BatchStream(corpus, tokenizer, { batchSize: 2, cropLength: 8, seed: 1 });
 * let batches = 0;
 * for await (const batch of stream) {
 *   assert.equal(batch.ids.length, 2 * 8);
 *   batches++;
 * }
 * assert.equal(batches, 3); // ⌈5 / 2⌉ batches start in epoch 0
 * assert.equal(stream.epoch, 1);
 *
 * const saved = stream.state();
 * const expected = await stream.next();
 * const resumed = new BatchStream(corpus, tokenizer, { batchSize: 2, cropLength: 8, seed: 1 });
 * resumed.restore(saved);
 * assert.deepEqual((await resumed.next()).ids, expected.ids);
 * ```
 */
export class BatchStream {
  #corpus: CorpusIndex;
  #collator: Collator;
  #indices: Uint32Array<ArrayBuffer> | undefined;
  #lineCount: number;
  #batchSize: number;
  #seed: number;
  #batch = 0;
  #permutations = new Map<number, Uint32Array<ArrayBuffer>>();

  /**
   * Creates a stream positioned at the first batch of epoch 0.
   *
   * @param corpus The corpus to read lines from.
   * @param tokenizer Encodes lines; supplies EOS and pad ids.
   * @param options Batch size, crop length, seed, line subset, subword sampling.
   * @throws {RangeError} If `batchSize` is not a positive integer, the seed is invalid, `indices` is empty
   *   or holds an index outside the corpus, or a collate option is out of range.
   */
  constructor(corpus: CorpusIndex, tokenizer: BatchTokenizer, options: BatchStreamOptions) {
    const { batchSize, cropLength = 64, seed = 0, indices, sample = true, alpha = 0.1, unconditional = 0 } =
      options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(
        `Cannot create a batch stream with batchSize ${batchSize}: it must be a positive integer`,
      );
    }
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(
        `Cannot create a batch stream with seed ${seed}: it must be a non-negative integer`,
      );
    }
    this.#collator = new Collator(tokenizer, { cropLength, sample, alpha, unconditional });
    this.#corpus = corpus;
    this.#batchSize = batchSize;
    this.#seed = seed;
    if (indices === undefined) {
      this.#lineCount = corpus.lineCount;
    } else {
      if (indices.length === 0) {
        throw new RangeError("Cannot create a batch stream over no lines: indices is empty");
      }
      const copy = new Uint32Array(indices.length);
      for (let k = 0; k < indices.length; k++) {
        const i = indices[k]!;
        if (!Number.isInteger(i) || i < 0 || i >= corpus.lineCount) {
          throw new RangeError(
            `Cannot create a batch stream: line index ${i} is outside the corpus's ${corpus.lineCount} lines`,
          );
        }
        copy[k] = i;
      }
      this.#indices = copy;
      this.#lineCount = copy.length;
    }
  }

  /**
   * The epoch of the next batch (0-based). Epochs with no batch starting in them (only when the corpus
   * has fewer lines than B) are skipped.
   *
   * @example Usage
   * ```ts
   * import { BatchStream } from "./batches.ts";
   * import { CorpusIndex } from "./corpus_index.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: () => [5] };
   * const stream = new BatchStream(CorpusIndex.fromLines(["a", "b", "c"]), tokenizer, { batchSize: 2 });
   * await stream.next();
   * await stream.next();
   * console.log(stream.epoch); // 1: batch 2 starts at example 4, in the second pass over 3 lines
   * ```
   * @returns The epoch number.
   */
  get epoch(): number {
    return this.#epochOf(this.#batch);
  }

  /**
   * The index of the next batch within its epoch (0 at the start of an epoch).
   *
   * @example Usage
   * ```ts
   * import { BatchStream } from "./batches.ts";
   * import { CorpusIndex } from "./corpus_index.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: () => [5] };
   * const stream = new BatchStream(CorpusIndex.fromLines(["a", "b", "c"]), tokenizer, { batchSize: 1 });
   * await stream.next();
   * console.log(stream.position); // 1
   * ```
   * @returns The position in the epoch.
   */
  get position(): number {
    return this.#batch - this.#firstBatchOf(this.epoch);
  }

  /**
   * Batches produced since the start of the run: the number of the next batch.
   *
   * @example Usage
   * ```ts
   * import { BatchStream } from "./batches.ts";
   * import { CorpusIndex } from "./corpus_index.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: () => [5] };
   * const stream = new BatchStream(CorpusIndex.fromLines(["a"]), tokenizer, { batchSize: 4 });
   * console.log(stream.batchIndex); // 0
   * ```
   * @returns The batch count.
   */
  get batchIndex(): number {
    return this.#batch;
  }

  /**
   * The number of batches that start in an epoch: ⌈(e+1)·N/B⌉ − ⌈e·N/B⌉ for N lines, so ⌈N/B⌉ or one
   * fewer.
   *
   * @example Usage
   * ```ts
   * import { BatchStream } from "./batches.ts";
   * import { CorpusIndex } from "./corpus_index.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: () => [5] };
   * const lines = Array.from({ length: 10 }, (_, i) => `line ${i}`);
   * const stream = new BatchStream(CorpusIndex.fromLines(lines), tokenizer, { batchSize: 4 });
   * console.log(stream.batchesInEpoch(0), stream.batchesInEpoch(1)); // 3 2
   * ```
   * @param epoch A non-negative epoch number.
   * @returns The batch count of that epoch.
   */
  batchesInEpoch(epoch: number): number {
    return this.#firstBatchOf(epoch + 1) - this.#firstBatchOf(epoch);
  }

  /**
   * Produces the next batch: reads its lines, encodes them and collates.
   *
   * @example Usage
   * ```ts
   * import { BatchStream } from "./batches.ts";
   * import { CorpusIndex } from "./corpus_index.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: (t: string) => [t.length + 3] };
   * const stream = new BatchStream(CorpusIndex.fromLines(["a", "bb"]), tokenizer, { batchSize: 2, cropLength: 4 });
   * const batch = await stream.next();
   * console.log(batch.batchSize, batch.length); // 2 4
   * ```
   * @returns The batch.
   */
  async next(): Promise<Batch> {
    const k = this.#batch;
    const B = this.#batchSize;
    const lines = new Array<number>(B);
    for (let r = 0; r < B; r++) {
      const example = k * B + r;
      const epoch = Math.floor(example / this.#lineCount);
      const j = this.#permutation(epoch)[example - epoch * this.#lineCount]!;
      lines[r] = this.#indices === undefined ? j : this.#indices[j]!;
    }
    const texts = await this.#corpus.readLines(lines);
    const batch = this.#collator.collate(texts, new Xoshiro128(this.#seed, [COLLATE_STREAM, k]));
    this.#batch = k + 1;
    return batch;
  }

  /**
   * Yields the remaining batches of the current epoch; the stream then stands at the next epoch.
   *
   * @example Usage
   * ```ts
   * import { BatchStream } from "./batches.ts";
   * import { CorpusIndex } from "./corpus_index.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: () => [5] };
   * const stream = new BatchStream(CorpusIndex.fromLines(["a", "b", "c"]), tokenizer, { batchSize: 2 });
   * for (let epoch = 0; epoch < 2; epoch++) {
   *   let count = 0;
   *   for await (const _batch of stream) count++;
   *   console.log(`epoch ${epoch}: ${count} batches`); // "epoch 0: 2 batches", then "epoch 1: 1 batches"
   * }
   * ```
   * @returns An async iterator over the epoch's batches.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    const epoch = this.epoch;
    while (this.epoch === epoch) yield await this.next();
  }

  /**
   * Returns where the stream stands, to save in a checkpoint.
   *
   * @example Usage
   * ```ts
   * import { BatchStream } from "./batches.ts";
   * import { CorpusIndex } from "./corpus_index.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: () => [5] };
   * const stream = new BatchStream(CorpusIndex.fromLines(["a", "b"]), tokenizer, { batchSize: 1, seed: 9 });
   * await stream.next();
   * console.log(JSON.stringify(stream.state())); // {"seed":9,"batch":1,"lineCount":2,"batchSize":1}
   * ```
   * @returns A JSON-serialisable state.
   */
  state(): BatchStreamState {
    return { seed: this.#seed, batch: this.#batch, lineCount: this.#lineCount, batchSize: this.#batchSize };
  }

  /**
   * Moves the stream to a saved state: the next batch is the one that followed it when it was saved
   * (same lines, same masks and lengths; same subword samples if the tokenizer's generator was restored
   * too). The seed is taken from the state.
   *
   * @example Usage
   * ```ts
   * import { BatchStream } from "./batches.ts";
   * import { CorpusIndex } from "./corpus_index.ts";
   * const tokenizer = { eosId: 1, padId: 2, encode: () => [5] };
   * const stream = new BatchStream(CorpusIndex.fromLines(["a", "b"]), tokenizer, { batchSize: 1 });
   * stream.restore({ seed: 3, batch: 5, lineCount: 2, batchSize: 1 });
   * console.log(stream.epoch, stream.position); // 2 1
   * ```
   * @param state A state from {@linkcode BatchStream.prototype.state}, possibly parsed from JSON.
   * @throws {TypeError} If `state` lacks a field or a field is not a number.
   * @throws {RangeError} If the state was saved over a different number of lines or batch size, or a
   *   field is out of range.
   */
  restore(state: BatchStreamState): void {
    const fields = ["seed", "batch", "lineCount", "batchSize"] as const;
    for (const field of fields) {
      if (typeof state?.[field] !== "number") {
        throw new TypeError(
          `Cannot restore the batch stream: state.${field} must be a number, got ${state?.[field]}`,
        );
      }
    }
    if (state.lineCount !== this.#lineCount || state.batchSize !== this.#batchSize) {
      throw new RangeError(
        `Cannot restore the batch stream: it was saved over ${state.lineCount} lines in batches of ${state.batchSize}, ` +
          `this one has ${this.#lineCount} lines in batches of ${this.#batchSize}`,
      );
    }
    if (
      !Number.isSafeInteger(state.batch) || state.batch < 0 || !Number.isSafeInteger(state.seed) ||
      state.seed < 0
    ) {
      throw new RangeError(
        `Cannot restore the batch stream: seed and batch must be non-negative integers, got ${state.seed} and ${state.batch}`,
      );
    }
    if (state.seed !== this.#seed) this.#permutations.clear();
    this.#seed = state.seed;
    this.#batch = state.batch;
  }

  #epochOf(batch: number): number {
    return Math.floor((batch * this.#batchSize) / this.#lineCount);
  }

  /** The first batch whose first example lies in `epoch`: ⌈epoch·N / B⌉. */
  #firstBatchOf(epoch: number): number {
    return Math.ceil((epoch * this.#lineCount) / this.#batchSize);
  }

  #permutation(epoch: number): Uint32Array<ArrayBuffer> {
    let p = this.#permutations.get(epoch);
    if (p === undefined) {
      p = epochPermutation(this.#lineCount, { seed: this.#seed, epoch });
      this.#permutations.set(epoch, p);
      // Keep the newest few: epochs only move forward while training.
      for (const old of this.#permutations.keys()) {
        if (this.#permutations.size <= CACHED_PERMUTATIONS) break;
        if (old !== epoch) this.#permutations.delete(old);
      }
    }
    return p;
  }
}
