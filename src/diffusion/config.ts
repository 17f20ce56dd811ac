/**
 * Model and training configuration: typed options whose defaults are the seed's, and the presets.
 *
 * @module
 */

/** Shape of the diffusion model. Defaults are the seed's. */
export interface ModelConfig {
  /**
   * Vocabulary size V (the tokenizer's).
   * @default {8000}
   */
  vocabSize: number;
  /**
   * Token embedding width E.
   * @default {64}
   */
  embeddingDim: number;
  /**
   * Transformer width D.
   * @default {512}
   */
  modelDim: number;
  /**
   * Encoder layers NL.
   * @default {8}
   */
  layers: number;
  /**
   * Attention heads H (D must be a multiple of H).
   * @default {8}
   */
  heads: number;
  /**
   * Dropout probability in training.
   * @default {0.1}
   */
  dropout: number;
  /**
   * Rotary embedding width per head (the whole head if smaller).
   * @default {32}
   */
  rotaryDim: number;
  /**
   * Width of the learned sinusoidal time features (half sines, half cosines).
   * @default {128}
   */
  timeFeatures: number;
  /**
   * Width of the time MLP's hidden layer.
   * @default {128}
   */
  timeHidden: number;
  /**
   * Whether the embedding LayerNorm has a learned weight and bias (the seed's). Without them every clean
   * latent has zero mean and unit variance, so the model cannot raise its own signal-to-noise ratio by
   * growing the embeddings (the MSE target is detached, so nothing in the loss resists that growth).
   * @default {true}
   */
  embeddingAffine: boolean;
  /**
   * Noise scale of the schedule (see `NoiseSchedule`'s `scale`): 1 is the seed's cosine schedule.
   * @default {1}
   */
  noiseScale: number;
}

/** Training options. Defaults are the seed's. */
export interface TrainConfig {
  /**
   * Sequence length every batch is padded to (L), an integer in [2, 4096].
   * @default {64}
   */
  crop: number;
  /**
   * Sequences per optimiser micro-step (B), an integer in [1, 65536].
   * @default {256}
   */
  batch: number;
  /**
   * Peak learning rate, a positive number.
   * @default {1e-4}
   */
  lr: number;
  /**
   * Linear warm-up steps, an integer >= 0.
   * @default {2000}
   */
  warmup: number;
  /**
   * Step at which the linear decay reaches 0.1·lr, an integer >= 1.
   * @default {800000}
   */
  decay: number;
  /**
   * AdamW weight decay, in [0, 1].
   * @default {1e-4}
   */
  weightDecay: number;
  /**
   * AdamW β1, in [0, 1).
   * @default {0.9}
   */
  beta1: number;
  /**
   * AdamW β2, in [0, 1).
   * @default {0.99}
   */
  beta2: number;
  /**
   * AdamW ε, a positive number.
   * @default {1e-8}
   */
  eps: number;
  /**
   * Global gradient-norm clip, a positive number.
   * @default {1.0}
   */
  clip: number;
  /**
   * Micro-batches per optimiser step, an integer in [1, 1024].
   * @default {1}
   */
  accumulate: number;
  /**
   * Probability of the self-conditioning pass, in [0, 1].
   * @default {0.5}
   */
  selfConditioning: number;
  /**
   * BPE-dropout of training-time tokenisation, in [0, 1].
   * @default {0.1}
   */
  subwordAlpha: number;
  /**
   * Probability that a training example has no conditioning positions (the seed: 0, only its own
   * empty-span draws), in [0, 1].
   * @default {0}
   */
  unconditional: number;
  /**
   * Decay per step of a moving average of the weights, which sampling then uses (0: no average, as in
   * the seed), in [0, 0.99999]. Checkpoints keep it beside the optimiser state.
   * @default {0}
   */
  ema: number;
}

/** The seed's model. */
export const DEFAULT_MODEL: Readonly<ModelConfig> = Object.freeze({
  vocabSize: 8000,
  embeddingDim: 64,
  modelDim: 512,
  layers: 8,
  heads: 8,
  dropout: 0.1,
  rotaryDim: 32,
  timeFeatures: 128,
  timeHidden: 128,
  embeddingAffine: true,
  noiseScale: 1,
});

