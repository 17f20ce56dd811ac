/**
 * The corpus index: byte offset and length of every non-empty line of a UTF-8 text file, one example
 * per line, found by streaming the file in chunks, so a corpus of any size is never loaded whole. Lines
 * are read back by offset when a batch needs them. An in-memory variant serves the built-in corpus.
 * Pure TypeScript on Deno's file API; imports nothing from the model or the GPU.
 *
 * Line rules: `\n` ends a line and a `\r` before it is dropped (CRLF); a UTF-8 byte order mark at the
 * start of the file is skipped; leading and trailing whitespace is removed (as the seed's `strip()`);
 * lines that are then empty are skipped; a final line without a newline counts.
 *
 * @module
 */
import { shuffle } from "./shuffle.ts";
import { Xoshiro128 } from "./xoshiro128.ts";

/** Bytes read per call while indexing. */
const DEFAULT_CHUNK_SIZE = 1 << 20;
/** Two wanted lines closer than this many bytes are fetched with one read. */
const MAX_READ_GAP = 64 << 10;
/** A grouped read never spans more than this many bytes (a longer single line is read alone). */
const MAX_READ_SPAN = 1 << 20;
const NEWLINE = 0x0a;
/** Stream key of the held-out split (see the `stream` argument of {@linkcode Xoshiro128}). */
const SPLIT_STREAM = 3;

/** Options of {@linkcode CorpusIndex.build}. */
export interface CorpusIndexBuildOptions {
  /**
   * Bytes read from the file per call while indexing.
   *
   * @default {1048576}
   */
  chunkSize?: number;
}

/** Line indices of a held-out split, each list sorted ascending. */
export interface CorpusSplit {
  /** Lines to train on. */
  train: number[];
  /** Lines kept aside for evaluation. */
  heldOut: number[];
}

