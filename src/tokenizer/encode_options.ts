/**
 * The options and results of {@linkcode Tokenizer}'s encoding and decoding.
 *
 * @module
 */
import type { RandomSource } from "./mt19937.ts";

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Sample a segmentation instead of taking the deterministic one: BPE-dropout for BPE models,
   * lattice or n-best sampling for unigram models.
   * @default {false}
   */
  sample?: boolean;
  /**
   * BPE: probability of dropping each merge (0 = deterministic, 1 = characters only).
   * Unigram: inverse temperature of the sampling distribution.
   * @default {0.1}
   */
  alpha?: number;
  /**
   * Unigram only: `-1` samples from the whole lattice, `n > 1` among the n best segmentations, `0` or
   * `1` disables sampling. Ignored by BPE models, as in the reference.
   * @default {-1}
   */
  nbestSize?: number;
  /** Seed of a fresh Mersenne Twister for this call (ignored when `rng` is given). */
  seed?: number;
  /**
   * Random source to draw from. Pass one {@linkcode Mt19937} seeded with 42 to every call, in order, to
   * reproduce SentencePiece's `--random_seed=42` samples (BPE-dropout and unigram sampling alike).
   * Default: a generator owned by the tokenizer, seeded at random.
   */
  rng?: RandomSource;
  /**
   * Prepend the BOS id.
   * @default {false}
   */
  addBos?: boolean;
  /**
   * Append the EOS id.
   * @default {false}
   */
  addEos?: boolean;
}

/** Options of {@linkcode Tokenizer.decode}. */
export interface DecodeOptions {
  /**
   * Stop at the first EOS id and ignore what follows it.
   * @default {true}
   */
  stopAtEos?: boolean;
}

/** Everything one encoding produces. */
export interface Encoding {
  /** Vocabulary ids. */
  ids: number[];
  /** The pieces; an unknown run shows its normalized text, not `<unk>`. */
  pieces: string[];
  /** The normalized text (spaces as `▁`, dummy prefix added). */
  normalized: string;
}

/** Which segmentation algorithm a model uses. */
export type TokenizerModelType = "unigram" | "bpe" | "word" | "char";
