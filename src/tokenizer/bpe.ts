/**
 * BPE segmentation as SentencePiece does it, with BPE-dropout. There is no merge list: any two adjacent
 * symbols whose concatenation is a piece form a candidate, ranked by that piece's score (higher first,
 * then leftmost). Candidates are found through a pair table built once per model, keyed by the two
 * symbols' ids, so encoding never builds strings.
 *
 * Vocabulary: a *symbol* is a span of the normalized bytes during segmentation; its *symbol id* is the
 * id of the piece it spells, or a pseudo id (≥ vocabulary size) for a character that is not a piece but
 * occurs inside one, or -1 for a character that occurs in no piece (it can never merge).
 *
 * @module
 */
import { PairTable } from "./_pair_table.ts";
import { codePointAt, CodePointTable, type SpanList, type Vocab } from "./_vocab.ts";
import { oneCharLength } from "./normalizer.ts";
import { type RandomSource, uniformDouble } from "./mt19937.ts";
import { PieceType } from "./model_proto.ts";

const META_SPACE = "\u2581";
/** Words kept in the cache before it is emptied, bounding its memory. */
const WORD_CACHE_LIMIT = 1 << 16;

interface CachedWord {
  bytes: Uint8Array;
  starts: Int32Array;
  lens: Int32Array;
  ids: Int32Array;
}

function equalBytes(word: Uint8Array, src: Uint8Array, begin: number): boolean {
  for (let i = 0; i < word.length; i++) if (word[i] !== src[begin + i]) return false;
  return true;
}

/** Options of one BPE encoding. */
export interface BpeEncodeOptions {
  /** Probability of skipping each merge (BPE-dropout); 0 = deterministic. Used as float32. */
  alpha: number;
  /** Random source for the dropout draws; required when 0 < alpha < 1. */
  rng: RandomSource | null;
}

const DETERMINISTIC: BpeEncodeOptions = { alpha: 0, rng: null };

/**
 * A BPE model ready to segment normalized text.
 *
 * @example Usage
 * ```ts
 * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
 * // BpeModel is used through Tokenizer, which picks it for BPE models.
 * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus: ["in the beginning", "in the end"], vocabSize: 30 }));
 * console.log(tok.encodeAsPieces("in the beginning")); // ["▁in", "▁the", "▁", "be", "g", "in", "n", "in", "g"]
 * ```
 */
export class BpeModel {
  readonly #vocab: Vocab;
  readonly #pairs: PairTable;
  /** Symbol id of each character that can take part in a merge, else -1. */
  readonly #charSymbols: CodePointTable;
  readonly #hasUnused: boolean;
  /** Symbol id and output id of each ASCII byte. */
  readonly #asciiSymbols = new Int32Array(128);
  readonly #asciiIds = new Int32Array(128);
  /** Whether words can be segmented independently and cached. */
  readonly #cacheWords: boolean;
  readonly #wordCache = new Map<number, CachedWord>();

  // Per-call scratch, grown as needed. Symbols:
  #symStart = new Int32Array(64);
  #symLen = new Int32Array(64);
  #symId = new Int32Array(64);
  #outId = new Int32Array(64);
  #prev = new Int32Array(64);
  #next = new Int32Array(64);
  #frozen = new Uint8Array(64);
  // Candidates and the heap of candidate indices:
  #candLeft = new Int32Array(64);
  #candRight = new Int32Array(64);
  #candScore = new Float64Array(64);
  #candSize = new Int32Array(64);
  #candMerged = new Int32Array(64);
  #heap = new Int32Array(64);
  #heapSize = 0;
  #candCount = 0;
  /** For UNUSED pieces: [left id, right id, left byte length] of the pair that last formed each one. */
  #revMerge = new Map<number, [number, number, number]>();

  /** @param vocab The model's vocabulary. */
  constructor(vocab: Vocab) {
    this.#vocab = vocab;
    const symbolOf = new Map<string, number>(vocab.mergeable);
    let nextPseudo = vocab.pieces.length;
    const charSymbols = new CodePointTable(-1);
    for (const [piece] of vocab.mergeable) {
      for (const ch of piece) {
        let sym = symbolOf.get(ch);
        if (sym === undefined) {
          sym = nextPseudo++;
          symbolOf.set(ch, sym);
        }
        charSymbols.set(ch.codePointAt(0)!, sym);
      }
    }
    let pairCount = 0;
    for (const [piece] of vocab.mergeable) pairCount += piece.length;
    this.#pairs = new PairTable(pairCount);
    let hasUnused = false;
    for (const [piece, id] of vocab.mergeable) {
      if (vocab.types[id] === PieceType.UNUSED) hasUnused = true;
      const chars = [...piece];
      if (chars.length < 2) continue;
      let left = "";
      for (let i = 1; i < chars.length; i++) {
        left += chars[i - 1];
        const a = symbolOf.get(left);
        const b = symbolOf.get(chars.slice(i).join(""));
        if (a !== undefined && b !== undefined) this.#pairs.set(a, b, id);
      }
    }
    this.#charSymbols = charSymbols;
    this.#hasUnused = hasUnused;
    for (let b = 0; b < 128; b++) {
      this.#asciiSymbols[b] = charSymbols.get(b);
      const id = vocab.charIds.get(b);
      this.#asciiIds[b] = id >= 0 ? id : vocab.unkId;
    }
    const innerSpace = (s: string) => s.indexOf(META_SPACE, 1) >= 0;
    this.#cacheWords = !hasUnused && ![...vocab.mergeable.keys()].some(innerSpace) &&
      !vocab.userSymbols.some((s) => s.includes(META_SPACE));
  }

