/**
 * The SentencePiece-compatible tokenizer on its own, with no GPU code: load a `.model` file and encode
 * and decode text exactly as the reference library does (BPE and unigram models, the model's normalizer,
 * user symbols, byte fallback), sample segmentations (BPE-dropout, unigram sampling) with the reference's
 * random generator, train BPE models the reference tools load, and read or write the model file itself.
 * `docs/tokenizer.md` describes what is exact and how it was checked.
 *
 * @example Train, encode, decode
 * ```ts
 * import { Mt19937, Tokenizer, trainTokenizer } from "@difflm/core/tokenizer";
 *
 * const lines = ["a cat sat on the mat", "a dog sat on the log"];
 * const tokenizer = Tokenizer.fromBytes(await trainTokenizer({ corpus: lines, vocabSize: 40 }));
 * const ids = tokenizer.encode("a cat sat");
 * console.log(tokenizer.decode(ids)); // "a cat sat"
 * const rng = new Mt19937(42); // the stream of `spm_encode --random_seed=42`
 * console.log(tokenizer.encode("a dog sat", { sample: true, alpha: 0.1, rng }));
 * ```
 * @module
 */
export * from "./src/tokenizer/mod.ts";
