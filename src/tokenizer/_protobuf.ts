/**
 * A minimal protobuf (proto2) wire-format reader and writer: varints, fixed32/fixed64 and
 * length-delimited fields, enough for SentencePiece's `ModelProto`. Every read checks its bounds and
 * raises {@linkcode SpmModelSyntaxError} with the byte offset, so a truncated or foreign file fails with
 * a clear message instead of yielding garbage.
 *
 * @module
 */
import { SpmModelSyntaxError } from "./errors.ts";

/** Wire type of varint fields (int32, uint64, bool, enum). */
export const WIRE_VARINT = 0;
/** Wire type of fixed 64-bit fields (double, fixed64). */
export const WIRE_FIXED64 = 1;
/** Wire type of length-delimited fields (string, bytes, sub-messages). */
export const WIRE_LENGTH_DELIMITED = 2;
/** Wire type of fixed 32-bit fields (float, fixed32). */
export const WIRE_FIXED32 = 5;

const TWO_POW_32 = 4294967296;

/** One field as read from the wire: its number, wire type and where its bytes lie. */
export interface WireField {
  /** Field number. */
  field: number;
  /** Wire type (0, 1, 2 or 5). */
  wire: number;
  /** Offset of the field's tag in the buffer. */
  start: number;
  /** Offset just past the field's last byte. */
  end: number;
  /** For varints: the low 32 bits, unsigned. */
  lo: number;
  /** For varints: the high 32 bits, unsigned. */
  hi: number;
  /** For length-delimited fields: offset of the payload. */
  payloadStart: number;
}

/** Reads the fields of one message, in order, checking every bound against `[start, end)`. */
export class ProtoReader {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #pos: number;
  readonly #end: number;
  readonly #what: string;

  /**
   * @param bytes The whole buffer (offsets in errors are relative to it).
   * @param start First byte of the message.
   * @param end One past the message's last byte.
   * @param what The message's name, used in error messages.
   */
  constructor(bytes: Uint8Array, start: number, end: number, what: string) {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#pos = start;
    this.#end = end;
    this.#what = what;
  }

  /** Returns the next field, or `null` at the end of the message. */
  next(): WireField | null {
    if (this.#pos >= this.#end) return null;
    const start = this.#pos;
    const [tagLo, tagHi] = this.#varint();
    if (tagHi !== 0 || tagLo >>> 3 === 0) {
      throw new SpmModelSyntaxError(
        `Cannot read ${this.#what}: invalid field tag at byte ${start}, not a SentencePiece model`,
        start,
      );
    }
    const field = tagLo >>> 3;
    const wire = tagLo & 7;
    const out: WireField = { field, wire, start, end: 0, lo: 0, hi: 0, payloadStart: 0 };
    switch (wire) {
      case WIRE_VARINT: {
        const [lo, hi] = this.#varint();
        out.lo = lo;
        out.hi = hi;
        break;
      }
      case WIRE_FIXED64:
        this.#need(8, start, field);
        out.payloadStart = this.#pos;
        this.#pos += 8;
        break;
      case WIRE_FIXED32:
        this.#need(4, start, field);
        out.payloadStart = this.#pos;
        this.#pos += 4;
        break;
      case WIRE_LENGTH_DELIMITED: {
        const [lo, hi] = this.#varint();
        const length = hi * TWO_POW_32 + lo;
        this.#need(length, start, field);
        out.payloadStart = this.#pos;
        this.#pos += length;
        break;
      }
      default:
        throw new SpmModelSyntaxError(
          `Cannot read ${this.#what}: field ${field} at byte ${start} has wire type ${wire}, ` +
            `not a SentencePiece model`,
          start,
        );
    }
    out.end = this.#pos;
    return out;
  }

  /** The float stored in a fixed32 field. */
  float32(f: WireField): number {
    this.#expect(f, WIRE_FIXED32);
    return this.#view.getFloat32(f.payloadStart, true);
  }

  /** The signed 32-bit value of a varint field (`int32`, `enum`). */
  int32(f: WireField): number {
    this.#expect(f, WIRE_VARINT);
    return f.lo | 0;
  }

  /** The unsigned 64-bit value of a varint field, which must fit in a double exactly. */
  uint64(f: WireField): number {
    this.#expect(f, WIRE_VARINT);
    const value = f.hi * TWO_POW_32 + f.lo;
    if (!Number.isSafeInteger(value)) {
      throw new SpmModelSyntaxError(
        `Cannot read ${this.#what}: field ${f.field} at byte ${f.start} is too large (${value})`,
        f.start,
      );
    }
    return value;
  }

  /** The boolean value of a varint field. */
  bool(f: WireField): boolean {
    this.#expect(f, WIRE_VARINT);
    return f.lo !== 0 || f.hi !== 0;
  }

  /** The payload of a length-delimited field (a view, not a copy). */
  payload(f: WireField): Uint8Array {
    this.#expect(f, WIRE_LENGTH_DELIMITED);
    return this.bytes.subarray(f.payloadStart, f.end);
  }

  /** The payload of a length-delimited field decoded as strict UTF-8. */
  string(f: WireField): string {
    const payload = this.payload(f);
    try {
      return STRICT_UTF8.decode(payload);
    } catch {
      throw new SpmModelSyntaxError(
        `Cannot read ${this.#what}: field ${f.field} at byte ${f.start} is not valid UTF-8, ` +
          `not a SentencePiece model`,
        f.start,
      );
    }
  }

  /** A reader over a sub-message field. */
  message(f: WireField, what: string): ProtoReader {
    this.#expect(f, WIRE_LENGTH_DELIMITED);
    return new ProtoReader(this.bytes, f.payloadStart, f.end, what);
  }

  #expect(f: WireField, wire: number): void {
    if (f.wire !== wire) {
      throw new SpmModelSyntaxError(
        `Cannot read ${this.#what}: field ${f.field} at byte ${f.start} has wire type ${f.wire}, ` +
          `expected ${wire}; not a SentencePiece model`,
        f.start,
      );
    }
  }

