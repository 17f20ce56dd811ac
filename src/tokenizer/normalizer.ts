/**
 * The normalizer stored in a SentencePiece model: a precompiled character map (a Darts-clone
 * double-array trie over UTF-8 bytes whose values point into a table of NUL-terminated replacement
 * strings), applied greedily by longest match, followed by the whitespace rules (drop leading, trailing
 * and repeated spaces, add the dummy prefix, write spaces as `▁`). Works on UTF-8 bytes end to end.
 *
 * Vocabulary: a *prefix* is what one step of the normalizer consumes at a position (a user-defined
 * symbol, the longest charsmap key, or one UTF-8 character); its *replacement* is what it emits.
 *
 * @module
 */
import { NORMALIZER_SPEC_DEFAULTS, type NormalizerSpec } from "./model_proto.ts";

const SPACE = 0x20;
/** `▁` (U+2581) in UTF-8. */
const META_SPACE = [0xe2, 0x96, 0x81] as const;
const REPLACEMENT_CHAR = [0xef, 0xbf, 0xbd] as const;

/** Byte length of a UTF-8 character from its lead byte, as SentencePiece's `OneCharLen` computes it. */
export function oneCharLength(lead: number): number {
  return lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

/**
 * Length of the valid UTF-8 character at `pos`, or 0 if the bytes there are malformed (overlong forms,
 * surrogates and code points above U+10FFFF count as malformed, as in SentencePiece).
 */
export function validCharLength(src: Uint8Array, pos: number, end: number): number {
  const b0 = src[pos]!;
  if (b0 < 0x80) return 1;
  if (b0 < 0xc2) return 0;
  if (b0 < 0xe0) {
    if (pos + 1 >= end) return 0;
    return (src[pos + 1]! & 0xc0) === 0x80 ? 2 : 0;
  }
  if (b0 < 0xf0) {
    if (pos + 2 >= end) return 0;
    const b1 = src[pos + 1]!;
    const b2 = src[pos + 2]!;
    if ((b1 & 0xc0) !== 0x80 || (b2 & 0xc0) !== 0x80) return 0;
    if (b0 === 0xe0 && b1 < 0xa0) return 0;
    if (b0 === 0xed && b1 >= 0xa0) return 0;
    return 3;
  }
  if (b0 < 0xf5) {
    if (pos + 3 >= end) return 0;
    const b1 = src[pos + 1]!;
    if ((b1 & 0xc0) !== 0x80 || (src[pos + 2]! & 0xc0) !== 0x80 || (src[pos + 3]! & 0xc0) !== 0x80) return 0;
    if (b0 === 0xf0 && b1 < 0x90) return 0;
    if (b0 === 0xf4 && b1 >= 0x90) return 0;
    return 4;
  }
  return 0;
}

/**
 * Decodes a run of byte-piece bytes as UTF-8; each malformed byte becomes U+FFFD.
 *
 * @example Usage
 * ```ts
 * import { decodeBytePieces } from "./normalizer.ts";
 * console.log(decodeBytePieces([0x68, 0xc3, 0xa9, 0xff])); // "hé\ufffd"
 * ```
 * @param bytes The bytes of consecutive byte pieces.
 * @returns The text.
 */
export function decodeBytePieces(bytes: number[]): string {
  const src = Uint8Array.from(bytes);
  let text = "";
  for (let pos = 0; pos < src.length;) {
    const n = validCharLength(src, pos, src.length);
    if (n === 0) {
      text += "\ufffd";
      pos++;
    } else {
      text += UTF8_DECODER.decode(src.subarray(pos, pos + n));
      pos += n;
    }
  }
  return text;
}

/**
 * Longest-match lookup of byte strings (user-defined symbols). A small trie over bytes; matches are
 * reported as lengths.
 */
export class BytePrefixMatcher {
  #children: Map<number, number>[] = [new Map()];
  #terminal: boolean[] = [false];
  #values: number[] = [-1];
  #first = new Uint8Array(256);
  /** Number of distinct keys. */
  readonly size: number;
  /** The value of the key found by the last successful {@linkcode BytePrefixMatcher.match}. */
  value = -1;

  /**
   * @param keys The strings to match, as UTF-8 bytes.
   * @param values A value per key (default: the key's index).
   */
  constructor(keys: Uint8Array[], values?: readonly number[]) {
    let count = 0;
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      if (key.length === 0) continue;
      let node = 0;
      for (const b of key) {
        let child = this.#children[node]!.get(b);
        if (child === undefined) {
          child = this.#children.length;
          this.#children.push(new Map());
          this.#terminal.push(false);
          this.#values.push(-1);
          this.#children[node]!.set(b, child);
        }
        node = child;
      }
      if (!this.#terminal[node]) count++;
      this.#terminal[node] = true;
      this.#values[node] = values?.[k] ?? k;
      this.#first[key[0]!] = 1;
    }
    this.size = count;
  }

  /** Length in bytes of the longest key that starts at `pos`, or 0 when none does. */
  match(src: Uint8Array, pos: number, end: number): number {
    if (this.#first[src[pos]!] === 0) return 0;
    let node = 0;
    let longest = 0;
    for (let i = pos; i < end; i++) {
      const child = this.#children[node]!.get(src[i]!);
      if (child === undefined) break;
      node = child;
      if (this.#terminal[node]) {
        longest = i + 1 - pos;
        this.value = this.#values[node]!;
      }
    }
    return longest;
  }
}

/**
 * A growable byte buffer, reused across calls by {@linkcode Normalizer}.
 *
 * @example Usage
 * ```ts
 * import { Normalizer } from "@difflm/core/tokenizer";
 * const buf = new Normalizer({}).normalizeToBytes("a b");
 * console.log(new TextDecoder().decode(buf.bytes.subarray(0, buf.length))); // "▁a▁b"
 * ```
 */
export class ByteBuffer {
  /** The storage; valid bytes are `[0, length)`. */
  bytes: Uint8Array = new Uint8Array(256);
  /** Number of valid bytes. */
  length = 0;

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }
}

const UTF8_ENCODER = new TextEncoder();
const UTF8_DECODER = new TextDecoder();

/**
 * Normalizes text as the reference SentencePiece normalizer does with a given `NormalizerSpec`.
 *
 * @example Usage
 * ```ts
 * import { Normalizer, parseModelProto, trainTokenizer } from "@difflm/core/tokenizer";
 * const proto = parseModelProto(await trainTokenizer({ corpus: ["a cat sat on the mat"], vocabSize: 30 }));
 * const normalizer = new Normalizer(proto.normalizerSpec);
 * console.log(normalizer.normalize("  ﬁnal   word ")); // "▁final▁word"
 * ```
 */
export class Normalizer {
  readonly #units: Uint32Array | null;
  readonly #replacements: Uint8Array;
  /** For each byte value: whether some charsmap key starts with it. */
  readonly #keyStart = new Uint8Array(256);
  readonly #userSymbols: BytePrefixMatcher | null;
  readonly #addDummyPrefix: boolean;
  readonly #removeExtraWhitespaces: boolean;
  readonly #escapeWhitespaces: boolean;
  readonly #treatWhitespaceAsSuffix: boolean;
  #input = new Uint8Array(1024);
  readonly #out = new ByteBuffer();

  /**
   * Prepares the character map and whitespace rules of a spec.
   *
   * @param spec The model's normalizer spec (absent flags take their proto2 defaults).
   * @param options `userSymbols`: strings copied through unchanged (the model's user-defined pieces);
   *   `treatWhitespaceAsSuffix`: put the dummy `▁` at the end instead of the start.
   */
  constructor(
    spec: NormalizerSpec,
    options: { userSymbols?: readonly string[]; treatWhitespaceAsSuffix?: boolean } = {},
  ) {
    this.#addDummyPrefix = spec.addDummyPrefix ?? NORMALIZER_SPEC_DEFAULTS.addDummyPrefix;
    this.#removeExtraWhitespaces = spec.removeExtraWhitespaces ??
      NORMALIZER_SPEC_DEFAULTS.removeExtraWhitespaces;
    this.#escapeWhitespaces = spec.escapeWhitespaces ?? NORMALIZER_SPEC_DEFAULTS.escapeWhitespaces;
    this.#treatWhitespaceAsSuffix = options.treatWhitespaceAsSuffix ?? false;
    const blob = spec.precompiledCharsmap;
    if (blob !== undefined && blob.length >= 4) {
      const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
      const trieSize = view.getUint32(0, true);
      // Copy so that the units are 4-byte aligned whatever the blob's offset.
      this.#units = new Uint32Array(trieSize / 4);
      for (let i = 0; i < this.#units.length; i++) this.#units[i] = view.getUint32(4 + 4 * i, true);
      this.#replacements = blob.slice(4 + trieSize);
      for (let b = 1; b < 256; b++) {
        const node = (offsetOf(this.#units[0]!) ^ b) >>> 0;
        if (node < this.#units.length && labelOf(this.#units[node]!) === b) this.#keyStart[b] = 1;
      }
    } else {
      this.#units = null;
      this.#replacements = new Uint8Array(0);
    }
    const symbols = (options.userSymbols ?? []).map((s) => UTF8_ENCODER.encode(s));
    this.#userSymbols = symbols.length > 0 ? new BytePrefixMatcher(symbols) : null;
  }

  /**
   * Normalizes `text` and returns the result as a string (spaces shown as `▁` when escaping is on).
   *
   * @example Usage
   * ```ts
   * import { Normalizer } from "@difflm/core/tokenizer";
   * console.log(new Normalizer({}).normalize("  hello   world ")); // "▁hello▁world"
   * ```
   * @param text The input text.
   * @returns The normalized text.
   */
  normalize(text: string): string {
    const out = this.normalizeToBytes(text);
    return UTF8_DECODER.decode(out.bytes.subarray(0, out.length));
  }

  /**
   * Normalizes `text` into an internal buffer and returns it; the buffer is overwritten by the next
   * call. Bytes `[0, length)` hold the normalized UTF-8.
   *
   * @param text The input text.
   * @returns The shared output buffer.
   */
  normalizeToBytes(text: string): ByteBuffer {
    // A JS string of n UTF-16 units takes at most 3n UTF-8 bytes.
    if (this.#input.length < text.length * 3) this.#input = new Uint8Array(text.length * 3 + 16);
    const { written } = UTF8_ENCODER.encodeInto(text, this.#input);
    return this.normalizeBytes(this.#input, written);
  }

  /**
   * Normalizes `src[0, length)` (UTF-8, possibly malformed: each bad byte becomes U+FFFD) into the
   * internal buffer and returns it.
   *
   * @param src Input bytes.
   * @param length Number of input bytes.
   * @returns The shared output buffer.
   */
  normalizeBytes(src: Uint8Array, length: number): ByteBuffer {
    const out = this.#out;
    out.length = 0;
    let pos = 0;
    const removeExtra = this.#removeExtraWhitespaces;
    if (removeExtra) {
      // Skip leading input whose replacement is exactly one space.
      while (pos < length) {
        const consumed = this.#prefix(src, pos, length);
        if (!(this.#replLength === 1 && this.#replBytes[this.#replStart] === SPACE)) break;
        pos += consumed;
      }
    }
    if (pos >= length) return out;
    out.reserve(length * 3 + 8);
    if (!this.#treatWhitespaceAsSuffix && this.#addDummyPrefix) this.#writeSpace(out);
    let prevIsSpace = removeExtra;
    while (pos < length) {
      const consumed = this.#prefix(src, pos, length);
      const bytes = this.#replBytes;
      let start = this.#replStart;
      const end = start + this.#replLength;
      if (prevIsSpace) { while (start < end && bytes[start] === SPACE) start++; }
      if (start < end) {
        out.reserve((end - start) * 3);
        for (let i = start; i < end; i++) {
          const b = bytes[i]!;
          if (b === SPACE && this.#escapeWhitespaces) this.#writeSpace(out);
          else out.bytes[out.length++] = b;
        }
        prevIsSpace = bytes[end - 1] === SPACE;
      }
      pos += consumed;
      if (!removeExtra) prevIsSpace = false;
    }
    if (removeExtra) {
      if (this.#escapeWhitespaces) {
        while (
          out.length >= 3 && out.bytes[out.length - 3] === META_SPACE[0] &&
          out.bytes[out.length - 2] === META_SPACE[1] && out.bytes[out.length - 1] === META_SPACE[2]
        ) out.length -= 3;
      } else {
        while (out.length > 0 && out.bytes[out.length - 1] === SPACE) out.length--;
      }
    }
    if (this.#treatWhitespaceAsSuffix && this.#addDummyPrefix) {
      out.reserve(3);
      this.#writeSpace(out);
    }
    return out;
  }

  // The replacement of the last #prefix call: bytes [#replStart, #replStart + #replLength) of #replBytes.
  #replBytes: Uint8Array = new Uint8Array(0);
  #replStart = 0;
  #replLength = 0;

  /** One normalizer step at `pos`: sets the replacement and returns the number of bytes consumed. */
  #prefix(src: Uint8Array, pos: number, end: number): number {
    if (this.#userSymbols !== null) {
      const n = this.#userSymbols.match(src, pos, end);
      if (n > 0) {
        this.#replBytes = src;
        this.#replStart = pos;
        this.#replLength = n;
        return n;
      }
    }
    const units = this.#units;
    if (units !== null && this.#keyStart[src[pos]!] === 1) {
      let node = offsetOf(units[0]!);
      let longestLength = 0;
      let longestValue = 0;
      for (let i = pos; i < end; i++) {
        const c = src[i]!;
        node = (node ^ c) >>> 0;
        if (node >= units.length) break;
        const unit = units[node]!;
        if (labelOf(unit) !== c) break;
        node = (node ^ offsetOf(unit)) >>> 0;
        if ((unit >>> 8) & 1) {
          longestLength = i + 1 - pos;
          longestValue = units[node]! & 0x7fffffff;
        }
      }
      if (longestLength > 0) {
        const table = this.#replacements;
        let stop = longestValue;
        while (stop < table.length && table[stop] !== 0) stop++;
        this.#replBytes = table;
        this.#replStart = longestValue;
        this.#replLength = stop - longestValue;
        return longestLength;
      }
    }
    const n = validCharLength(src, pos, end);
    if (n === 0) {
      this.#replBytes = REPLACEMENT_BYTES;
      this.#replStart = 0;
      this.#replLength = 3;
      return 1;
    }
    this.#replBytes = src;
    this.#replStart = pos;
    this.#replLength = n;
    return n;
  }

  #writeSpace(out: ByteBuffer): void {
    if (this.#escapeWhitespaces) {
      out.bytes[out.length++] = META_SPACE[0];
      out.bytes[out.length++] = META_SPACE[1];
      out.bytes[out.length++] = META_SPACE[2];
    } else {
      out.bytes[out.length++] = SPACE;
    }
  }
}

const REPLACEMENT_BYTES = new Uint8Array(REPLACEMENT_CHAR);

function offsetOf(unit: number): number {
  return ((unit >>> 10) << ((unit & 0x200) >>> 6)) >>> 0;
}

function labelOf(unit: number): number {
  return (unit & 0x800000ff) >>> 0;
}