/** The seed's training options. */
export const DEFAULT_TRAIN: Readonly<TrainConfig> = Object.freeze({
  crop: 64,
  batch: 256,
  lr: 1e-4,
  warmup: 2000,
  decay: 800000,
  weightDecay: 1e-4,
  beta1: 0.9,
  beta2: 0.99,
  eps: 1e-8,
  clip: 1.0,
  accumulate: 1,
  selfConditioning: 0.5,
  subwordAlpha: 0.1,
  unconditional: 0,
  ema: 0,
});

/**
 * Named recipes: `tiny` learns the built-in corpus (on a GPU in a few minutes; see `docs/grammar.md` for
 * what it reaches), `small` is in between, `seed` is the seed's. `epochs` is the default length of a run.
 */
export const PRESETS: Readonly<
  Record<
    PresetName,
    { model: Partial<ModelConfig>; train: Partial<TrainConfig>; vocab: number; epochs?: number }
  >
> = Object.freeze({
  tiny: {
    // Measured on the built-in corpus (bench/RESULTS.md): without the embedding LayerNorm's gain the
    // embeddings cannot outgrow the noise (its weight reached ~5 in 10 epochs, making every step easy),
    // the noise scale then keeps training at noise levels where tokens are still ambiguous, and a half
    // share of unconditional examples trains the unconditional generation that sampling does. Four layers
    // of 256 learn the grammar's agreement; two layers of 128 did not. No BPE-dropout: with 400 pieces most
    // words are one piece, and dropout's character-level splits left short runs as character soup.
    // Batches of 256 for 288 epochs (22,464 steps, the rate at its floor, 0.1·lr, for the last 2000):
    // 98.6% and 97.3% grammatical samples (512 each) for training seeds 0 and 1, against 88.9% (seed 0,
    // 512 samples) for batches of 128 over 144 epochs, 89–94% for batches of 64 over 72 and 79–91% for
    // batches of 32 over 36 (about the same number of steps). The larger batch costs time even on a GPU:
    // the run takes about 6 min 50 s on an H200, against 4 min 15 s for batches of 128.
    model: {
      embeddingDim: 32,
      modelDim: 256,
      layers: 4,
      heads: 4,
      dropout: 0.0,
      embeddingAffine: false,
      noiseScale: 3,
    },
    train: { batch: 256, crop: 24, lr: 1e-3, warmup: 50, decay: 22300, subwordAlpha: 0, unconditional: 0.5 },
    vocab: 400,
    epochs: 288,
  },
  small: {
    model: { embeddingDim: 64, modelDim: 256, layers: 4, heads: 4 },
    train: { batch: 64, crop: 48, lr: 5e-4, warmup: 200, decay: 100000 },
    vocab: 2000,
  },
  seed: { model: {}, train: {}, vocab: 8000 },
});

/** The name of a preset in {@linkcode PRESETS}. */
export type PresetName = "tiny" | "small" | "seed";

/** Lines and seed of the built-in corpus (see `builtinCorpus`). */
export interface BuiltinCorpusConfig {
  /** Sentences generated. */
  lines: number;
  /** Seed of the grammar's generator. */
  seed: number;
}

/**
 * Where a run stops and how often it logs, checkpoints and samples: the settings that may change when
 * a run resumes (with the changeable training options).
 */
export interface RunCadence {
  /** Stop after this many epochs, in [1, 1e6] (default: the preset's, unless `steps` is given). */
  epochs?: number;
  /** Stop after this many optimiser steps in total, in [1, 1e9]. */
  steps?: number;
  /**
   * Steps between checkpoints, >= 1; one is also written at each epoch's end and when training stops.
   * @default {500}
   */
  checkpointEvery?: number;
  /**
   * Steps between `log.jsonl` records, >= 1.
   * @default {10}
   */
  logEvery?: number;
  /**
   * Samples drawn before training, after each epoch and at the end, in [0, 64].
   * @default {4}
   */
  samples?: number;
  /**
   * Reverse-process steps of those samples and of the run's sampler, in [1, 10000].
   * @default {100 for tiny, 200 otherwise (25 in a CPU demonstration)}
   */
  sampleSteps?: number;
}

/**
 * What a run directory's `config.json` holds besides the model, training options and tokenizer: the
 * data (fixed when the run starts) and the cadence (changeable on resume).
 */
