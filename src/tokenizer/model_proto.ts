/**
 * SentencePiece's `.model` file: one serialized protobuf `sentencepiece.ModelProto` (proto2). This
 * module reads it into plain objects, checks the rules the reference library enforces when it loads a
 * model, and writes it back. Writing follows the reference serializer (fields in number order, unknown
 * fields last), so reading and writing a reference model reproduces its bytes.
 *
 * Proto2 presence matters: an absent field means its declared default, so optional properties here are
 * `undefined` when the field is absent and {@linkcode TRAINER_SPEC_DEFAULTS} /
 * {@linkcode NORMALIZER_SPEC_DEFAULTS} give the value it stands for.
 *
 * @module
 */
import { ProtoReader, ProtoWriter, type WireField } from "./_protobuf.ts";
import { SpmModelSyntaxError } from "./errors.ts";

/**
 * Piece types of `ModelProto.SentencePiece.Type`.
 *
 * @example Usage
 * ```ts
 * import { PieceType } from "@difflm/core/tokenizer";
 * console.log(PieceType.USER_DEFINED); // 4
 * ```
 */
export const PieceType = {
  /** An ordinary piece that segmentation produces. */
  NORMAL: 1,
  /** The unknown piece (`<unk>`); exactly one per model. */
  UNKNOWN: 2,
  /** A control symbol (`<s>`, `</s>`, `<pad>`): never produced from text, decodes to nothing. */
  CONTROL: 3,
  /** A user-defined symbol: always kept whole and never merged with its neighbours. */
  USER_DEFINED: 4,
  /** A piece the encoder splits back into the two pieces it was merged from. */
  UNUSED: 5,
  /** A byte piece `<0xHH>` used by byte fallback. */
  BYTE: 6,
} as const;

/** One of the {@linkcode PieceType} values. */
export type PieceType = (typeof PieceType)[keyof typeof PieceType];

/**
 * Segmentation algorithms of `TrainerSpec.ModelType`.
 *
 * @example Usage
 * ```ts
 * import { ModelType } from "@difflm/core/tokenizer";
 * console.log(ModelType.BPE); // 2
 * ```
 */
export const ModelType = {
  /** Unigram language model with Viterbi segmentation (the proto2 default). */
  UNIGRAM: 1,
  /** Byte-pair encoding: greedy merges ranked by score. */
  BPE: 2,
  /** Whitespace-delimited words. */
  WORD: 3,
  /** Single characters. */
  CHAR: 4,
} as const;

/** One of the {@linkcode ModelType} values. */
export type ModelType = (typeof ModelType)[keyof typeof ModelType];

/** One vocabulary entry; its id is its position in {@linkcode ModelProto.pieces}. */
export interface ModelPiece {
  /** The piece's text, with spaces shown as `▁` (U+2581). */
  piece: string;
  /** Merge rank (BPE, higher merges first) or log-probability (unigram). */
  score: number;
  /** The piece's type. */
  type: PieceType;
}

/**
 * `TrainerSpec`: mostly a record of the training options; the encoder reads the model type, the
 * special ids and pieces, the whitespace options and `byte_fallback`.
 */