  #need(length: number, start: number, field: number): void {
    if (this.#pos + length > this.#end) {
      throw new SpmModelSyntaxError(
        `Cannot read ${this.#what}: field ${field} at byte ${start} needs ${length} bytes but only ` +
          `${this.#end - this.#pos} remain; the file is truncated or not a SentencePiece model`,
        start,
      );
    }
  }

  /** Reads a varint of up to 10 bytes as [low 32 bits, high 32 bits], both unsigned. */
  #varint(): [number, number] {
    const bytes = this.bytes;
    const start = this.#pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.#end) {
        throw new SpmModelSyntaxError(
          `Cannot read ${this.#what}: varint at byte ${start} runs past the end; ` +
            `the file is truncated or not a SentencePiece model`,
          start,
        );
      }
      const b = bytes[this.#pos++]!;
      const bits = b & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= bits << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (7 * i - 32);
      if ((b & 0x80) === 0) return [lo >>> 0, hi >>> 0];
    }
    throw new SpmModelSyntaxError(
      `Cannot read ${this.#what}: varint at byte ${start} is longer than 10 bytes, not a SentencePiece model`,
      start,
    );
  }
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const UTF8_ENCODER = new TextEncoder();

/** Appends protobuf fields to a growing buffer. */
export class ProtoWriter {
  #buf = new Uint8Array(1024);
  #view = new DataView(this.#buf.buffer);
  #len = 0;

  /** The bytes written so far (a copy). */
  finish(): Uint8Array<ArrayBuffer> {
    return this.#buf.slice(0, this.#len);
  }

  /** Writes an `int32`/`enum` field; negative values take 10 bytes, as protobuf requires. */
  int32(field: number, value: number): void {
    this.#tag(field, WIRE_VARINT);
    if (value < 0) this.#varint64(value >>> 0, 0xffffffff);
    else this.#varint64(value >>> 0, 0);
  }

  /** Writes a `uint64` field holding a safe integer. */
  uint64(field: number, value: number): void {
    this.#tag(field, WIRE_VARINT);
    this.#varint64(value % TWO_POW_32 >>> 0, Math.floor(value / TWO_POW_32) >>> 0);
  }

  /** Writes a `bool` field. */
  bool(field: number, value: boolean): void {
    this.#tag(field, WIRE_VARINT);
    this.#byte(value ? 1 : 0);
  }

  /** Writes a `float` field. */
  float32(field: number, value: number): void {
    this.#tag(field, WIRE_FIXED32);
    this.#reserve(4);
    this.#view.setFloat32(this.#len, value, true);
    this.#len += 4;
  }

  /** Writes a `string` field as UTF-8. */
  string(field: number, value: string): void {
    this.bytes(field, UTF8_ENCODER.encode(value));
  }

  /** Writes a `bytes` or sub-message field. */
  bytes(field: number, value: Uint8Array): void {
    this.#tag(field, WIRE_LENGTH_DELIMITED);
    this.#varint64(value.length, 0);
    this.raw(value);
  }

  /** Appends already-encoded bytes (a whole field kept from a reader). */
  raw(value: Uint8Array): void {
    this.#reserve(value.length);
    this.#buf.set(value, this.#len);
    this.#len += value.length;
  }

  #tag(field: number, wire: number): void {
    this.#varint64(((field << 3) | wire) >>> 0, 0);
  }

  #byte(b: number): void {
    this.#reserve(1);
    this.#buf[this.#len++] = b;
  }

  #varint64(lo: number, hi: number): void {
    this.#reserve(10);
    while (hi !== 0 || lo > 0x7f) {
      this.#buf[this.#len++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi = hi >>> 7;
    }
    this.#buf[this.#len++] = lo;
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
}