  /**
   * Segments normalized UTF-8 `src[0, length)` and appends the spans to `out`.
   *
   * @param src Normalized text as UTF-8.
   * @param length Number of valid bytes in `src`.
   * @param options Dropout probability and random source.
   * @param out Receives the spans with their ids (unknown characters get the unknown id).
   */
  encode(src: Uint8Array, length: number, options: BpeEncodeOptions, out: SpanList): void {
    if (length === 0) return;
    if (options.alpha > 0 || !this.#cacheWords) {
      this.#encodeRange(src, 0, length, options, out);
      return;
    }
    // No piece spans a word boundary, so each word (from one `▁` to the next) segments on its own and
    // the same word always gives the same pieces: look it up in the cache.
    for (let begin = 0; begin < length;) {
      let end = Math.min(begin + oneCharLength(src[begin]!), length);
      let hash = 0x811c9dc5;
      for (let i = begin; i < end; i++) hash = Math.imul(hash ^ src[i]!, 0x01000193);
      while (end < length && !(src[end] === 0xe2 && src[end + 1] === 0x96 && src[end + 2] === 0x81)) {
        hash = Math.imul(hash ^ src[end]!, 0x01000193);
        end++;
      }
      this.#encodeWord(src, begin, end, hash >>> 0, out);
      begin = end;
    }
  }

  #encodeWord(src: Uint8Array, begin: number, end: number, hash: number, out: SpanList): void {
    const cached = this.#wordCache.get(hash);
    if (cached !== undefined && cached.bytes.length === end - begin && equalBytes(cached.bytes, src, begin)) {
      const { starts, lens, ids } = cached;
      for (let i = 0; i < ids.length; i++) out.push(begin + starts[i]!, lens[i]!, ids[i]!);
      return;
    }
    const first = out.length;
    this.#encodeRange(src, begin, end, DETERMINISTIC, out);
    if (cached !== undefined) return; // a hash collision: keep the first word
    if (this.#wordCache.size >= WORD_CACHE_LIMIT) this.#wordCache.clear();
    const count = out.length - first;
    const entry: CachedWord = {
      bytes: src.slice(begin, end),
      starts: new Int32Array(count),
      lens: out.len.slice(first, out.length),
      ids: out.id.slice(first, out.length),
    };
    for (let i = 0; i < count; i++) entry.starts[i] = out.start[first + i]! - begin;
    this.#wordCache.set(hash, entry);
  }

  /** The BPE loop over `src[begin, end)`; span offsets stay absolute. */
  #encodeRange(src: Uint8Array, begin: number, end: number, options: BpeEncodeOptions, out: SpanList): void {
    this.#ensureSymbols(end - begin);
    const vocab = this.#vocab;
    const symStart = this.#symStart;
    const symLen = this.#symLen;
    const symId = this.#symId;
    const outId = this.#outId;
    const prev = this.#prev;
    const next = this.#next;
    const frozen = this.#frozen;
    const matcher = vocab.userMatcher;
    const asciiSymbols = this.#asciiSymbols;
    const asciiIds = this.#asciiIds;

    // Initial symbols: user-defined symbols (frozen) or single characters.
    let count = 0;
    for (let pos = begin; pos < end;) {
      let n = matcher === null ? 0 : matcher.match(src, pos, end);
      symStart[count] = pos;
      if (n > 0) {
        frozen[count] = 1;
        symId[count] = -1;
        outId[count] = matcher!.value;
      } else {
        frozen[count] = 0;
        const b = src[pos]!;
        if (b < 0x80) {
          n = 1;
          symId[count] = asciiSymbols[b]!;
          outId[count] = asciiIds[b]!;
        } else {
          n = Math.min(oneCharLength(b), end - pos);
          symId[count] = this.#charSymbols.get(codePointAt(src, pos, n));
          outId[count] = vocab.charId(src, pos, n);
        }
      }
      symLen[count] = n;
      prev[count] = count - 1;
      next[count] = pos + n < end ? count + 1 : -1;
      count++;
      pos += n;
    }