/** True for the ASCII whitespace bytes: tab, line feed, vertical tab, form feed, carriage return, space. */
function isSpaceByte(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

/** Rethrows a file-system error with a message that names the corpus, keeping the error's class. */
function corpusFileError(path: string, action: string, error: unknown): Error {
  if (error instanceof Error) {
    const Class = error.constructor as new (message: string, options?: ErrorOptions) => Error;
    const detail = error instanceof Deno.errors.NotFound ? "no such file" : error.message;
    try {
      const wrapped = new Class(`Cannot ${action} corpus "${path}": ${detail}`, { cause: error });
      wrapped.name = error.name;
      return wrapped;
    } catch {
      return new Error(`Cannot ${action} corpus "${path}": ${detail}`, { cause: error });
    }
  }
  return new Error(`Cannot ${action} corpus "${path}": ${String(error)}`, { cause: error });
}

/** Two growable columns: offset (float64, files may exceed 4 GiB) and length (uint32) per line. */
class LineColumns {
  offsets = new Float64Array(1024);
  lengths = new Uint32Array(1024);
  count = 0;

  push(offset: number, length: number): void {
    if (this.count === this.offsets.length) {
      const offsets = new Float64Array(this.count * 2);
      offsets.set(this.offsets);
      const lengths = new Uint32Array(this.count * 2);
      lengths.set(this.lengths);
      this.offsets = offsets;
      this.lengths = lengths;
    }
    this.offsets[this.count] = offset;
    this.lengths[this.count] = length;
    this.count++;
  }
}

/**
 * An index of the non-empty lines of a UTF-8 corpus, one example per line. Built by streaming a file
 * ({@linkcode CorpusIndex.build}) or from strings ({@linkcode CorpusIndex.fromLines}); lines are then
 * read by index. A file index keeps 12 bytes per line and reopens the file for each read.
 *
 * @example Usage
 * ```ts
 * import { CorpusIndex } from "./corpus_index.ts";
 * import assert from "node:assert/strict";
 *
 * const corpus = CorpusIndex.fromLines(["the dog sleeps .", "", "two cats run ."]);
 * assert.equal(corpus.lineCount, 2);
 * assert.equal(await corpus.readLine(1), "two cats run .");
 * ```
 */
export class CorpusIndex {
  #path: string | undefined;
  #byteLength: number;
  #offsets: Float64Array<ArrayBuffer>;
  #lengths: Uint32Array<ArrayBuffer>;
  #lines: string[] | undefined;

  private constructor(
    path: string | undefined,
    byteLength: number,
    offsets: Float64Array<ArrayBuffer>,
    lengths: Uint32Array<ArrayBuffer>,
    lines: string[] | undefined,
  ) {
    this.#path = path;
    this.#byteLength = byteLength;
    this.#offsets = offsets;
    this.#lengths = lengths;
    this.#lines = lines;
  }

  /**
   * Indexes a UTF-8 text file by reading it in chunks. Every line is checked to be valid UTF-8.
   *
   * @example Usage
   * ```ts
   * import { CorpusIndex } from "./corpus_index.ts";
   * import assert from "node:assert/strict";
   *
   * const path = await Deno.makeTempFile();
   * await Deno.writeTextFile(path, "in the beginning\r\n\r\nthe end");
   * const corpus = await CorpusIndex.build(path);
   * assert.deepEqual(await corpus.readLines([1, 0]), ["the end", "in the beginning"]);
   * await Deno.remove(path);
   * ```
   * @param path The corpus file.
   * @param options Chunk size.
   * @returns The index.
   * @throws {Deno.errors.IsADirectory} If the path is a directory.
   * @throws {Deno.errors.NotFound} If the file does not exist (the message names it); other file-system
   *   errors are rethrown with the same class and a message that names the file.
   * @throws {TypeError} If a line is not valid UTF-8 (the message names the file and the line number).
   * @throws {RangeError} If the file has no non-empty line, or `chunkSize` is not a positive integer.
   */
  static async build(path: string, options: CorpusIndexBuildOptions = {}): Promise<CorpusIndex> {
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isInteger(chunkSize) || chunkSize < 1) {
      throw new RangeError(
        `Cannot index corpus "${path}": chunkSize must be a positive integer, got ${chunkSize}`,
      );
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      throw corpusFileError(path, "open", error);
    }
    if ((await file.stat()).isDirectory) {
      file.close();
      throw new Deno.errors.IsADirectory(
        `Cannot index corpus "${path}": it is a directory, expected a text file`,
      );
    }
    const columns = new LineColumns();
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let fileLength = 0;
    let lineNumber = 0;
    const addLine = (bytes: Uint8Array, offset: number): void => {
      lineNumber++;
      let start = 0;
      if (offset === 0 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
      let end = bytes.length;
      while (start < end && isSpaceByte(bytes[start]!)) start++;
      while (end > start && isSpaceByte(bytes[end - 1]!)) end--;
      if (start === end) return;
      const body = bytes.subarray(start, end);
      let text: string | undefined;
      for (let i = 0; i < body.length; i++) {
        if (body[i]! < 0x80) continue;
        try {
          text = decoder.decode(body);
        } catch (error) {
          throw new TypeError(`Cannot index corpus "${path}": line ${lineNumber} is not valid UTF-8`, {
            cause: error,
          });
        }
        break;
      }
      // A line of non-ASCII spaces only (no-break space, ideographic space) is empty too.
      if (text !== undefined && text.trim() === "") return;
      columns.push(offset + start, end - start);
    };
    try {
      let buffer = new Uint8Array(chunkSize);
      let carry = 0; // bytes of an unfinished line at buffer[0, carry)
      let carryOffset = 0; // file offset of buffer[0]
      while (true) {
        if (carry + chunkSize > buffer.length) {
          const grown = new Uint8Array(Math.max(buffer.length * 2, carry + chunkSize));
          grown.set(buffer.subarray(0, carry));
          buffer = grown;
        }
        let read: number | null;
        try {
          read = await file.read(buffer.subarray(carry, carry + chunkSize));
        } catch (error) {
          throw corpusFileError(path, "read", error);
        }
        if (read === null) break;
        fileLength += read;
        const end = carry + read;
        let start = 0;
        let newline = buffer.indexOf(NEWLINE, carry);
        while (newline !== -1 && newline < end) {
          addLine(buffer.subarray(start, newline), carryOffset + start);
          start = newline + 1;
          newline = buffer.indexOf(NEWLINE, start);
        }
        buffer.copyWithin(0, start, end);
        carry = end - start;
        carryOffset += start;
      }
      if (carry > 0) addLine(buffer.subarray(0, carry), carryOffset);
    } finally {
      file.close();
    }
    if (columns.count === 0) {
      throw new RangeError(`Cannot index corpus "${path}": it has no non-empty lines`);
    }
    return new CorpusIndex(
      path,
      fileLength,
      columns.offsets.slice(0, columns.count),
      columns.lengths.slice(0, columns.count),
      undefined,
    );
  }

  /**
   * Indexes lines held in memory (the built-in corpus). The file rules apply: each string is trimmed
   * and empty ones are skipped; a string containing a newline is split at it.
   *
   * @example Usage
   * ```ts
   * import { builtinCorpus } from "@difflm/core";
   * import { CorpusIndex } from "./corpus_index.ts";
   *
   * const corpus = CorpusIndex.fromLines(builtinCorpus({ lines: 100 }));
   * console.log(corpus.lineCount); // 100
   * ```
   * @param lines The examples.
   * @returns The index.
   * @throws {TypeError} If `lines` is not an array.
   * @throws {RangeError} If no line is left after trimming.
   */
  static fromLines(lines: readonly string[]): CorpusIndex {
    if (!Array.isArray(lines)) {
      throw new TypeError(
        `Cannot index an in-memory corpus: expected an array of strings, got ${typeof lines}`,
      );
    }
    const kept: string[] = [];
    for (const entry of lines) {
      for (const line of String(entry).split("\n")) {
        const trimmed = line.trim();
        if (trimmed !== "") kept.push(trimmed);
      }
    }
    if (kept.length === 0) {
      throw new RangeError(
        `Cannot index an in-memory corpus: it has no non-empty lines (got ${lines.length} strings)`,
      );
    }
    return new CorpusIndex(undefined, 0, new Float64Array(0), new Uint32Array(0), kept);
  }

  /**
   * The number of indexed (non-empty) lines.
   *
   * @example Usage
   * ```ts
   * import { CorpusIndex } from "./corpus_index.ts";
   * console.log(CorpusIndex.fromLines(["a", " ", "b"]).lineCount); // 2
   * ```
   * @returns The line count, at least 1.
   */
  get lineCount(): number {
    return this.#lines?.length ?? this.#offsets.length;
  }

  /**
   * The indexed file, or `undefined` for an in-memory corpus.
   *
   * @example Usage
   * ```ts
   * import { CorpusIndex } from "./corpus_index.ts";
   * console.log(CorpusIndex.fromLines(["a"]).path); // undefined
   * ```
   * @returns The path given to {@linkcode CorpusIndex.build}.
   */
  get path(): string | undefined {
    return this.#path;
  }

  /**
   * Reads one line.
   *
   * @example Usage
   * ```ts
   * import { CorpusIndex } from "./corpus_index.ts";
   * console.log(await CorpusIndex.fromLines(["a", "b"]).readLine(1)); // "b"
   * ```
   * @param index A line index in [0, lineCount).
   * @returns The line, trimmed, without its line ending.
   * @throws {RangeError} If `index` is out of range.
   * @throws {Error} If the file changed since it was indexed.
   */
  async readLine(index: number): Promise<string> {
    return (await this.readLines([index]))[0]!;
  }

  /**
   * Reads several lines with few file reads: wanted lines are sorted by offset and lines close to
   * each other are fetched by one read.
   *
   * @example Usage
   * ```ts
   * import { CorpusIndex } from "./corpus_index.ts";
   * import assert from "node:assert/strict";
   *
   * const corpus = CorpusIndex.fromLines(["zero", "one", "two"]);
   * assert.deepEqual(await corpus.readLines([2, 0, 2]), ["two", "zero", "two"]);
   * ```
   * @param indices Line indices in [0, lineCount), in any order, repeats allowed.
   * @returns The lines, in the order of `indices`.
   * @throws {RangeError} If an index is out of range.
   * @throws {Error} If the file changed since it was indexed (its size differs, or a line is no longer
   *   valid UTF-8); file-system errors are rethrown with a message that names the file.
   */
  async readLines(indices: ArrayLike<number>): Promise<string[]> {
    const count = this.lineCount;
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      if (!Number.isInteger(i) || i < 0 || i >= count) {
        throw new RangeError(
          `Cannot read line ${i} of the corpus: index must be an integer in [0, ${count})`,
        );
      }
    }
    if (this.#lines !== undefined) return Array.from(indices, (i) => this.#lines![i]!);
    const path = this.#path!;
    const out = new Array<string>(indices.length);
    if (indices.length === 0) return out;
    const order = Array.from({ length: indices.length }, (_, k) => k);
    order.sort((a, b) => indices[a]! - indices[b]!);
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      throw corpusFileError(path, "open", error);
    }
    try {
      const size = (await file.stat()).size;
      if (size !== this.#byteLength) {
        throw new Error(
          `Cannot read corpus "${path}": it changed since it was indexed (${this.#byteLength} bytes then, ${size} now)`,
        );
      }
      let k = 0;
      while (k < order.length) {
        // One group: consecutive wanted lines (in offset order) with small gaps and a bounded span.
        const first = indices[order[k]!]!;
        const groupStart = this.#offsets[first]!;
        let groupEnd = groupStart + this.#lengths[first]!;
        let last = k + 1;
        while (last < order.length) {
          const i = indices[order[last]!]!;
          const start = this.#offsets[i]!;
          const end = start + this.#lengths[i]!;
          if (start - groupEnd > MAX_READ_GAP || end - groupStart > MAX_READ_SPAN) break;
          groupEnd = Math.max(groupEnd, end);
          last++;
        }
        const bytes = await readAt(file, path, groupStart, groupEnd - groupStart);
        for (; k < last; k++) {
          const i = indices[order[k]!]!;
          const start = this.#offsets[i]! - groupStart;
          const body = bytes.subarray(start, start + this.#lengths[i]!);
          try {
            out[order[k]!] = decoder.decode(body).trim();
          } catch (error) {
            throw new Error(
              `Cannot read line ${i} of corpus "${path}": not valid UTF-8; the file changed since it was indexed`,
              { cause: error },
            );
          }
        }
      }
    } finally {
      file.close();
    }
    return out;
  }

  /**
   * Splits the line indices into training and held-out sets, deterministically for a given seed: a
   * seeded shuffle of all indices, the first `round(fraction · lineCount)` held out (at most
   * lineCount − 1, so that training keeps at least one line).
   *
   * @example Usage
   * ```ts
   * import { CorpusIndex } from "./corpus_index.ts";
   * import assert from "node:assert/strict";
   *
   * const corpus = CorpusIndex.fromLines(Array.from({ length: 100 }, (_, i) => `line ${i}`));
   * const { train, heldOut } = corpus.split(0.1, 1);
   * assert.equal(heldOut.length, 10);
   * assert.equal(train.length, 90);
   * ```
   * @param heldOutFraction Fraction of lines to hold out, in [0, 1).
   * @param seed A non-negative integer.
   * @returns Both index lists, sorted ascending, disjoint, together all lines.
   * @throws {TypeError} If the fraction is not a number.
   * @throws {RangeError} If the fraction is outside [0, 1) or the seed is invalid.
   */
  split(heldOutFraction: number, seed: number): CorpusSplit {
    if (typeof heldOutFraction !== "number") {
      throw new TypeError(
        `Cannot split the corpus with heldOutFraction ${JSON.stringify(heldOutFraction)}: not a number`,
      );
    }
    if (!(heldOutFraction >= 0 && heldOutFraction < 1)) {
      throw new RangeError(
        `Cannot split the corpus with heldOutFraction ${heldOutFraction}: it must be in [0, 1)`,
      );
    }
    const n = this.lineCount;
    const heldCount = Math.min(Math.round(heldOutFraction * n), n - 1);
    const all = Array.from({ length: n }, (_, i) => i);
    shuffle(all, new Xoshiro128(seed, [SPLIT_STREAM]));
    const byNumber = (a: number, b: number) => a - b;
    return { train: all.slice(heldCount).sort(byNumber), heldOut: all.slice(0, heldCount).sort(byNumber) };
  }
}

/** Reads exactly `length` bytes at `offset`. */
async function readAt(file: Deno.FsFile, path: string, offset: number, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < length) {
      const n = await file.read(bytes.subarray(filled));
      if (n === null) {
        throw new Error(
          `Cannot read corpus "${path}": it ended at byte ${
            offset + filled
          }; the file changed since it was indexed`,
        );
      }
      filled += n;
    }
  } catch (error) {
    if (error instanceof Error && error.message.startsWith(`Cannot read corpus "${path}"`)) throw error;
    throw corpusFileError(path, "read", error);
  }
  return bytes;
}
