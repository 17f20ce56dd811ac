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
import { BOUNDARY_CHAR, BpeTrainer, compareCodePoints, META_SPACE, UNK_CHAR } from "./bpe_trainer.ts";

export { compareCodePoints } from "./bpe_trainer.ts";

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
