/**
 * The error the tokenizer raises for a model file it cannot use. Other failures use the built-in
 * classes: `TypeError` for a wrong argument type, `RangeError` for an out-of-range value (an id outside
 * the vocabulary, a vocabulary size the corpus cannot fill), `SyntaxError` for text that is not UTF-8.
 *
 * @module
 */

/**
 * A SentencePiece `.model` file that cannot be used: empty, truncated, not a protobuf `ModelProto`, or a
 * `ModelProto` that breaks the format's rules (no pieces, no unknown piece, duplicated pieces, …).
 *
 * @example Usage
 * ```ts
 * import { SpmModelSyntaxError, Tokenizer } from "@difflm/core";
 *
 * try {
 *   Tokenizer.fromBytes(new Uint8Array([0x0a, 0x05, 0x0a]));
 * } catch (err) {
 *   if (err instanceof SpmModelSyntaxError) console.log(err.offset); // byte where reading failed
 * }
 * ```
 */
export class SpmModelSyntaxError extends SyntaxError {
  /** Byte offset in the model file where the problem was found. */
  readonly offset: number;

  /**
   * Creates the error.
   *
   * @param message What could not be read and why, in sentence case.
   * @param offset Byte offset in the model file where the problem was found.
   */
  constructor(message: string, offset: number) {
    super(message);
    this.name = "SpmModelSyntaxError";
    this.offset = offset;
  }
}