export interface TrainerSpec {
  /** Training input files (field 1). */
  input?: string[];
  /** Input format, `text` or `tsv` (field 7). */
  inputFormat?: string;
  /** Output prefix given to the trainer (field 2). */
  modelPrefix?: string;
  /** Segmentation algorithm (field 3); absent means UNIGRAM. */
  modelType?: ModelType;
  /** Requested vocabulary size (field 4). */
  vocabSize?: number;
  /** Languages accepted (field 5). */
  acceptLanguage?: string[];
  /** Number of self-test sentences stored in the model (field 6). */
  selfTestSampleSize?: number;
  /** Differential-privacy training (field 50). */
  enableDifferentialPrivacy?: boolean;
  /** Differential-privacy noise level (field 51). */
  differentialPrivacyNoiseLevel?: number;
  /** Differential-privacy clipping threshold (field 52). */
  differentialPrivacyClippingThreshold?: number;
  /** Fraction of characters the alphabet must cover (field 10). */
  characterCoverage?: number;
  /** Cap on the number of sentences loaded, 0 = all (field 11). */
  inputSentenceSize?: number;
  /** Whether sentences are sampled at random when capped (field 19). */
  shuffleInputSentence?: boolean;
  /** Deprecated (field 12). */
  miningSentenceSize?: number;
  /** Deprecated (field 13). */
  trainingSentenceSize?: number;
  /** Unigram seed vocabulary size (field 14). */
  seedSentencepieceSize?: number;
  /** Unigram pruning factor (field 15). */
  shrinkingFactor?: number;
  /** Longest sentence in bytes the trainer loads (field 18). */
  maxSentenceLength?: number;
  /** Trainer threads (field 16). */
  numThreads?: number;
  /** Unigram EM sub-iterations (field 17). */
  numSubIterations?: number;
  /** Longest piece in characters (field 20). */
  maxSentencepieceLength?: number;
  /** Pieces never span two Unicode scripts (field 21). */
  splitByUnicodeScript?: boolean;
  /** Digits count as their own script (field 23). */
  splitByNumber?: boolean;
  /** Pieces never span a space (field 22). */
  splitByWhitespace?: boolean;
  /** `▁` ends pieces instead of starting them (field 24). */
  treatWhitespaceAsSuffix?: boolean;
  /** Pieces made only of `▁` are allowed (field 26). */
  allowWhitespaceOnlyPieces?: boolean;
  /** Every digit is its own piece (field 25). */
  splitDigits?: boolean;
  /** Pre-tokenization delimiter (field 53). */
  pretokenizationDelimiter?: string;
  /** Control symbols (field 30). */
  controlSymbols?: string[];
  /** User-defined symbols (field 31). */
  userDefinedSymbols?: string[];
  /** Characters that must be in the alphabet (field 36). */
  requiredChars?: string;
  /** Unknown characters become byte pieces (field 35). */
  byteFallback?: boolean;
  /** Whether the `.vocab` file lists scores (field 32). */
  vocabularyOutputPieceScore?: boolean;
  /** Whether the vocabulary size is exact (field 33). */
  hardVocabLimit?: boolean;
  /** Use all words as vocabulary (WORD/CHAR) (field 34). */
  useAllVocab?: boolean;
  /** Id of `<unk>` (field 40). */
  unkId?: number;
  /** Id of `<s>`, -1 when absent (field 41). */
  bosId?: number;
  /** Id of `</s>`, -1 when absent (field 42). */
  eosId?: number;
  /** Id of `<pad>`, -1 when absent (field 43). */
  padId?: number;
  /** Text of the unknown piece (field 45). */
  unkPiece?: string;
  /** Text of the BOS piece (field 46). */
  bosPiece?: string;
  /** Text of the EOS piece (field 47). */
  eosPiece?: string;
  /** Text of the padding piece (field 48). */
  padPiece?: string;
  /** Text emitted when decoding the unknown id (field 44). */
  unkSurface?: string;
  /** Large-corpus mode (field 49). */
  trainExtremelyLargeCorpus?: boolean;
  /** Unigram seed pieces file (field 54). */
  seedSentencepiecesFile?: string;
  /** Fields this reader does not know, kept whole so that writing reproduces them. */
  unknownFields?: Uint8Array[];
}

/** `NormalizerSpec`: the text normalization stored in the model. */
export interface NormalizerSpec {
  /** Rule name, e.g. `nmt_nfkc` (informational) (field 1). */
  name?: string;
  /** Compiled normalization table (field 2); empty means identity. */
  precompiledCharsmap?: Uint8Array;
  /** Prepend `▁` to the text (field 3). */
  addDummyPrefix?: boolean;
  /** Drop leading and trailing spaces and collapse runs of spaces (field 4). */
  removeExtraWhitespaces?: boolean;
  /** Write spaces as `▁` (field 5). */
  escapeWhitespaces?: boolean;
  /** Rules in TSV form, a training-time input (field 6). */
  normalizationRuleTsv?: string;
  /** Fields this reader does not know, kept whole so that writing reproduces them. */
  unknownFields?: Uint8Array[];
}

/** A whole `.model` file. */
export interface ModelProto {
  /** The vocabulary; id = position. */
  pieces: ModelPiece[];
  /** Training options and the encoder settings they carry (absent fields take their defaults). */
  trainerSpec: TrainerSpec;
  /** The normalizer applied to text before segmentation. */
  normalizerSpec: NormalizerSpec;
  /** A normalizer applied to decoded text; absent in most models. */
  denormalizerSpec?: NormalizerSpec;
  /** Serialized `SelfTestData`, kept as bytes. */
  selfTestData?: Uint8Array;
  /** Fields this reader does not know, kept whole so that writing reproduces them. */
  unknownFields?: Uint8Array[];
}

