/**
 * `trainTokenizer`: trains a SentencePiece BPE model from a text corpus, following the reference
 * trainer (SentencePiece 0.1.97) step by step, and writes it as a `.model` file the reference tools load.
 *
 * The steps, as in the reference: read the corpus line by line (a seeded reservoir keeps at most
 * `maxSentences` lines of a very large one); normalize each line with `nmt_nfkc` and replace user
 * symbols and special pieces by a boundary character that never joins a piece; keep the most frequent
 * characters up to `characterCoverage` as the alphabet and mark the rest unknown; split lines into words
 * at `▁` and count them; then repeatedly add the most frequent adjacent symbol pair (counted over word
 * occurrences, ties broken by shorter and then lexicographically smaller text) until the vocabulary is
 * full. Pieces are stored as the reference stores them: special ids first, then user symbols, merged
 * pieces in merge order with score `-i`, and the alphabet last.
 *
 * Vocabulary: a *symbol* is a character or a pair of symbols (a candidate piece); a *position* is one
 * occurrence of a pair, encoded as (word index, left index, right index).
 *
 * @module
 */
import { BytePrefixMatcher, Normalizer } from "./normalizer.ts";
import { readLines } from "./lines.ts";
import {
  type ModelPiece,
  ModelType,
  type NormalizerSpec,
  PieceType,
  type TrainerSpec,
} from "./model_proto.ts";
import { serializeModelProto } from "./model_proto.ts";
import { Mt19937, uniformDouble } from "./mt19937.ts";
import { NMT_NFKC_BASE64 } from "./_nmt_nfkc.ts";
import { decodeBase64 } from "./_base64.ts";
import {
  SCRIPT_HAN,
  SCRIPT_HIRAGANA,
  SCRIPT_INHERITED,
  SCRIPT_KATAKANA,
  scriptOf,
} from "./_unicode_script.ts";

/** Ids of the special pieces; -1 leaves one out (`unk` is required). */
export interface SpecialIds {
  /**
   * Id of `<s>`.
   * @default {0}
   */
  bos?: number;
  /**
   * Id of `</s>`.
   * @default {1}
   */
  eos?: number;
  /**
   * Id of `<pad>`.
   * @default {2}
   */
  pad?: number;
  /**
   * Id of `<unk>`.
   * @default {3}
   */
  unk?: number;
}

/** Options of {@linkcode trainTokenizer}. */
export interface TrainTokenizerOptions {
  /**
   * The corpus, one sentence per line: a file path or URL (read as a stream, needs read permission), or
   * the lines themselves.
   */
  corpus: string | URL | Iterable<string> | AsyncIterable<string>;
  /** Number of pieces in the model, special and user symbols included. */
  vocabSize: number;
  /**
   * Segmentation algorithm; only BPE is trained.
   * @default {"bpe"}
   */
  modelType?: "bpe";
  /**
   * Symbols always kept whole and never merged (the project's default is the ten digits).
   * @default {["0","1","2","3","4","5","6","7","8","9"]}
   */
  userSymbols?: readonly string[];
  /**
   * Special piece ids.
   * @default {{ bos: 0, eos: 1, pad: 2, unk: 3 }}
   */
  specials?: SpecialIds;
  /**
   * Fraction of the corpus's characters the alphabet must cover; rarer characters become unknown.
   * @default {0.9995}
   */
  characterCoverage?: number;
  /**
   * Longest piece, in characters.
   * @default {16}
   */
  maxPieceLength?: number;
  /**
   * Lines longer than this many UTF-8 bytes are skipped, as SentencePiece does; how many is said through
   * `log`, and if no line is left the error says so.
   * @default {4192}
   */
  maxSentenceLength?: number;
  /**
   * At most this many lines are used; a larger corpus is subsampled with a seeded reservoir. 0 = all.
   * @default {1000000}
   */
  maxSentences?: number;
  /**
   * Seed of the reservoir sampler, an integer in [0, 2^32).
   * @default {12345678}
   */
  seed?: number;
  /** If given, the model is also written to this path (and the vocabulary beside it, as `.vocab`). */
  out?: string | URL;
  /** Receives progress lines (corpus size, alphabet, merges). */
  log?: (line: string) => void;
}

const DEFAULT_USER_SYMBOLS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"] as const;
/** Largest vocabulary: ids must fit the model file's int32 fields and every piece a distinct string. */
const MAX_VOCAB_SIZE = 2 ** 31 - 1;

