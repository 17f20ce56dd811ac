/**
 * `Tokenizer`: loads a SentencePiece `.model` file and encodes and decodes text exactly as the reference
 * library does (BPE, unigram, word and char models; the model's own normalizer; user-defined symbols;
 * unknown runs; byte fallback), with BPE-dropout and unigram sampling for subword regularization.
 * Pure TypeScript; needs no permission except to read a model from a path.
 *
 * @module
 */
import { SpanList, Vocab } from "./_vocab.ts";
import { BpeModel } from "./bpe.ts";
import { readHostFile } from "../host.ts";
import { SpmModelSyntaxError } from "./errors.ts";
import {
  type ModelProto,
  ModelType,
  parseModelProto,
  PieceType,
  serializeModelProto,
  TRAINER_SPEC_DEFAULTS,
  validateModelProto,
} from "./model_proto.ts";
import { Mt19937, randomlySeededMt19937, type RandomSource } from "./mt19937.ts";
import { type ByteBuffer, decodeBytePieces, Normalizer, oneCharLength } from "./normalizer.ts";
import { UnigramModel } from "./unigram.ts";
import type { DecodeOptions, EncodeOptions, Encoding, TokenizerModelType } from "./encode_options.ts";

export type { DecodeOptions, EncodeOptions, Encoding, TokenizerModelType } from "./encode_options.ts";

const MODEL_TYPE_NAMES: Record<number, TokenizerModelType> = {
  [ModelType.UNIGRAM]: "unigram",
  [ModelType.BPE]: "bpe",
  [ModelType.WORD]: "word",
  [ModelType.CHAR]: "char",
};
const META_SPACE = "\u2581";
const UTF8 = new TextDecoder();

/**
 * A SentencePiece tokenizer.
 *
 * @example Usage
 * ```ts
 * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
 *
 * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
 * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 })); // or Tokenizer.load("c.model")
 * const ids = tok.encode("in the beginning god created the heaven and the earth.");
 * console.log(tok.decode(ids)); // "in the beginning god created the heaven and the earth."
 * const sampled = tok.encode("in the beginning", { sample: true, alpha: 0.1, seed: 42 });
 * console.log(sampled); // the same text, in smaller pieces where merges were dropped
 * ```
 */
export class Tokenizer {
  /** The model as read from the file. */
  readonly proto: ModelProto;
  readonly #vocab: Vocab;
  readonly #normalizer: Normalizer;
  readonly #denormalizer: Normalizer | null;
  readonly #modelType: TokenizerModelType;
  readonly #bpe: BpeModel | null;
  readonly #unigram: UnigramModel | null;
  readonly #spans = new SpanList();
  readonly #unkSurface: string;
  readonly #treatWhitespaceAsSuffix: boolean;
  readonly #stripLeadingSpace: boolean;
  readonly #bosId: number;
  readonly #eosId: number;
  readonly #padId: number;
  #defaultRng: RandomSource | null = null;

