/**
 * Line-by-line reading of UTF-8 text from a file or a byte stream, without loading it whole, with an
 * error that names the line and byte when the text is not valid UTF-8.
 *
 * @module
 */
import { validCharLength } from "./normalizer.ts";

/** One line of text. */
export interface TextLine {
  /** The line without its `\n` (and without a `\r` before it). */
  line: string;
  /** 1-based line number. */
  lineNumber: number;
  /** Length of the line in UTF-8 bytes. */
  byteLength: number;
}

/** Options of {@linkcode readLines}. */
export interface ReadLinesOptions {
  /** How to name the source in errors (default: the path, or `input`). */
  name?: string;
}

/**
 * Reads UTF-8 text line by line from a file path, a URL or a byte stream.
 *
 * @example Usage
 * ```ts
 * import { readLines } from "@difflm/core/tokenizer";
 *
 * const bytes = new TextEncoder().encode("first\nsecond\n");
 * const stream = new Blob([bytes]).stream();
 * for await (const { line, lineNumber } of readLines(stream)) console.log(lineNumber, line);
 * ```
 * @param source A path or URL (needs read permission) or a stream of bytes.
 * @param options How to name the source in errors.
 * @returns The lines in order; a last line without `\n` is included, an empty last line is not.
 * @throws {SyntaxError} If a line is not valid UTF-8; the message names the source, line and byte.
 * @throws {Deno.errors.IsADirectory} If the path is a directory.
 * @throws {Deno.errors.NotFound} If there is no such file.
 */
export async function* readLines(
  source: string | URL | ReadableStream<Uint8Array>,
  options: ReadLinesOptions = {},
): AsyncGenerator<TextLine> {
  const name = options.name ?? (source instanceof ReadableStream ? "input" : String(source));
  let file: Deno.FsFile | null = null;
  let readable: ReadableStream<Uint8Array>;
  if (source instanceof ReadableStream) readable = source;
  else {
    try {
      file = await Deno.open(source);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Deno.errors.NotFound(`Cannot read ${name}: no such file`, { cause: e });
    }
    if ((await file.stat()).isDirectory) {
      file.close();
      throw new Deno.errors.IsADirectory(`Cannot read ${name}: it is a directory, expected a text file`);
    }
    readable = file.readable;
  }
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let pending = new Uint8Array(0);
  let lineNumber = 0;
  let offset = 0; // byte offset of pending[0] in the source
  const decodeLine = (bytes: Uint8Array): TextLine => {
    lineNumber++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    try {
      return { line: decoder.decode(bytes.subarray(0, end)), lineNumber, byteLength: end };
    } catch {
      const bad = offset + firstInvalidUtf8(bytes);
      throw new SyntaxError(`Cannot read ${name}: line ${lineNumber} is not valid UTF-8 (byte ${bad})`);
    }
  };
  try {
    for await (const chunk of readable) {
      let data = chunk;
      if (pending.length > 0) {
        data = new Uint8Array(pending.length + chunk.length);
        data.set(pending);
        data.set(chunk, pending.length);
      }
      let start = 0;
      for (let i = data.indexOf(0x0a); i >= 0; i = data.indexOf(0x0a, start)) {
        yield decodeLine(data.subarray(start, i));
        offset += i + 1 - start;
        start = i + 1;
      }
      pending = data.slice(start);
    }
    if (pending.length > 0) yield decodeLine(pending);
  } finally {
    try {
      file?.close();
    } catch { /* already closed by the finished stream */ }
  }
}

/**
 * Offset of the first byte that does not start a valid UTF-8 character (the length if all are valid).
 *
 * @example Usage
 * ```ts
 * import { firstInvalidUtf8 } from "@difflm/core/tokenizer";
 * console.log(firstInvalidUtf8(new Uint8Array([0x61, 0xff, 0x62]))); // 1
 * ```
 * @param bytes Bytes that should be UTF-8.
 * @returns The offset of the first malformed byte, or `bytes.length`.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let pos = 0; pos < bytes.length;) {
    const n = validCharLength(bytes, pos, bytes.length);
    if (n === 0) return pos;
    pos += n;
  }
  return bytes.length;
}