/** Checks an integer option of {@linkcode trainTokenizer}: a TypeError for a non-number, else a RangeError. */
function checkInteger(name: string, value: unknown, min: number, max: number): void {
  if (typeof value !== "number") {
    throw new TypeError(`Cannot train tokenizer with ${name} ${JSON.stringify(value)}: it is not a number`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot train tokenizer with ${name} ${value}: it must be an integer in [${min}, ${max}]`,
    );
  }
}
const META_SPACE = 0x2581;
const UNK_CHAR = 0x2585;
/** Stands in for user symbols and special pieces in the training text; pieces never contain it. */
const BOUNDARY_CHAR = 0x09;
const UPDATE_ACTIVE_INTERVAL = 100;
const MIN_ACTIVE_SYMBOLS = 1000;
const TOP_FREQUENT_RATIO = 0.05;
const TWO_POW_32 = 4294967296;
const PAIR_KEY_BASE = 2 ** 26;

let nmtNfkc: Uint8Array | null = null;

/**
 * SentencePiece's `nmt_nfkc` normalization table, decoded once.
 *
 * @example Usage
 * ```ts
 * import { nmtNfkcCharsmap } from "@difflm/core/tokenizer";
 * console.log(nmtNfkcCharsmap().length); // 237561
 * ```
 * @returns The precompiled character map (shared; do not modify).
 */
export function nmtNfkcCharsmap(): Uint8Array {
  return (nmtNfkc ??= decodeBase64(NMT_NFKC_BASE64.join("")));
}

/**
 * Trains a SentencePiece BPE model and returns the `.model` file's bytes.
 *
 * @example Usage
 * ```ts
 * import { Tokenizer, trainTokenizer } from "@difflm/core";
 *
 * const lines = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"];
 * const model = await trainTokenizer({ corpus: lines, vocabSize: 40, userSymbols: [] });
 * const tok = Tokenizer.fromBytes(model);
 * console.log(tok.decode(tok.encode("the cat sat"))); // "the cat sat"
 * ```
 * @param options Corpus, vocabulary size and training options.
 * @returns The model file's bytes (also written to `options.out` when given).
 * @throws {TypeError} If a numeric option is not a number.
 * @throws {RangeError} If a numeric option is outside its range (vocabulary size and max sentence length
 *   at least 1, max piece length in [1, 512], max sentences at least 0, seed in [0, 2^32)), the corpus has
 *   no usable line, or the vocabulary size does not fit the corpus (smaller than the alphabet plus special
 *   pieces, or larger than the pieces the corpus yields).
 * @throws {SyntaxError} If the corpus file is not valid UTF-8 (the message gives the line and byte).
 */
export async function trainTokenizer(options: TrainTokenizerOptions): Promise<Uint8Array<ArrayBuffer>> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const vocabSize = options.vocabSize;
  const modelType = options.modelType ?? "bpe";
  if (modelType !== "bpe") {
    throw new RangeError(`Cannot train a ${modelType} tokenizer: only "bpe" is supported`);
  }
  checkInteger("vocabulary size", vocabSize, 1, MAX_VOCAB_SIZE);
  const coverage = options.characterCoverage ?? 0.9995;
  if (typeof coverage !== "number") {
    throw new TypeError(
      `Cannot train tokenizer with character coverage ${JSON.stringify(coverage)}: not a number`,
    );
  }
  if (!(coverage >= 0.98 && coverage <= 1)) {
    throw new RangeError(
      `Cannot train tokenizer with character coverage ${coverage}: it must be in [0.98, 1]`,
    );
  }
  const maxPieceLength = options.maxPieceLength ?? 16;
  checkInteger("max piece length", maxPieceLength, 1, 512);
  const maxSentenceLength = options.maxSentenceLength ?? 4192;
  checkInteger("max sentence length", maxSentenceLength, 1, Number.MAX_SAFE_INTEGER);
  const maxSentences = options.maxSentences ?? 1_000_000;
  checkInteger("max sentences", maxSentences, 0, Number.MAX_SAFE_INTEGER);
  const seed = options.seed ?? 12345678;
  checkInteger("seed", seed, 0, 2 ** 32 - 1);
  const userSymbols = [...(options.userSymbols ?? DEFAULT_USER_SYMBOLS)];
  const specials = {
    unk: options.specials?.unk ?? 3,
    bos: options.specials?.bos ?? 0,
    eos: options.specials?.eos ?? 1,
    pad: options.specials?.pad ?? 2,
  };
  const meta = metaPieces(vocabSize, specials, userSymbols);
  const corpusName = typeof options.corpus === "string" || options.corpus instanceof URL
    ? String(options.corpus)
    : "corpus";

  // 1. Read the lines, subsampling a very large corpus.
  const { lines, total, skipped } = await loadSentences(options.corpus, corpusName, {
    maxSentenceLength,
    maxSentences,
    seed,
  });
  const { tooLong, longest } = skipped;
  // SentencePiece skips lines over max_sentence_length too; here the count and the reason are said.
  const skippedNote = tooLong === 0
    ? ""
    : `${tooLong} line${tooLong === 1 ? "" : "s"} of ${corpusName} longer than ${maxSentenceLength} bytes ` +
      `(maxSentenceLength; the longest has ${longest})`;
  if (lines.length === 0) {
    throw new RangeError(
      skippedNote
        ? `Cannot train tokenizer: no line is left after skipping ${skippedNote}; split the text into ` +
          `lines of one example each`
        : `Cannot train tokenizer: ${corpusName} has no usable line (it is empty)`,
    );
  }
  log(
    (lines.length === total
      ? `loaded ${lines.length} lines from ${corpusName}`
      : `sampled ${lines.length} of ${total} lines from ${corpusName}`) +
      (skippedNote ? `; skipped ${skippedNote}` : ""),
  );

  // 2. Normalize, hide user symbols and special pieces, split into words and count them.
  const normalizerSpec: NormalizerSpec = { name: "nmt_nfkc", precompiledCharsmap: nmtNfkcCharsmap() };
  const normalizer = new Normalizer(normalizerSpec);
  const encoder = new TextEncoder();
  const metaMatcher = new BytePrefixMatcher([...meta.values()].map((p) => encoder.encode(p.piece)));
  const decoder = new TextDecoder();
  const rawWords = new Map<string, number>();
  let sentences = 0;
  for (const line of lines) {
    const buf = normalizer.normalizeToBytes(line);
    if (buf.length === 0) continue;
    sentences++;
    const text = decoder.decode(replaceMatches(buf.bytes, buf.length, metaMatcher));
    let start = 0;
    for (let i = 1; i <= text.length; i++) {
      if (i === text.length || text.charCodeAt(i) === META_SPACE) {
        const word = text.slice(start, i);
        rawWords.set(word, (rawWords.get(word) ?? 0) + 1);
        start = i;
      }
    }
  }
  if (sentences === 0) {
    throw new RangeError(`Cannot train tokenizer: every line of ${corpusName} is empty after normalization`);
  }

  // 3. The alphabet: the most frequent characters up to the coverage; the rest become unknown.
  const charCounts = new Map<number, number>();
  let allChars = 0;
  for (const [word, freq] of rawWords) {
    for (const ch of word) {
      const cp = ch.codePointAt(0)!;
      if (cp === 0 || (cp >= 0xd800 && cp < 0xe000)) continue;
      charCounts.set(cp, (charCounts.get(cp) ?? 0) + freq);
      allChars += freq;
    }
  }
  const required = new Map<number, number>();
  const threshold = Math.fround(coverage);
  let accumulated = 0;
  for (const [cp, count] of sortedByCount(charCounts)) {
    if (Math.fround(accumulated / allChars) >= threshold) break;
    accumulated += count;
    if (cp === BOUNDARY_CHAR) continue;
    required.set(cp, count);
  }
  const mergeCount = vocabSize - meta.size - required.size;
  if (mergeCount < 0) {
    throw new RangeError(
      `Cannot train tokenizer with vocabulary size ${vocabSize}: the alphabet and special pieces need ` +
        `${required.size + meta.size}; increase the vocabulary size or lower the character coverage`,
    );
  }
  log(`alphabet: ${required.size} characters cover ${(100 * accumulated / allChars).toFixed(4)}%`);

  const words = new Map<string, number>();
  for (const [word, freq] of rawWords) {
    let replaced = "";
    for (const ch of word) replaced += required.has(ch.codePointAt(0)!) ? ch : String.fromCodePoint(UNK_CHAR);
    words.set(replaced, (words.get(replaced) ?? 0) + freq);
  }
  const sortedWords = [...words].sort((a, b) => b[1] - a[1] || compareCodePoints(a[0], b[0]));
  log(`${sortedWords.length} distinct words in ${sentences} sentences`);

  // 4. Merges.
  const trainer = new BpeTrainer(required, maxPieceLength);
  const merged = trainer.train(sortedWords, mergeCount);
  if (merged.length < mergeCount) {
    const possible = meta.size + required.size + merged.length;
    throw new RangeError(
      `Cannot train tokenizer with vocabulary size ${vocabSize}: ${corpusName} yields at most ${possible} ` +
        `pieces; set the vocabulary size to ${possible} or less`,
    );
  }

  // 5. The model: special ids and user symbols where they belong, then merges, then the alphabet.
  const finalPieces = [...merged];
  for (const [cp] of sortedByCount(required)) finalPieces.push(String.fromCodePoint(cp));
  const pieces: ModelPiece[] = [];
  let next = 0;
  for (let id = 0; id < vocabSize; id++) {
    const m = meta.get(id);
    if (m !== undefined) pieces.push({ piece: m.piece, score: 0, type: m.type });
    else if (next < finalPieces.length) {
      pieces.push({ piece: finalPieces[next]!, score: -next, type: PieceType.NORMAL });
      next++;
    }
  }
  const seen = new Set<string>();
  for (const p of pieces) {
    if (seen.has(p.piece)) {
      throw new RangeError(`Cannot train tokenizer: piece ${JSON.stringify(p.piece)} would appear twice`);
    }
    seen.add(p.piece);
  }
  const outPath = options.out === undefined ? "" : String(options.out);
  const trainerSpec: TrainerSpec = {
    input: typeof options.corpus === "string" || options.corpus instanceof URL ? [corpusName] : [],
    modelPrefix: outPath.replace(/\.model$/, ""),
    modelType: ModelType.BPE,
    vocabSize,
    selfTestSampleSize: 0,
    inputFormat: "",
    characterCoverage: coverage,
    inputSentenceSize: maxSentences,
    seedSentencepieceSize: 1000000,
    shrinkingFactor: 0.75,
    numThreads: 1,
    numSubIterations: 2,
    maxSentenceLength,
    shuffleInputSentence: true,
    maxSentencepieceLength: maxPieceLength,
    splitByUnicodeScript: true,
    splitByWhitespace: true,
    splitByNumber: true,
    treatWhitespaceAsSuffix: false,
    splitDigits: false,
    allowWhitespaceOnlyPieces: false,
    userDefinedSymbols: userSymbols,
    vocabularyOutputPieceScore: true,
    hardVocabLimit: true,
    useAllVocab: false,
    byteFallback: false,
    requiredChars: "",
    unkId: specials.unk,
    bosId: specials.bos,
    eosId: specials.eos,
    padId: specials.pad,
    unkSurface: " \u2047 ",
    unkPiece: "<unk>",
    bosPiece: "<s>",
    eosPiece: "</s>",
    padPiece: "<pad>",
    trainExtremelyLargeCorpus: false,
    enableDifferentialPrivacy: false,
    differentialPrivacyNoiseLevel: 0,
    differentialPrivacyClippingThreshold: 0,
  };
  const model = serializeModelProto({
    pieces,
    trainerSpec,
    normalizerSpec: {
      ...normalizerSpec,
      addDummyPrefix: true,
      removeExtraWhitespaces: true,
      normalizationRuleTsv: "",
    },
  });
  if (options.out !== undefined) {
    await Deno.writeFile(options.out, model);
    const vocabPath = outPath.endsWith(".model") ? outPath.slice(0, -6) + ".vocab" : outPath + ".vocab";
    await Deno.writeTextFile(vocabPath, pieces.map((p) => `${p.piece}\t${formatScore(p.score)}\n`).join(""));
  }
  log(`trained ${pieces.length} pieces in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  return model;
}

/** A score as the reference `.vocab` file prints it (C++ stream default: 6 significant digits). */
function formatScore(score: number): string {
  if (Number.isInteger(score)) return Object.is(score, -0) ? "-0" : String(score);
  return String(Number(score.toPrecision(6)));
}

interface MetaPiece {
  piece: string;
  type: PieceType;
}

/** Ids of the special pieces and user symbols, as the reference assigns them. */
function metaPieces(
  vocabSize: number,
  specials: { unk: number; bos: number; eos: number; pad: number },
  userSymbols: string[],
): Map<number, MetaPiece> {
  const meta = new Map<number, MetaPiece>();
  const place = (id: number, piece: string, name: string) => {
    if (id < 0) return;
    if (!Number.isInteger(id) || id >= vocabSize) {
      throw new RangeError(`Cannot train tokenizer: ${name} id ${id} is outside [0, ${vocabSize})`);
    }
    if (meta.has(id)) {
      throw new RangeError(
        `Cannot train tokenizer: ${name} id ${id} is already taken by ${meta.get(id)!.piece}`,
      );
    }
    meta.set(id, { piece, type: piece === "<unk>" ? PieceType.UNKNOWN : PieceType.CONTROL });
  };
  if (specials.unk < 0) throw new RangeError("Cannot train tokenizer: the unk id must be >= 0");
  place(specials.unk, "<unk>", "unk");
  place(specials.bos, "<s>", "bos");
  place(specials.eos, "</s>", "eos");
  place(specials.pad, "<pad>", "pad");
  const seen = new Set<string>();
  let id = 0;
  for (const symbol of userSymbols) {
    if (symbol.length === 0) throw new RangeError("Cannot train tokenizer: a user symbol is empty");
    if (seen.has(symbol)) throw new RangeError(`Cannot train tokenizer: user symbol ${symbol} is repeated`);
    if (symbol === "<unk>") throw new RangeError("Cannot train tokenizer: <unk> cannot be a user symbol");
    seen.add(symbol);
    const special = [...meta].find(([, m]) => m.piece === symbol);
    if (special !== undefined) {
      special[1].type = PieceType.USER_DEFINED;
      continue;
    }
    while (meta.has(id)) id++;
    if (id >= vocabSize) {
      throw new RangeError(
        `Cannot train tokenizer: vocabulary size ${vocabSize} has no room for user symbols`,
      );
    }
    meta.set(id, { piece: symbol, type: PieceType.USER_DEFINED });
  }
  return meta;
}

/** Replaces every match of `matcher` in `src[0, length)` by the boundary character. */
function replaceMatches(src: Uint8Array, length: number, matcher: BytePrefixMatcher): Uint8Array {
  const out = new Uint8Array(length);
  let n = 0;
  for (let pos = 0; pos < length;) {
    const m = matcher.match(src, pos, length);
    if (m > 0) {
      out[n++] = BOUNDARY_CHAR;
      pos += m;
    } else out[n++] = src[pos++]!;
  }
  return out.subarray(0, n);
}

/** Entries sorted by count (descending), then code point (ascending), as the reference sorts them. */
function sortedByCount(counts: Map<number, number>): [number, number][] {
  return [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
}

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

interface LoadOptions {
  maxSentenceLength: number;
  maxSentences: number;
  seed: number;
}

/** Reads the corpus lines, skipping empty, too long and reserved-character lines, with a reservoir cap. */
async function loadSentences(
  corpus: TrainTokenizerOptions["corpus"],
  name: string,
  options: LoadOptions,
): Promise<{ lines: string[]; total: number; skipped: { tooLong: number; longest: number } }> {
  const lines: string[] = [];
  const skipped = { tooLong: 0, longest: 0 };
  const rng = new Mt19937(options.seed);
  const cap = options.maxSentences > 0 ? options.maxSentences : Infinity;
  const encoder = new TextEncoder();
  let total = 0;
  const add = (line: string, byteLength: number) => {
    if (byteLength > options.maxSentenceLength) {
      skipped.tooLong++;
      skipped.longest = Math.max(skipped.longest, byteLength);
      return;
    }
    if (line.length === 0) return;
    if (line.includes("\u2585")) return;
    if (lines.length < cap) lines.push(line);
    else {
      // Reservoir sampling (algorithm R): every line so far is kept with the same probability.
      const j = Math.floor(uniformDouble(rng) * (total + 1));
      if (j < cap) lines[j] = line;
    }
    total++;
  };
  if (typeof corpus === "string" || corpus instanceof URL) {
    for await (const { line, byteLength } of readLines(corpus, { name })) add(line, byteLength);
  } else {
    for await (const raw of corpus) {
      if (typeof raw !== "string") {
        throw new TypeError(`Cannot train tokenizer: the corpus yielded a ${typeof raw}, expected strings`);
      }
      for (const line of raw.split("\n")) {
        const text = line.endsWith("\r") ? line.slice(0, -1) : line;
        add(text, encoder.encode(text).length);
      }
    }
  }
  return { lines, total, skipped };
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
 */
class BpeTrainer {
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