export interface RunSettings extends RunCadence {
  /**
   * Lines and seed of the built-in corpus, or null/absent when the run trains on a file.
   * @default {null}
   */
  builtinCorpus?: BuiltinCorpusConfig | null;
  /** Share of the corpus held out of training, and the seed that picks it. */
  heldOut: { fraction: number; seed: number };
  /** Lines in the corpus when the run started; a resumed run checks its corpus still has them. */
  corpusLines?: number;
}

/**
 * Completes a partial model config with the seed's defaults and checks it.
 *
 * @example Usage
 * ```ts
 * import { modelConfig } from "@difflm/core";
 * console.log(modelConfig({ layers: 2 }).modelDim); // 512
 * ```
 * @param partial Fields to override.
 * @returns The full config.
 * @throws {RangeError} If a size is not a positive integer, or D is not a multiple of H.
 */
export function modelConfig(partial: Partial<ModelConfig> = {}): ModelConfig {
  const config = { ...DEFAULT_MODEL, ...partial };
  for (
    const key of [
      "vocabSize",
      "embeddingDim",
      "modelDim",
      "layers",
      "heads",
      "timeFeatures",
      "timeHidden",
    ] as const
  ) {
    const v = config[key];
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`Cannot build the model: ${key} is ${v}, expected a positive integer`);
    }
  }
  if (config.modelDim % config.heads !== 0) {
    throw new RangeError(
      `Cannot build the model: modelDim ${config.modelDim} is not a multiple of heads ${config.heads}`,
    );
  }
  if (config.modelDim % 8 !== 0) {
    // Keeps w_q, w_k, w_v contiguous in the parameter arena, so one matmul computes q, k and v.
    throw new RangeError(`Cannot build the model: modelDim ${config.modelDim} must be a multiple of 8`);
  }
  if (config.timeFeatures % 2 !== 0) {
    throw new RangeError(`Cannot build the model: timeFeatures ${config.timeFeatures} must be even`);
  }
  if (!(config.noiseScale > 0 && Number.isFinite(config.noiseScale))) {
    throw new RangeError(`Cannot build the model: noiseScale ${config.noiseScale} must be positive`);
  }
  if (!(config.dropout >= 0 && config.dropout < 1)) {
    throw new RangeError(`Cannot build the model: dropout ${config.dropout} must be in [0, 1)`);
  }
  return config;
}

/**
 * Completes partial training options with the seed's defaults and checks them.
 *
 * @example Usage
 * ```ts
 * import { trainConfig } from "./config.ts";
 * console.log(trainConfig({ batch: 8 }).crop); // 64
 * ```
 * @param partial Fields to override.
 * @returns The full options.
 * @throws {RangeError} If a size or step count is not an integer in range, a rate is not a positive
 *   finite number, or a probability is outside [0, 1].
 */
export function trainConfig(partial: Partial<TrainConfig> = {}): TrainConfig {
  const config = { ...DEFAULT_TRAIN, ...partial };
  const integers = {
    crop: [2, 4096],
    batch: [1, 65536],
    warmup: [0, 1e9],
    decay: [1, 1e9],
    accumulate: [1, 1024],
  };
  for (const [key, [min, max]] of Object.entries(integers) as [keyof TrainConfig, [number, number]][]) {
    const v = config[key];
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new RangeError(`Cannot train: ${key} is ${v}, expected an integer in [${min}, ${max}]`);
    }
  }
  for (const key of ["lr", "eps", "clip"] as const) {
    const v = config[key];
    if (!(v > 0 && Number.isFinite(v))) {
      throw new RangeError(`Cannot train: ${key} is ${v}, expected a positive number`);
    }
  }
  const ranges = {
    weightDecay: [0, 1],
    beta1: [0, 0.999999],
    beta2: [0, 0.999999],
    selfConditioning: [0, 1],
    subwordAlpha: [0, 1],
    unconditional: [0, 1],
    ema: [0, 0.99999],
  };
  for (const [key, [min, max]] of Object.entries(ranges) as [keyof TrainConfig, [number, number]][]) {
    const v = config[key];
    if (!(v >= min && v <= max)) {
      throw new RangeError(`Cannot train: ${key} is ${v}, expected a number in [${min}, ${max}]`);
    }
  }
  return config;
}