  private constructor(proto: ModelProto) {
    this.proto = proto;
    const spec = proto.trainerSpec;
    this.#vocab = new Vocab(proto);
    this.#treatWhitespaceAsSuffix = spec.treatWhitespaceAsSuffix ?? false;
    this.#normalizer = new Normalizer(proto.normalizerSpec, {
      userSymbols: this.#vocab.userSymbols,
      treatWhitespaceAsSuffix: this.#treatWhitespaceAsSuffix,
    });
    const denorm = proto.denormalizerSpec;
    this.#denormalizer = denorm?.precompiledCharsmap !== undefined && denorm.precompiledCharsmap.length > 0
      ? new Normalizer(denorm)
      : null;
    this.#modelType = MODEL_TYPE_NAMES[spec.modelType ?? TRAINER_SPEC_DEFAULTS.modelType]!;
    this.#bpe = this.#modelType === "bpe" ? new BpeModel(this.#vocab) : null;
    this.#unigram = this.#modelType === "unigram" ? new UnigramModel(this.#vocab) : null;
    this.#unkSurface = spec.unkSurface ?? TRAINER_SPEC_DEFAULTS.unkSurface;
    const ns = proto.normalizerSpec;
    this.#stripLeadingSpace = (ns.addDummyPrefix ?? true) || (ns.removeExtraWhitespaces ?? true);
    const controlId = (piece: string) => {
      const id = this.#vocab.pieceToId(piece);
      return this.#vocab.types[id] === PieceType.CONTROL ? id : -1;
    };
    this.#bosId = controlId(spec.bosPiece ?? TRAINER_SPEC_DEFAULTS.bosPiece);
    this.#eosId = controlId(spec.eosPiece ?? TRAINER_SPEC_DEFAULTS.eosPiece);
    this.#padId = controlId(spec.padPiece ?? TRAINER_SPEC_DEFAULTS.padPiece);
  }

  /**
   * Loads a model from a file path, a URL, or the file's bytes.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const path = await Deno.makeTempFile({ suffix: ".model" });
   * await Deno.writeFile(path, await trainTokenizer({ corpus: ["a cat sat on the mat"], vocabSize: 30 }));
   * const tok = await Tokenizer.load(path);
   * console.log(tok.vocabSize); // 30
   * ```
   * @param source Path or URL of a `.model` file (needs read permission), or its bytes.
   * @returns The tokenizer.
   * @throws {SpmModelSyntaxError} If the file is not a usable SentencePiece model; the message names the
   *   path.
   */
  static async load(source: string | URL | Uint8Array): Promise<Tokenizer> {
    if (source instanceof Uint8Array) return Tokenizer.fromBytes(source);
    const bytes = await readHostFile(source);
    try {
      return Tokenizer.fromBytes(bytes);
    } catch (err) {
      if (err instanceof SpmModelSyntaxError) {
        const where = source instanceof URL ? source.href : source;
        const message = err.message.replace("SentencePiece model", `SentencePiece model ${where}`);
        throw new SpmModelSyntaxError(message, err.offset);
      }
      throw err;
    }
  }

  /**
   * Loads a model from the bytes of a `.model` file.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer } from "@difflm/core";
   * try {
   *   Tokenizer.fromBytes(new Uint8Array(0));
   * } catch (err) {
   *   console.log((err as Error).message); // "Cannot load SentencePiece model: the file is empty"
   * }
   * ```
   * @param bytes The file's bytes (as a `fetch` response's `arrayBuffer()` gives them, or a view of them).
   * @returns The tokenizer.
   * @throws {TypeError} If `bytes` is neither a Uint8Array nor an ArrayBuffer.
   * @throws {SpmModelSyntaxError} If the bytes are not a usable SentencePiece model.
   */
  static fromBytes(bytes: Uint8Array | ArrayBuffer): Tokenizer {
    if (bytes instanceof ArrayBuffer) return new Tokenizer(parseModelProto(new Uint8Array(bytes)));
    if (!(bytes instanceof Uint8Array)) {
      const kind = bytes === null || typeof bytes !== "object"
        ? String(bytes === null ? null : typeof bytes)
        : (bytes as object).constructor?.name ?? "an object";
      throw new TypeError(
        `Cannot load SentencePiece model: expected a Uint8Array or an ArrayBuffer, got ${kind}`,
      );
    }
    return new Tokenizer(parseModelProto(bytes));
  }

  /**
   * Makes a tokenizer from a model held in memory (for example one being built or edited).
   *
   * @example Usage
   * ```ts
   * import { parseModelProto, Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const proto = parseModelProto(await trainTokenizer({ corpus: ["a cat sat on the mat"], vocabSize: 30 }));
   * proto.trainerSpec.unkSurface = "?";
   * const tok = Tokenizer.fromProto(proto);
   * console.log(tok.decode(tok.encode("a dog"))); // "a ?o?": unknown characters show as "?"
   * ```
   * @param proto The model.
   * @returns The tokenizer.
   * @throws {SpmModelSyntaxError} If the model breaks a rule of the format.
   */
  static fromProto(proto: ModelProto): Tokenizer {
    validateModelProto(proto);
    return new Tokenizer(proto);
  }

  /**
   * The model serialized as a `.model` file.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const model = await trainTokenizer({ corpus: ["a cat sat on the mat"], vocabSize: 30 });
   * const bytes = Tokenizer.fromBytes(model).toBytes();
   * console.log(bytes.every((b, i) => b === model[i])); // true: identical to the bytes it was loaded from
   * ```
   * @returns The file's bytes.
   */
  toBytes(): Uint8Array<ArrayBuffer> {
    return serializeModelProto(this.proto);
  }

  /** The segmentation algorithm: `"bpe"`, `"unigram"`, `"word"` or `"char"`. */
  get modelType(): TokenizerModelType {
    return this.#modelType;
  }

  /** Number of pieces; ids are `0 … vocabSize - 1`. */
  get vocabSize(): number {
    return this.#vocab.pieces.length;
  }

  /** All pieces, indexed by id. */
  get pieces(): readonly string[] {
    return this.#vocab.pieces;
  }

  /** Id of `<s>`, or -1 when the model has none. */
  get bosId(): number {
    return this.#bosId;
  }

  /** Id of `</s>`, or -1 when the model has none. */
  get eosId(): number {
    return this.#eosId;
  }

  /** Id of `<pad>`, or -1 when the model has none. */
  get padId(): number {
    return this.#padId;
  }

  /** Id of `<unk>`. */
  get unkId(): number {
    return this.#vocab.unkId;
  }

  /**
   * The piece of an id.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * console.log(tok.idToPiece(tok.unkId)); // "<unk>"
   * ```
   * @param id A vocabulary id.
   * @returns The piece's text (spaces as `▁`).
   * @throws {RangeError} If `id` is not in `[0, vocabSize)`.
   */
  idToPiece(id: number): string {
    this.#checkId(id);
    return this.#vocab.pieces[id]!;
  }

  /**
   * The id of a piece, or the unknown id when the vocabulary lacks it.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * console.log(tok.pieceToId("▁the")); // 17
   * ```
   * @param piece The piece's text (spaces as `▁`).
   * @returns Its id.
   */
  pieceToId(piece: string): number {
    return this.#vocab.pieceToId(piece);
  }

  /**
   * The type of a piece (`PieceType.NORMAL`, `CONTROL`, …).
   *
   * @example Usage
   * ```ts
   * import { PieceType, Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * console.log(tok.pieceType(tok.eosId) === PieceType.CONTROL); // true
   * ```
   * @param id A vocabulary id.
   * @returns The piece's type.
   * @throws {RangeError} If `id` is not in `[0, vocabSize)`.
   */
  pieceType(id: number): PieceType {
    this.#checkId(id);
    return this.#vocab.types[id] as PieceType;
  }

  /**
   * The normalized form of a text: the model's character map, whitespace rules and dummy prefix.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * console.log(tok.normalize("  ﬁnal  ")); // "▁final"
   * ```
   * @param text Any text.
   * @returns The normalized text, spaces shown as `▁`.
   */
  normalize(text: string): string {
    const buf = this.#normalizer.normalizeToBytes(text);
    return UTF8.decode(buf.bytes.subarray(0, buf.length));
  }

  /**
   * Encodes text to ids. Deterministic by default; with `sample: true` draws a segmentation.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * console.log(tok.encode("in the beginning")); // [39, 19, 17, 39, 38, 19, 44, 19, 49]
   * console.log(tok.encode("in the beginning", { sample: true, alpha: 0.1, seed: 1 })); // BPE-dropout
   * ```
   * @param text Any text (a line; newlines are treated as spaces by `nmt_nfkc`).
   * @param options Sampling and BOS/EOS options.
   * @returns The ids.
   * @throws {TypeError} If `alpha` is not a number.
   * @throws {RangeError} If `alpha` is negative or NaN, or BOS/EOS is requested but absent.
   */
  encode(text: string, options?: EncodeOptions): number[] {
    const spans = this.#segment(text, options);
    const ids: number[] = [];
    if (options?.addBos) ids.push(this.#requireSpecial(this.#bosId, "BOS"));
    this.#collect(spans, ids, null, null);
    if (options?.addEos) ids.push(this.#requireSpecial(this.#eosId, "EOS"));
    return ids;
  }

  /**
   * Encodes text to pieces (an unknown run shows its normalized text).
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * console.log(tok.encodeAsPieces("in the beginning")); // ["▁", "in", "▁the", "▁", "beg", "in", "n", "in", "g"]
   * ```
   * @param text Any text.
   * @param options Sampling options.
   * @returns The pieces.
   */
  encodeAsPieces(text: string, options?: EncodeOptions): string[] {
    const spans = this.#segment(text, options);
    const pieces: string[] = [];
    this.#collect(spans, null, pieces, this.#lastNormalized);
    return pieces;
  }

  /**
   * Encodes text and returns ids, pieces and the normalized text together.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * const { ids, pieces, normalized } = tok.encodeDetailed("In the beginning");
   * console.log(ids[1], pieces[1], normalized); // 3 "I" "▁In▁the▁beginning": an unknown character keeps its text
   * ```
   * @param text Any text.
   * @param options Sampling options.
   * @returns Ids, pieces and normalized text.
   */
  encodeDetailed(text: string, options?: EncodeOptions): Encoding {
    const spans = this.#segment(text, options);
    const ids: number[] = [];
    const pieces: string[] = [];
    const buf = this.#lastNormalized!;
    this.#collect(spans, ids, pieces, buf);
    return { ids, pieces, normalized: UTF8.decode(buf.bytes.subarray(0, buf.length)) };
  }

  /**
   * Decodes ids to text: control ids (BOS, padding) produce nothing, the unknown id produces the
   * model's unknown surface (` ⁇ `), byte pieces are reassembled as UTF-8, and decoding stops at the
   * first EOS unless `stopAtEos` is false.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * console.log(tok.decode([...tok.encode("in the"), tok.eosId, ...tok.encode("god")])); // "in the": EOS ends it
   * ```
   * @param ids Vocabulary ids.
   * @param options Where to stop.
   * @returns The text.
   * @throws {RangeError} If an id is not in `[0, vocabSize)`.
   */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string {
    const stopAtEos = options?.stopAtEos ?? true;
    const pieces: string[] = [];
    const pieceIds: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      this.#checkId(id);
      if (stopAtEos && id === this.#eosId) break;
      if (id === this.#padId) continue;
      pieces.push(this.#vocab.pieces[id]!);
      pieceIds.push(id);
    }
    return this.#decode(pieces, pieceIds);
  }

  /**
   * Decodes pieces to text. A piece outside the vocabulary (an unknown run from
   * {@linkcode Tokenizer.encodeAsPieces}) is copied verbatim.
   *
   * @example Usage
   * ```ts
   * import { Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
   * const corpus = ["in the beginning god created the heaven and the earth.", "and the earth was without form, and void."];
   * const tok = Tokenizer.fromBytes(await trainTokenizer({ corpus, vocabSize: 60 }));
   * console.log(tok.decodePieces(["▁", "in", "▁the", "▁", "GOD"])); // "in the GOD"
   * ```
   * @param pieces Piece strings.
   * @returns The text.
   */
  decodePieces(pieces: readonly string[]): string {
    return this.#decode(pieces, pieces.map((p) => this.#vocab.pieceToId(p)));
  }

  #decode(pieces: readonly string[], ids: readonly number[]): string {
    const vocab = this.#vocab;
    let text = "";
    for (let i = 0; i < pieces.length; i++) {
      const id = ids[i]!;
      const type = vocab.types[id];
      if (type === PieceType.BYTE) {
        const bytes: number[] = [];
        while (i < pieces.length && vocab.types[ids[i]!] === PieceType.BYTE) {
          bytes.push(parseInt(pieces[i]!.slice(3, 5), 16));
          i++;
        }
        i--;
        text += decodeBytePieces(bytes);
        continue;
      }
      const piece = pieces[i]!;
      if (type === PieceType.CONTROL) continue;
      if (type === PieceType.UNKNOWN) {
        text += piece === vocab.pieces[id] ? this.#unkSurface : piece;
        continue;
      }
      let surface = piece;
      if (this.#treatWhitespaceAsSuffix) {
        if (i === pieces.length - 1 && this.#stripLeadingSpace && surface.endsWith(META_SPACE)) {
          surface = surface.slice(0, -1);
        }
      } else if (text.length === 0 && this.#stripLeadingSpace && surface.startsWith(META_SPACE)) {
        surface = surface.slice(1);
      }
      text += surface.replaceAll(META_SPACE, " ");
    }
    return this.#denormalizer === null ? text : this.#denormalizer.normalize(text);
  }

  #lastNormalized: ByteBuffer | null = null;

  #segment(text: string, options: EncodeOptions | undefined): SpanList {
    if (typeof text !== "string") {
      throw new TypeError(`Cannot encode a value of type ${typeof text}: expected a string`);
    }
    const buf = this.#normalizer.normalizeToBytes(text);
    this.#lastNormalized = buf;
    const spans = this.#spans;
    spans.length = 0;
    const src = buf.bytes;
    const length = buf.length;
    const sample = options?.sample ?? false;
    const alpha = options?.alpha ?? 0.1;
    if (typeof alpha !== "number") {
      throw new TypeError(`Cannot encode with alpha ${JSON.stringify(alpha)}: it is not a number`);
    }
    if (sample && !(alpha >= 0)) {
      throw new RangeError(`Cannot sample with alpha ${alpha}: alpha must be >= 0`);
    }
    switch (this.#modelType) {
      case "bpe":
        if (sample && alpha > 0) this.#bpe!.encode(src, length, { alpha, rng: this.#rng(options) }, spans);
        else this.#bpe!.encode(src, length, { alpha: 0, rng: null }, spans);
        break;
      case "unigram": {
        const nbestSize = options?.nbestSize ?? -1;
        if (sample && nbestSize !== 0 && nbestSize !== 1) {
          const sampleOptions = { alpha, nbestSize, rng: this.#rng(options) };
          this.#unigram!.sample(src, length, sampleOptions, spans);
        } else this.#unigram!.encode(src, length, spans);
        break;
      }
      case "char":
        this.#segmentChars(src, length, spans);
        break;
      case "word":
        this.#segmentWords(src, length, spans);
        break;
    }
    return spans;
  }

  #rng(options: EncodeOptions | undefined): RandomSource {
    if (options?.rng !== undefined) return options.rng;
    if (options?.seed !== undefined) return new Mt19937(options.seed);
    return (this.#defaultRng ??= randomlySeededMt19937());
  }

  #segmentChars(src: Uint8Array, length: number, spans: SpanList): void {
    const matcher = this.#vocab.userMatcher;
    for (let pos = 0; pos < length;) {
      let n = matcher === null ? 0 : matcher.match(src, pos, length);
      const id = n > 0 ? matcher!.value : -1;
      if (n === 0) n = Math.min(oneCharLength(src[pos]!), length - pos);
      spans.push(pos, n, id >= 0 ? id : this.#vocab.pieceToId(UTF8.decode(src.subarray(pos, pos + n))));
      pos += n;
    }
  }

  #segmentWords(src: Uint8Array, length: number, spans: SpanList): void {
    // Words start at each `▁` (or end after it when whitespace is a suffix).
    let start = 0;
    const suffix = this.#treatWhitespaceAsSuffix;
    const isMetaSpace = (p: number) => src[p] === 0xe2 && src[p + 1] === 0x96 && src[p + 2] === 0x81;
    for (let pos = 0; pos < length;) {
      const n = Math.min(oneCharLength(src[pos]!), length - pos);
      if (suffix) {
        if (isMetaSpace(pos)) {
          spans.push(start, pos + n - start, -1);
          start = pos + n;
        }
      } else if (isMetaSpace(pos) && pos > start) {
        spans.push(start, pos - start, -1);
        start = pos;
      }
      pos += n;
    }
    if (start < length) spans.push(start, length - start, -1);
    for (let i = 0; i < spans.length; i++) {
      const s = spans.start[i]!;
      spans.id[i] = this.#vocab.pieceToId(UTF8.decode(src.subarray(s, s + spans.len[i]!)));
    }
  }

  /** Turns spans into ids and/or pieces: unknown runs merge into one, or become bytes with byte fallback. */
  #collect(spans: SpanList, ids: number[] | null, pieces: string[] | null, buf: ByteBuffer | null): void {
    const vocab = this.#vocab;
    const unkId = vocab.unkId;
    const src = buf?.bytes;
    let prevUnk = false;
    for (let i = 0; i < spans.length; i++) {
      const id = spans.id[i]!;
      const isUnk = id === unkId;
      if (isUnk && vocab.byteFallback) {
        const start = spans.start[i]!;
        const bytes = this.#lastNormalized!.bytes;
        for (let b = start; b < start + spans.len[i]!; b++) {
          const byteId = vocab.byteIds[bytes[b]!]!;
          ids?.push(byteId);
          pieces?.push(vocab.pieces[byteId]!);
        }
      } else if (isUnk && prevUnk) {
        if (pieces !== null) {
          const start = spans.start[i]!;
          pieces[pieces.length - 1] += UTF8.decode(src!.subarray(start, start + spans.len[i]!));
        }
      } else {
        ids?.push(id);
        if (pieces !== null) {
          const type = vocab.types[id];
          if (isUnk || type === PieceType.CONTROL || type === PieceType.BYTE) {
            const start = spans.start[i]!;
            pieces.push(UTF8.decode(src!.subarray(start, start + spans.len[i]!)));
          } else {
            pieces.push(vocab.pieces[id]!);
          }
        }
      }
      prevUnk = isUnk;
    }
  }

  #requireSpecial(id: number, name: string): number {
    if (id < 0) throw new RangeError(`Cannot add ${name}: the model has no ${name} piece`);
    return id;
  }

  #checkId(id: number): void {
    if (typeof id !== "number") {
      throw new TypeError(`Cannot use id ${JSON.stringify(id)}: ids must be numbers`);
    }
    if (!Number.isInteger(id) || id < 0 || id >= this.#vocab.pieces.length) {
      throw new RangeError(`Cannot use id ${id}: ids must be integers in [0, ${this.#vocab.pieces.length})`);
    }
  }
}