    this.#heapSize = 0;
    this.#candCount = 0;
    if (this.#hasUnused) this.#revMerge.clear();
    for (let i = 1; i < count; i++) this.#maybePush(i - 1, i);

    const alpha = Math.fround(options.alpha);
    const rng = options.rng;
    while (this.#heapSize > 0) {
      const c = this.#pop();
      const left = this.#candLeft[c]!;
      const right = this.#candRight[c]!;
      const leftLen = symLen[left]!;
      const rightLen = symLen[right]!;
      if (leftLen === 0 || rightLen === 0 || leftLen + rightLen !== this.#candSize[c]) continue;
      if (alpha > 0 && (alpha >= 1 || uniformDouble(rng!) < alpha)) continue;
      const merged = this.#candMerged[c]!;
      symLen[left] = leftLen + rightLen;
      symId[left] = merged;
      outId[left] = merged;
      const after = next[right]!;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      symLen[right] = 0;
      this.#maybePush(prev[left]!, left);
      this.#maybePush(left, after);
    }

    for (let i = 0; i !== -1; i = next[i]!) {
      const id = outId[i]!;
      if (this.#hasUnused && id >= 0 && vocab.types[id] === PieceType.UNUSED) {
        this.#resegment(id, symStart[i]!, symLen[i]!, out);
      } else {
        out.push(symStart[i]!, symLen[i]!, id);
      }
    }
  }

  #resegment(id: number, start: number, len: number, out: SpanList): void {
    const parts = this.#vocab.types[id] === PieceType.UNUSED ? this.#revMerge.get(id) : undefined;
    if (parts === undefined) {
      out.push(start, len, id);
      return;
    }
    const [leftId, rightId, leftLen] = parts;
    this.#resegment(leftId, start, leftLen, out);
    this.#resegment(rightId, start + leftLen, len - leftLen, out);
  }

  #maybePush(left: number, right: number): void {
    if (left < 0 || right < 0 || this.#frozen[left] || this.#frozen[right]) return;
    const a = this.#symId[left]!;
    const b = this.#symId[right]!;
    if (a < 0 || b < 0) return;
    const merged = this.#pairs.get(a, b);
    if (merged < 0) return;
    if (this.#hasUnused && this.#vocab.types[merged] === PieceType.UNUSED) {
      this.#revMerge.set(merged, [this.#outId[left]!, this.#outId[right]!, this.#symLen[left]!]);
    }
    const c = this.#candCount++;
    if (c === this.#candLeft.length) this.#growCandidates();
    this.#candLeft[c] = left;
    this.#candRight[c] = right;
    this.#candScore[c] = this.#vocab.scores[merged]!;
    this.#candSize[c] = this.#symLen[left]! + this.#symLen[right]!;
    this.#candMerged[c] = merged;
    this.#heapPush(c);
  }

  /** True if candidate a ranks before candidate b: higher score, then smaller left index. */
  #before(a: number, b: number): boolean {
    const sa = this.#candScore[a]!;
    const sb = this.#candScore[b]!;
    return sa > sb || (sa === sb && this.#candLeft[a]! < this.#candLeft[b]!);
  }

  #heapPush(c: number): void {
    const heap = this.#heap;
    let i = this.#heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!this.#before(c, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = c;
  }

  #pop(): number {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap[--this.#heapSize]!;
    const size = this.#heapSize;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && this.#before(heap[child + 1]!, heap[child]!)) child++;
      if (!this.#before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }

  #ensureSymbols(n: number): void {
    if (this.#symStart.length >= n) return;
    let size = this.#symStart.length;
    while (size < n) size *= 2;
    this.#symStart = new Int32Array(size);
    this.#symLen = new Int32Array(size);
    this.#symId = new Int32Array(size);
    this.#outId = new Int32Array(size);
    this.#prev = new Int32Array(size);
    this.#next = new Int32Array(size);
    this.#frozen = new Uint8Array(size);
  }

  #growCandidates(): void {
    const size = this.#candLeft.length * 2;
    const grow32 = (a: Int32Array) => {
      const b = new Int32Array(size);
      b.set(a);
      return b;
    };
    this.#candLeft = grow32(this.#candLeft);
    this.#candRight = grow32(this.#candRight);
    this.#candSize = grow32(this.#candSize);
    this.#candMerged = grow32(this.#candMerged);
    const score = new Float64Array(size);
    score.set(this.#candScore);
    this.#candScore = score;
    this.#heap = grow32(this.#heap);
  }
}