/**
 * The proto2 defaults of the `TrainerSpec` fields the tokenizer reads.
 *
 * @example Usage
 * ```ts
 * import { TRAINER_SPEC_DEFAULTS } from "@difflm/core/tokenizer";
 * console.log(TRAINER_SPEC_DEFAULTS.unkSurface); // " ⁇ "
 * ```
 */
export const TRAINER_SPEC_DEFAULTS = {
  modelType: ModelType.UNIGRAM as ModelType,
  vocabSize: 8000,
  characterCoverage: 0.9995,
  maxSentenceLength: 4192,
  maxSentencepieceLength: 16,
  splitByUnicodeScript: true,
  splitByNumber: true,
  splitByWhitespace: true,
  treatWhitespaceAsSuffix: false,
  allowWhitespaceOnlyPieces: false,
  splitDigits: false,
  byteFallback: false,
  unkId: 0,
  bosId: 1,
  eosId: 2,
  padId: -1,
  unkPiece: "<unk>",
  bosPiece: "<s>",
  eosPiece: "</s>",
  padPiece: "<pad>",
  unkSurface: " \u2047 ",
} as const;

/**
 * The proto2 defaults of the `NormalizerSpec` flags.
 *
 * @example Usage
 * ```ts
 * import { NORMALIZER_SPEC_DEFAULTS } from "@difflm/core/tokenizer";
 * console.log(NORMALIZER_SPEC_DEFAULTS.escapeWhitespaces); // true
 * ```
 */
export const NORMALIZER_SPEC_DEFAULTS = {
  addDummyPrefix: true,
  removeExtraWhitespaces: true,
  escapeWhitespaces: true,
} as const;

type ScalarKind = "string" | "bytes" | "int32" | "enum" | "uint64" | "float" | "bool";

interface FieldDef {
  num: number;
  key: string;
  kind: ScalarKind;
  repeated?: boolean;
}

/** TrainerSpec fields in field-number order, which is the order the reference serializer writes. */
const TRAINER_SPEC_FIELDS: FieldDef[] = [
  { num: 1, key: "input", kind: "string", repeated: true },
  { num: 2, key: "modelPrefix", kind: "string" },
  { num: 3, key: "modelType", kind: "enum" },
  { num: 4, key: "vocabSize", kind: "int32" },
  { num: 5, key: "acceptLanguage", kind: "string", repeated: true },
  { num: 6, key: "selfTestSampleSize", kind: "int32" },
  { num: 7, key: "inputFormat", kind: "string" },
  { num: 10, key: "characterCoverage", kind: "float" },
  { num: 11, key: "inputSentenceSize", kind: "uint64" },
  { num: 12, key: "miningSentenceSize", kind: "int32" },
  { num: 13, key: "trainingSentenceSize", kind: "int32" },
  { num: 14, key: "seedSentencepieceSize", kind: "int32" },
  { num: 15, key: "shrinkingFactor", kind: "float" },
  { num: 16, key: "numThreads", kind: "int32" },
  { num: 17, key: "numSubIterations", kind: "int32" },
  { num: 18, key: "maxSentenceLength", kind: "int32" },
  { num: 19, key: "shuffleInputSentence", kind: "bool" },
  { num: 20, key: "maxSentencepieceLength", kind: "int32" },
  { num: 21, key: "splitByUnicodeScript", kind: "bool" },
  { num: 22, key: "splitByWhitespace", kind: "bool" },
  { num: 23, key: "splitByNumber", kind: "bool" },
  { num: 24, key: "treatWhitespaceAsSuffix", kind: "bool" },
  { num: 25, key: "splitDigits", kind: "bool" },
  { num: 26, key: "allowWhitespaceOnlyPieces", kind: "bool" },
  { num: 30, key: "controlSymbols", kind: "string", repeated: true },
  { num: 31, key: "userDefinedSymbols", kind: "string", repeated: true },
  { num: 32, key: "vocabularyOutputPieceScore", kind: "bool" },
  { num: 33, key: "hardVocabLimit", kind: "bool" },
  { num: 34, key: "useAllVocab", kind: "bool" },
  { num: 35, key: "byteFallback", kind: "bool" },
  { num: 36, key: "requiredChars", kind: "string" },
  { num: 40, key: "unkId", kind: "int32" },
  { num: 41, key: "bosId", kind: "int32" },
  { num: 42, key: "eosId", kind: "int32" },
  { num: 43, key: "padId", kind: "int32" },
  { num: 44, key: "unkSurface", kind: "string" },
  { num: 45, key: "unkPiece", kind: "string" },
  { num: 46, key: "bosPiece", kind: "string" },
  { num: 47, key: "eosPiece", kind: "string" },
  { num: 48, key: "padPiece", kind: "string" },
  { num: 49, key: "trainExtremelyLargeCorpus", kind: "bool" },
  { num: 50, key: "enableDifferentialPrivacy", kind: "bool" },
  { num: 51, key: "differentialPrivacyNoiseLevel", kind: "float" },
  { num: 52, key: "differentialPrivacyClippingThreshold", kind: "uint64" },
  { num: 53, key: "pretokenizationDelimiter", kind: "string" },
  { num: 54, key: "seedSentencepiecesFile", kind: "string" },
];

