/**
 * The vocabulary tables every segmentation algorithm shares: piece strings, types and scores, the
 * piece→id maps split as the reference splits them (mergeable pieces vs reserved ones), per-character
 * ids, and the output list of spans that the algorithms fill.
 *
 * @module
 */
import { BytePrefixMatcher } from "./normalizer.ts";
import { type ModelProto, PieceType, TRAINER_SPEC_DEFAULTS } from "./model_proto.ts";

const UTF8_ENCODER = new TextEncoder();

/** Code point of the UTF-8 character at `pos` with byte length `n` (valid UTF-8 assumed). */
export function codePointAt(src: Uint8Array, pos: number, n: number): number {
  const b0 = src[pos]!;
  if (n === 1) return b0;
  if (n === 2) return ((b0 & 0x1f) << 6) | (src[pos + 1]! & 0x3f);
  if (n === 3) return ((b0 & 0x0f) << 12) | ((src[pos + 1]! & 0x3f) << 6) | (src[pos + 2]! & 0x3f);
  return ((b0 & 0x07) << 18) | ((src[pos + 1]! & 0x3f) << 12) | ((src[pos + 2]! & 0x3f) << 6) |
    (src[pos + 3]! & 0x3f);
}

/** A table from code points to integers with a default, flat for the BMP and a map above it. */
export class CodePointTable {
  readonly #bmp: Int32Array;
  readonly #astral = new Map<number, number>();
  readonly #missing: number;

  /** @param missing The value of code points never set. */
  constructor(missing: number) {
    this.#missing = missing;
    this.#bmp = new Int32Array(0x10000).fill(missing);
  }

  /** Sets the value of `cp`. */
  set(cp: number, value: number): void {
    if (cp < 0x10000) this.#bmp[cp] = value;
    else this.#astral.set(cp, value);
  }

  /** The value of `cp`, or the default. */
  get(cp: number): number {
    if (cp < 0x10000) return this.#bmp[cp]!;
    return this.#astral.get(cp) ?? this.#missing;
  }
}

/** Segmentation output: spans of the normalized bytes with their ids, in order. */
export class SpanList {
  /** Byte offset of each span in the normalized text. */
  start: Int32Array = new Int32Array(64);
  /** Byte length of each span. */
  len: Int32Array = new Int32Array(64);
  /** Vocabulary id of each span. */
  id: Int32Array = new Int32Array(64);
  /** Number of spans. */
  length = 0;

  /** Appends one span. */
  push(start: number, len: number, id: number): void {
    if (this.length === this.start.length) {
      const size = this.length * 2;
      const grow = (a: Int32Array) => {
        const b = new Int32Array(size);
        b.set(a);
        return b;
      };
      this.start = grow(this.start);
      this.len = grow(this.len);
      this.id = grow(this.id);
    }
    this.start[this.length] = start;
    this.len[this.length] = len;
    this.id[this.length] = id;
    this.length++;
  }
}

/** The vocabulary of a loaded model, in the forms the encoders need. */
export class Vocab {
  /** Piece strings by id. */
  readonly pieces: readonly string[];
  /** Piece types by id. */
  readonly types: Uint8Array;
  /** Piece scores by id (float32, as stored). */
  readonly scores: Float32Array;
  /** NORMAL, USER_DEFINED and UNUSED pieces: what segmentation may produce (`pieces_` in the reference). */
  readonly mergeable: Map<string, number>;
  /** CONTROL, UNKNOWN and BYTE pieces (`reserved_id_map_` in the reference). */
  readonly reserved: Map<string, number>;
  /** Id of the UNKNOWN piece. */
  readonly unkId: number;
  /** Whether unknown characters become BYTE pieces. */
  readonly byteFallback: boolean;
  /** Id of `<0xHH>` for each byte, when byte fallback is on. */
  readonly byteIds: Int32Array;
  /** The USER_DEFINED piece strings. */
  readonly userSymbols: readonly string[];
  /** Longest match over the user-defined symbols (values are their ids), or null when there are none. */
  readonly userMatcher: BytePrefixMatcher | null;
  /** Id of each single-character piece of any type (what `PieceToId` gives a character), else -1. */
  readonly charIds: CodePointTable;

  /** @param proto A validated model. */
  constructor(proto: ModelProto) {
    const n = proto.pieces.length;
    this.pieces = proto.pieces.map((p) => p.piece);
    this.types = new Uint8Array(n);
    this.scores = new Float32Array(n);
    this.mergeable = new Map();
    this.reserved = new Map();
    this.byteIds = new Int32Array(256).fill(-1);
    const userSymbols: string[] = [];
    const userIds: number[] = [];
    this.charIds = new CodePointTable(-1);
    let unkId = -1;
    proto.pieces.forEach((p, id) => {
      this.types[id] = p.type;
      this.scores[id] = p.score;
      const isMergeable = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED ||
        p.type === PieceType.UNUSED;
      (isMergeable ? this.mergeable : this.reserved).set(p.piece, id);
      if (p.type === PieceType.USER_DEFINED) {
        userSymbols.push(p.piece);
        userIds.push(id);
      }
      if (p.type === PieceType.UNKNOWN) unkId = id;
      if (p.type === PieceType.BYTE) this.byteIds[parseInt(p.piece.slice(3, 5), 16)] = id;
      const cp = p.piece.codePointAt(0)!;
      if (p.piece.length === (cp > 0xffff ? 2 : 1)) this.charIds.set(cp, id);
    });
    // Reserved names win over mergeable pieces for the same character, as in `PieceToId`.
    for (const [piece, id] of this.reserved) {
      const cp = piece.codePointAt(0)!;
      if (piece.length === (cp > 0xffff ? 2 : 1)) this.charIds.set(cp, id);
    }
    this.unkId = unkId;
    this.byteFallback = proto.trainerSpec.byteFallback ?? TRAINER_SPEC_DEFAULTS.byteFallback;
    this.userSymbols = userSymbols;
    this.userMatcher = userSymbols.length > 0
      ? new BytePrefixMatcher(userSymbols.map((s) => UTF8_ENCODER.encode(s)), userIds)
      : null;
  }

  /** The id of a piece string as the reference's `PieceToId` gives it: reserved, then mergeable, else unknown. */
  pieceToId(piece: string): number {
    return this.reserved.get(piece) ?? this.mergeable.get(piece) ?? this.unkId;
  }

  /** The id of the character at `pos` (byte length `n`) as `PieceToId` gives it. */
  charId(src: Uint8Array, pos: number, n: number): number {
    const id = this.charIds.get(codePointAt(src, pos, n));
    return id >= 0 ? id : this.unkId;
  }
}
