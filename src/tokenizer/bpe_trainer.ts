/**
 * `BpeTrainer`: the BPE merge loop of the reference trainer (SentencePiece 0.1.97), which
 * {@linkcode trainTokenizer} runs over the counted words of a corpus.
 *
 * Vocabulary: a *symbol* is a character or a pair of symbols (a candidate piece); a *position* is one
 * occurrence of a pair, encoded as (word index, left index, right index).
 *
 * @module
 */
import {
  SCRIPT_HAN,
  SCRIPT_HIRAGANA,
  SCRIPT_INHERITED,
  SCRIPT_KATAKANA,
  scriptOf,
} from "./_unicode_script.ts";

/** `▁`, which stands for a space in pieces. */
export const META_SPACE = 0x2581;
/** Stands for a character outside the alphabet in the training text. */
export const UNK_CHAR = 0x2585;
/** Stands in for user symbols and special pieces in the training text; pieces never contain it. */
export const BOUNDARY_CHAR = 0x09;
const UPDATE_ACTIVE_INTERVAL = 100;
const MIN_ACTIVE_SYMBOLS = 1000;
const TOP_FREQUENT_RATIO = 0.05;
const TWO_POW_32 = 4294967296;
const PAIR_KEY_BASE = 2 ** 26;

/** Compares strings by code point (UTF-8 byte order), not by UTF-16 unit. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (supplementary planes) sort after every BMP character in code point order.
    const sx = x >= 0xd800 && x < 0xe000 ? x + 0x2000 : x >= 0xe000 ? x - 0x800 : x;
    const sy = y >= 0xd800 && y < 0xe000 ? y + 0x2000 : y >= 0xe000 ? y - 0x800 : y;
    return sx - sy;
  }
  return a.length - b.length;
}

const ANY_SCRIPT = -1;
const WHITESPACE = -2;
const FORBIDDEN = -3;

/** A character's script as the validity check uses it: kana count as Han; `▁` and never-joined marks apart. */
function characterScript(cp: number): number {
  if (cp === META_SPACE) return WHITESPACE;
  if (cp === UNK_CHAR || cp === 0 || cp === BOUNDARY_CHAR || cp === 0x20) return FORBIDDEN;
  if (cp >= 0xd800 && cp < 0xe000) return FORBIDDEN;
  if (cp === 0x30fc) return SCRIPT_HAN;
  const s = scriptOf(cp);
  return s === SCRIPT_HIRAGANA || s === SCRIPT_KATAKANA ? SCRIPT_HAN : s;
}

/**
 * The BPE merge loop of the reference trainer. Symbols live in parallel arrays indexed by symbol id;
 * pair symbols are found through a map keyed by their two component ids.
 *
 * @example Usage
 * ```ts
 * import { BpeTrainer } from "./bpe_trainer.ts";
 * // The alphabet: code point → count.
 * const alphabet = new Map([..."▁ab"].map((ch, i) => [ch.codePointAt(0)!, 3 - i]));
 * // Words (with their counts) → merged pieces, most frequent pair first.
 * console.log(new BpeTrainer(alphabet, 16).train([["▁ab", 3], ["▁abab", 1]], 2)); // [ "ab", "▁ab" ]
 * ```
 */
export class BpeTrainer {
  readonly #required: Map<number, number>;
  readonly #maxPieceLength: number;
  // Symbols.
  #left: number[] = [];
  #right: number[] = [];
  #text: string[] = [];
  #length: number[] = [];
  #freq: number[] = [];
  #isUnk: boolean[] = [];
  #positions: number[][] = [];
  #sorted: boolean[] = [];
  #scripts: number[][] = []; // per character, see characterScript()
  // Lookups: characters by code point, pairs by (left, right); a deleted entry is "erased from the cache".
  #charSymbols = new Map<number, number>();
  #pairSymbols = new Map<number, number>();
  #active = new Set<number>();
  // Words.
  #words: Int32Array[] = [];
  #wordFreq: number[] = [];

  constructor(required: Map<number, number>, maxPieceLength: number) {
    this.#required = required;
    this.#maxPieceLength = maxPieceLength;
  }