const NORMALIZER_SPEC_FIELDS: FieldDef[] = [
  { num: 1, key: "name", kind: "string" },
  { num: 2, key: "precompiledCharsmap", kind: "bytes" },
  { num: 3, key: "addDummyPrefix", kind: "bool" },
  { num: 4, key: "removeExtraWhitespaces", kind: "bool" },
  { num: 5, key: "escapeWhitespaces", kind: "bool" },
  { num: 6, key: "normalizationRuleTsv", kind: "string" },
];

const MODEL_TYPES = new Set<number>(Object.values(ModelType));
const PIECE_TYPES = new Set<number>(Object.values(PieceType));

function readScalar(reader: ProtoReader, f: WireField, kind: ScalarKind): unknown {
  switch (kind) {
    case "string":
      return reader.string(f);
    case "bytes":
      return reader.payload(f).slice();
    case "int32":
    case "enum":
      return reader.int32(f);
    case "uint64":
      return reader.uint64(f);
    case "float":
      return reader.float32(f);
    case "bool":
      return reader.bool(f);
  }
}

function writeScalar(writer: ProtoWriter, num: number, kind: ScalarKind, value: unknown): void {
  switch (kind) {
    case "string":
      return writer.string(num, value as string);
    case "bytes":
      return writer.bytes(num, value as Uint8Array);
    case "int32":
    case "enum":
      return writer.int32(num, value as number);
    case "uint64":
      return writer.uint64(num, value as number);
    case "float":
      return writer.float32(num, value as number);
    case "bool":
      return writer.bool(num, value as boolean);
  }
}

function readTable(reader: ProtoReader, table: FieldDef[]): Record<string, unknown> {
  const byNum = new Map(table.map((d) => [d.num, d]));
  const out: Record<string, unknown> = {};
  for (let f = reader.next(); f !== null; f = reader.next()) {
    const def = byNum.get(f.field);
    if (def === undefined) {
      ((out.unknownFields ??= []) as Uint8Array[]).push(reader.bytes.slice(f.start, f.end));
      continue;
    }
    const value = readScalar(reader, f, def.kind);
    if (def.repeated) ((out[def.key] ??= []) as unknown[]).push(value);
    else out[def.key] = value; // proto2: the last occurrence wins
  }
  return out;
}

function writeTable(writer: ProtoWriter, table: FieldDef[], msg: Record<string, unknown>): void {
  for (const def of table) {
    const value = msg[def.key];
    if (value === undefined) continue;
    if (def.repeated) { for (const v of value as unknown[]) writeScalar(writer, def.num, def.kind, v); }
    else writeScalar(writer, def.num, def.kind, value);
  }
  for (const raw of (msg.unknownFields as Uint8Array[] | undefined) ?? []) writer.raw(raw);
}

function readPiece(reader: ProtoReader, index: number, offset: number): ModelPiece {
  let piece: string | undefined;
  let score = 0;
  let type: number = PieceType.NORMAL;
  for (let f = reader.next(); f !== null; f = reader.next()) {
    if (f.field === 1) piece = reader.string(f);
    else if (f.field === 2) score = reader.float32(f);
    else if (f.field === 3) type = reader.int32(f);
  }
  if (piece === undefined || piece.length === 0) {
    throw new SpmModelSyntaxError(
      `Cannot load SentencePiece model: piece ${index} at byte ${offset} has no text`,
      offset,
    );
  }
  if (!PIECE_TYPES.has(type)) {
    throw new SpmModelSyntaxError(
      `Cannot load SentencePiece model: piece ${index} (${JSON.stringify(piece)}) at byte ${offset} ` +
        `has unknown type ${type}`,
      offset,
    );
  }
  return { piece, score, type: type as PieceType };
}

