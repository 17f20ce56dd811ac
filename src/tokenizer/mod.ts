/**
 * SentencePiece-compatible tokenization in TypeScript: load a `.model` file and encode and decode text
 * exactly as the reference library does (BPE and unigram models, the model's normalizer, user symbols,
 * unknown runs, byte fallback), sample segmentations (BPE-dropout, unigram sampling) with the
 * reference's random generator, and train BPE models the reference tools load. No GPU code and no
 * other difflm module is imported here, so this folder can stand alone.
 *
 * @example Usage
 * ```ts
 * import { Tokenizer, trainTokenizer } from "@difflm/core";
 *
 * const model = await trainTokenizer({ corpus: ["a cat sat", "a dog sat"], vocabSize: 25, userSymbols: [] });
 * const tok = Tokenizer.fromBytes(model);
 * const ids = tok.encode("a cat sat");
 * console.log(tok.decode(ids)); // "a cat sat"
 * ```
 * @module
 */
export {
  type DecodeOptions,
  type EncodeOptions,
  type Encoding,
  Tokenizer,
  type TokenizerModelType,
} from "./tokenizer.ts";
export { nmtNfkcCharsmap, type SpecialIds, trainTokenizer, type TrainTokenizerOptions } from "./trainer.ts";
export {
  type ModelPiece,
  type ModelProto,
  ModelType,
  NORMALIZER_SPEC_DEFAULTS,
  type NormalizerSpec,
  parseModelProto,
  PieceType,
  serializeModelProto,
  TRAINER_SPEC_DEFAULTS,
  type TrainerSpec,
  validateModelProto,
} from "./model_proto.ts";
export { type ByteBuffer, Normalizer } from "./normalizer.ts";
export { Mt19937, type RandomSource, uniformDouble } from "./mt19937.ts";
export { firstInvalidUtf8, readLines, type ReadLinesOptions, type TextLine } from "./lines.ts";
export { SpmModelSyntaxError } from "./errors.ts";