  /** Runs up to `count` merges over the words and returns the merged pieces in order. */
  train(words: [string, number][], count: number): string[] {
    for (const [word, freq] of words) {
      const symbols = [...word].map((ch) => this.#charSymbol(ch.codePointAt(0)!));
      this.#words.push(Int32Array.from(symbols));
      this.#wordFreq.push(freq);
    }
    for (let sid = 0; sid < this.#words.length; sid++) {
      for (let i = 1; i < this.#words[sid]!.length; i++) this.#addPair(sid, i - 1, i);
    }
    const final: string[] = [];
    const dup = new Set<string>();
    while (final.length < count) {
      if (final.length % UPDATE_ACTIVE_INTERVAL === 0) this.#updateActive();
      let best = -1;
      for (const s of this.#active) {
        this.#computeFreq(s);
        if (best < 0 || this.#better(s, best)) best = s;
      }
      if (best < 0) break; // no pair left to merge
      const text = this.#text[best]!;
      if (dup.has(text)) {
        this.#erase(best);
        continue;
      }
      dup.add(text);
      final.push(text);
      this.#merge(best);
      this.#erase(best);
    }
    return final;
  }

  /** Higher frequency, then fewer characters, then smaller text. */
  #better(a: number, b: number): boolean {
    const fa = this.#freq[a]!;
    const fb = this.#freq[b]!;
    if (fa !== fb) return fa > fb;
    const la = this.#length[a]!;
    const lb = this.#length[b]!;
    if (la !== lb) return la < lb;
    return compareCodePoints(this.#text[a]!, this.#text[b]!) < 0;
  }

  #newSymbol(
    left: number,
    right: number,
    text: string,
    length: number,
    freq: number,
    scripts: number[],
  ): number {
    const id = this.#left.length;
    this.#left.push(left);
    this.#right.push(right);
    this.#text.push(text);
    this.#length.push(length);
    this.#freq.push(freq);
    this.#isUnk.push(false);
    this.#positions.push([]);
    this.#sorted.push(true);
    this.#scripts.push(scripts);
    return id;
  }

  #charSymbol(cp: number): number {
    const hit = this.#charSymbols.get(cp);
    if (hit !== undefined) return hit;
    const script = characterScript(cp);
    const id = this.#newSymbol(-1, -1, String.fromCodePoint(cp), 1, this.#required.get(cp) ?? 1, [script]);
    this.#isUnk[id] = cp === UNK_CHAR;
    this.#charSymbols.set(cp, id);
    return id;
  }

  /** The pair symbol of (a, b), created on first sight; -1 if a missing side or an invalid piece. */
  #pairSymbol(a: number, b: number): number {
    if (a < 0 || b < 0 || this.#isUnk[a] || this.#isUnk[b]) return -1;
    const key = a * PAIR_KEY_BASE + b;
    const hit = this.#pairSymbols.get(key);
    if (hit !== undefined) return hit;
    const length = this.#length[a]! + this.#length[b]!;
    const scripts = [...this.#scripts[a]!, ...this.#scripts[b]!];
    if (!this.#isValidPiece(scripts, length)) return -1;
    const id = this.#newSymbol(a, b, this.#text[a]! + this.#text[b]!, length, 0, scripts);
    this.#pairSymbols.set(key, id);
    return id;
  }

  /** The reference's `IsValidSentencePiece` with the default options, from the characters' scripts. */
  #isValidPiece(scripts: number[], length: number): boolean {
    if (length > this.#maxPieceLength) return false;
    let prev = ANY_SCRIPT;
    for (let i = 0; i < scripts.length; i++) {
      let s = scripts[i]!;
      if (s === FORBIDDEN) return false;
      if (s === WHITESPACE) {
        if (i > 0) return false; // `▁` only starts a piece
        continue;
      }
      if (s === SCRIPT_INHERITED) s = prev;
      if (s !== ANY_SCRIPT && prev !== ANY_SCRIPT && prev !== s) return false;
      prev = s;
    }
    return true;
  }

  #addPair(sid: number, left: number, right: number): void {
    if (left < 0 || right < 0) return;
    const word = this.#words[sid]!;
    const s = this.#pairSymbol(word[left]!, word[right]!);
    if (s < 0) return;
    this.#active.add(s);
    const pos = sid * TWO_POW_32 + left * 65536 + right;
    const list = this.#positions[s]!;
    if (list.length > 0 && list[list.length - 1]! >= pos) this.#sorted[s] = false;
    list.push(pos);
  }

  #resetFreq(sid: number, left: number, right: number, best: number): void {
    if (left < 0 || right < 0) return;
    const word = this.#words[sid]!;
    const s = this.#pairSymbol(word[left]!, word[right]!);
    if (s >= 0 && s !== best) this.#freq[s] = 0;
  }

  #sortedPositions(s: number): number[] {
    const list = this.#positions[s]!;
    if (!this.#sorted[s]) {
      list.sort((a, b) => a - b);
      let n = 0;
      for (let i = 0; i < list.length; i++) if (n === 0 || list[i] !== list[n - 1]) list[n++] = list[i]!;
      list.length = n;
      this.#sorted[s] = true;
    }
    return list;
  }