/**
 * Reads a `.model` file and checks the rules the reference library enforces when loading: at least one
 * piece, exactly one UNKNOWN piece, no duplicated piece, BYTE pieces only with byte fallback (and then
 * all 256 of them), finite scores, and a known model type. It also requires the `trainer_spec` and
 * `normalizer_spec` messages that every SentencePiece writer stores after the pieces, so that a file
 * cut short between two pieces is not mistaken for a smaller model.
 *
 * @example Usage
 * ```ts
 * import { parseModelProto, trainTokenizer } from "@difflm/core/tokenizer";
 * const proto = parseModelProto(await trainTokenizer({ corpus: ["a cat sat on the mat"], vocabSize: 30 }));
 * console.log(proto.pieces.length); // 30
 * ```
 * @param bytes The file's bytes.
 * @returns The model, with absent optional fields left `undefined`.
 * @throws {SpmModelSyntaxError} If the bytes are empty, truncated, not a `ModelProto`, or break a rule.
 */
export function parseModelProto(bytes: Uint8Array): ModelProto {
  if (bytes.length === 0) {
    throw new SpmModelSyntaxError("Cannot load SentencePiece model: the file is empty", 0);
  }
  const reader = new ProtoReader(bytes, 0, bytes.length, "SentencePiece model");
  const pieces: ModelPiece[] = [];
  const pieceOffsets: number[] = [];
  let trainerSpec: TrainerSpec | undefined;
  let normalizerSpec: NormalizerSpec | undefined;
  let denormalizerSpec: NormalizerSpec | undefined;
  let selfTestData: Uint8Array | undefined;
  let unknownFields: Uint8Array[] | undefined;
  for (let f = reader.next(); f !== null; f = reader.next()) {
    switch (f.field) {
      case 1:
        pieceOffsets.push(f.start);
        pieces.push(readPiece(reader.message(f, "SentencePiece model (piece)"), pieces.length, f.start));
        break;
      case 2:
        trainerSpec = readTable(reader.message(f, "SentencePiece model (trainer_spec)"), TRAINER_SPEC_FIELDS);
        break;
      case 3:
        normalizerSpec = readTable(
          reader.message(f, "SentencePiece model (normalizer_spec)"),
          NORMALIZER_SPEC_FIELDS,
        );
        break;
      case 4:
        selfTestData = reader.payload(f).slice();
        break;
      case 5:
        denormalizerSpec = readTable(
          reader.message(f, "SentencePiece model (denormalizer_spec)"),
          NORMALIZER_SPEC_FIELDS,
        );
        break;
      default:
        (unknownFields ??= []).push(bytes.slice(f.start, f.end));
    }
  }
  // The reference writer always stores both specs after the pieces; a file without them was cut short.
  for (const [spec, name] of [[trainerSpec, "trainer_spec"], [normalizerSpec, "normalizer_spec"]] as const) {
    if (spec === undefined && pieces.length > 0) {
      throw new SpmModelSyntaxError(
        `Cannot load SentencePiece model: it has no ${name}; the file is truncated or not a SentencePiece model`,
        bytes.length,
      );
    }
  }
  const proto: ModelProto = {
    pieces,
    trainerSpec: trainerSpec ?? {},
    normalizerSpec: normalizerSpec ?? {},
  };
  if (denormalizerSpec !== undefined) proto.denormalizerSpec = denormalizerSpec;
  if (selfTestData !== undefined) proto.selfTestData = selfTestData;
  if (unknownFields !== undefined) proto.unknownFields = unknownFields;
  validateModelProto(proto, (i) => pieceOffsets[i] ?? bytes.length, bytes.length);
  return proto;
}

/**
 * Checks the rules the reference library enforces when it loads a model.
 *
 * @example Usage
 * ```ts
 * import { validateModelProto } from "@difflm/core/tokenizer";
 * try {
 *   validateModelProto({ pieces: [{ piece: "a", score: 0, type: 1 }], trainerSpec: {}, normalizerSpec: {} });
 * } catch (err) {
 *   console.log((err as Error).message); // Cannot load SentencePiece model: it has no UNKNOWN piece
 * }
 * ```
 * @param proto The model to check.
 * @param offsetOf Maps a piece index to the byte offset reported in errors.
 * @param endOffset Offset reported for problems that belong to no piece.
 * @throws {SpmModelSyntaxError} If a rule is broken.
 */
export function validateModelProto(
  proto: ModelProto,
  offsetOf: (index: number) => number = () => 0,
  endOffset = 0,
): void {
  const fail = (message: string, offset: number): never => {
    throw new SpmModelSyntaxError(`Cannot load SentencePiece model: ${message}`, offset);
  };
  const spec = proto.trainerSpec;
  if (proto.pieces.length === 0) fail("it has no pieces; not a SentencePiece model", endOffset);
  const modelType = spec.modelType ?? TRAINER_SPEC_DEFAULTS.modelType;
  if (!MODEL_TYPES.has(modelType)) fail(`unknown model type ${modelType}`, endOffset);
  const byteFallback = spec.byteFallback ?? TRAINER_SPEC_DEFAULTS.byteFallback;
  const seen = new Map<string, number>();
  let unkIndex = -1;
  let byteCount = 0;
  proto.pieces.forEach((p, i) => {
    const previous = seen.get(p.piece);
    if (previous !== undefined) {
      fail(`piece ${i} ${JSON.stringify(p.piece)} duplicates piece ${previous}`, offsetOf(i));
    }
    seen.set(p.piece, i);
    if (!Number.isFinite(p.score)) fail(`piece ${i} has score ${p.score}`, offsetOf(i));
    if (p.type === PieceType.UNKNOWN) {
      if (unkIndex >= 0) fail(`pieces ${unkIndex} and ${i} are both UNKNOWN`, offsetOf(i));
      unkIndex = i;
    }
    if (p.type === PieceType.BYTE) {
      if (!byteFallback) {
        fail(`piece ${i} ${JSON.stringify(p.piece)} is a BYTE piece but byte_fallback is off`, offsetOf(i));
      }
      if (!/^<0x[0-9A-F]{2}>$/.test(p.piece)) {
        fail(`BYTE piece ${i} ${JSON.stringify(p.piece)} is not of the form <0xHH>`, offsetOf(i));
      }
      byteCount++;
    }
  });
  if (unkIndex < 0) fail("it has no UNKNOWN piece", endOffset);
  if (byteFallback && byteCount !== 256) {
    fail(`byte_fallback is on but ${byteCount} of the 256 BYTE pieces exist`, endOffset);
  }
  const charsmap = proto.normalizerSpec.precompiledCharsmap;
  if (charsmap !== undefined && charsmap.length > 0) {
    const trieSize = charsmap.length >= 4
      ? new DataView(charsmap.buffer, charsmap.byteOffset, 4).getUint32(0, true)
      : Infinity;
    if (trieSize + 4 > charsmap.length || trieSize % 4 !== 0) {
      fail("the normalizer's precompiled_charsmap is malformed", endOffset);
    }
  }
}

/**
 * Writes a model as the reference serializer does: fields in number order, a piece's `type` only when
 * it is not NORMAL, and unknown fields kept from reading at the end of their message.
 *
 * @example Usage
 * ```ts
 * import { parseModelProto, serializeModelProto, trainTokenizer } from "@difflm/core/tokenizer";
 * const bytes = await trainTokenizer({ corpus: ["a cat sat on the mat"], vocabSize: 30 });
 * const again = serializeModelProto(parseModelProto(bytes));
 * console.log(again.every((b, i) => b === bytes[i])); // true: byte-identical
 * ```
 * @param proto The model to write.
 * @returns The `.model` file's bytes.
 */
export function serializeModelProto(proto: ModelProto): Uint8Array<ArrayBuffer> {
  const out = new ProtoWriter();
  for (const p of proto.pieces) {
    const w = new ProtoWriter();
    w.string(1, p.piece);
    w.float32(2, p.score);
    if (p.type !== PieceType.NORMAL) w.int32(3, p.type);
    out.bytes(1, w.finish());
  }
  const trainer = new ProtoWriter();
  writeTable(trainer, TRAINER_SPEC_FIELDS, proto.trainerSpec as Record<string, unknown>);
  out.bytes(2, trainer.finish());
  const normalizer = new ProtoWriter();
  writeTable(normalizer, NORMALIZER_SPEC_FIELDS, proto.normalizerSpec as Record<string, unknown>);
  out.bytes(3, normalizer.finish());
  if (proto.selfTestData !== undefined) out.bytes(4, proto.selfTestData);
  if (proto.denormalizerSpec !== undefined) {
    const denormalizer = new ProtoWriter();
    writeTable(denormalizer, NORMALIZER_SPEC_FIELDS, proto.denormalizerSpec as Record<string, unknown>);
    out.bytes(5, denormalizer.finish());
  }
  for (const raw of proto.unknownFields ?? []) out.raw(raw);
  return out.finish();
}