  /** Recounts a pair's frequency (when it was reset to 0), dropping stale and overlapping positions. */
  #computeFreq(s: number): void {
    if (this.#freq[s]! > 0) return;
    const list = this.#sortedPositions(s);
    const left = this.#left[s]!;
    const right = this.#right[s]!;
    let freq = 0;
    let prevSid = -1;
    let prevRight = 0;
    let n = 0;
    for (let i = 0; i < list.length; i++) {
      const pos = list[i]!;
      const sid = Math.floor(pos / TWO_POW_32);
      const rest = pos - sid * TWO_POW_32;
      const l = rest >>> 16;
      const r = rest & 0xffff;
      const word = this.#words[sid]!;
      // In "aaa" the pair "aa" occurs twice, overlapping: only the first counts.
      if ((sid === prevSid && l === prevRight) || word[l] !== left || word[r] !== right) {
        prevSid = -1;
        prevRight = 0;
        continue;
      }
      freq += this.#wordFreq[sid]!;
      prevSid = sid;
      prevRight = r;
      list[n++] = pos;
    }
    list.length = n;
    this.#freq[s] = freq;
  }

  /** Keeps the most frequent pairs (at least 1000, or 5 % of all symbols) as the ones scanned. */
  #updateActive(): void {
    const bigrams: number[] = [];
    for (const s of this.#pairSymbols.values()) {
      this.#computeFreq(s);
      bigrams.push(s);
    }
    const total = this.#charSymbols.size + this.#pairSymbols.size;
    const size = Math.min(
      Math.max(MIN_ACTIVE_SYMBOLS, Math.trunc(total * TOP_FREQUENT_RATIO)),
      bigrams.length,
    );
    bigrams.sort((a, b) => this.#freq[b]! - this.#freq[a]! || a - b);
    this.#active = new Set(bigrams.slice(0, size));
  }

  /** Replaces every occurrence of the pair `best` by it and records the pairs this creates. */
  #merge(best: number): void {
    const list = this.#sortedPositions(best);
    const words = this.#words;
    for (let i = 0; i < list.length; i++) {
      const pos = list[i]!;
      const sid = Math.floor(pos / TWO_POW_32);
      const rest = pos - sid * TWO_POW_32;
      const left = rest >>> 16;
      const right = rest & 0xffff;
      const word = words[sid]!;
      if (word[left] === -1) continue; // consumed by the previous overlapping occurrence
      let next = -1;
      for (let j = right + 1; j < word.length; j++) {
        if (word[j] !== -1) {
          next = j;
          break;
        }
      }
      let prev = -1;
      for (let j = left - 1; j >= 0; j--) {
        if (word[j] !== -1) {
          prev = j;
          break;
        }
      }
      this.#resetFreq(sid, prev, left, best);
      this.#resetFreq(sid, right, next, best);
      word[left] = best;
      word[right] = -1;
      this.#addPair(sid, prev, left);
      this.#addPair(sid, left, next);
    }
  }

  #erase(s: number): void {
    this.#pairSymbols.delete(this.#left[s]! * PAIR_KEY_BASE + this.#right[s]!);
    this.#active.delete(s);
  }
}
