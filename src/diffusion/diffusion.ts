/**
 * `Diffusion`: the whole model of the seed — token embedding + LayerNorm, the Estimator, the lm_head,
 * interpolation, and the training loss with self-conditioning.
 *
 * Dimension letters as in estimator.ts: B batch, L length, E embedding dim, D model dim, V vocabulary.
 *
 * @module
 */
import type { Engine } from "../tensor/engine.ts";
import { ParameterStore } from "../tensor/parameters.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { add, concat, maskedFill, mixRows } from "../tensor/ops/elementwise.ts";
import { layerNorm } from "../tensor/ops/layer_norm.ts";
import { crossEntropyWithAccuracy, maskedMse } from "../tensor/ops/loss.ts";
import { linear, linearParts, matmul, type SplitProduct } from "../tensor/ops/matmul.ts";
import { dropout, randomNormal } from "../tensor/ops/random.ts";
import { softmax } from "../tensor/ops/softmax.ts";
import { type ModelConfig, modelConfig } from "./config.ts";
import { Estimator, type ForwardOptions } from "./estimator.ts";
import { NoiseSchedule } from "./noise_schedule.ts";

/** The GPU inputs of one training micro-step; the host fills them from a collated batch. */
export interface LossInputs {
  /** Token ids, i32 [B, L] (padded with the pad id). */
  ids: Tensor;
  /** Sequence lengths, i32 [B]. */
  lengths: Tensor;
  /** Conditioning mask, u32 [B, L]: 1 where the token is given. */
  cond: Tensor;
  /** Loss weight per position, f32 [B·L]: diff_mask / count(diff_mask). */
  rowWeight: Tensor;
  /** Diffusion times, f32 [B]. */
  t: Tensor;
  /** √γ(t) per sequence, f32 [B]. */
  signal: Tensor;
  /** √(1−γ(t)) per sequence, f32 [B]. */
  noise: Tensor;
}

/** The scalar outputs of {@linkcode Diffusion.loss}, each f32 [1] on the GPU. */
export interface LossOutputs {
  /** mse + ce, the objective. */
  loss: Tensor;
  /** Masked mean over E of (estimate − x0)², averaged over the diffused positions. */
  mse: Tensor;
  /** Masked cross-entropy of lm_head(latent) against the ids. */
  ce: Tensor;
  /** Share of diffused positions whose argmax is the right id. */
  accuracy: Tensor;
}

/**
 * The diffusion language model.
 *
 * @example Usage
 * ```ts
 * import { Diffusion, Engine } from "@difflm/core";
 * const engine = await Engine.create();
 * const model = Diffusion.create(engine, { vocabSize: 100, layers: 2, modelDim: 64, heads: 2 }, { seed: 0 });
 * console.log(model.store.count, "parameters");
 * ```
 */
export class Diffusion {
  /** The engine the model runs on. */
  readonly engine: Engine;
  /** The model's shape. */
  readonly config: ModelConfig;
  /** Every parameter, by the seed's names. */
  readonly store: ParameterStore;
  /** The denoising transformer. */
  readonly estimator: Estimator;
  /** The noise schedule γ(t). */
  readonly schedule: NoiseSchedule;

  /**
   * Declares the parameters; call {@linkcode Diffusion.create} to also allocate and initialise them.
   *
   * @param engine The engine.
   * @param config The model's shape.
   */
  constructor(engine: Engine, config: ModelConfig) {
    this.engine = engine;
    this.config = config;
    this.schedule = new NoiseSchedule({ scale: config.noiseScale });
    this.store = new ParameterStore(engine);
    const { vocabSize: V, embeddingDim: E, modelDim: D } = config;
    this.store.declare("embedding.weight", [V, E], { kind: "normal", std: 0.001 });
    if (config.embeddingAffine) {
      this.store.declare("norm.weight", [E], { kind: "constant", value: 1 });
      this.store.declare("norm.bias", [E], { kind: "constant", value: 0 });
    }
    this.estimator = new Estimator(this.store, config);
    this.store.declare("lm_head.weight", [V, D], { kind: "normal", std: 0.02 });
    this.store.declare("lm_head.bias", [V], { kind: "constant", value: 0 });
  }

  /**
   * Builds a model with the seed's initialisation.
   *
   * @param engine The engine.
   * @param config Overrides of the seed's model config.
   * @param options `seed` of the initialisation.
   * @returns The model, allocated.
   */
  static create(
    engine: Engine,
    config: Partial<ModelConfig> = {},
    options: { seed?: number } = {},
  ): Diffusion {
    const model = new Diffusion(engine, modelConfig(config));
    model.store.allocate(options.seed ?? 0);
    return model;
  }

  /** Frees the parameters' GPU memory (weights, gradients, optimiser moments); the model cannot run afterwards. */
  dispose(): void {
    this.store.dispose();
  }

  /** Frees the GPU memory, as {@linkcode Diffusion.dispose}. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * Clean latents x0 = LayerNorm(Embedding(ids)), with the affine weight and bias unless the config's
   * `embeddingAffine` is off.
   *
   * @param ids i32 [B, L].
   * @returns f32 [B, L, E].
   */
  embed(ids: Tensor): Tensor {
    return layerNorm(embedding(this.store.get("embedding.weight"), ids), this.#embeddingNorm());
  }

  #embeddingNorm(): { weight?: Tensor; bias?: Tensor } {
    if (!this.config.embeddingAffine) return {};
    return { weight: this.store.get("norm.weight"), bias: this.store.get("norm.bias") };
  }

  /**
   * The normalised embedding table LN(W) [V, E] that interpolation mixes.
   *
   * @returns f32 [V, E].
   */
  normalizedEmbeddings(): Tensor {
    return layerNorm(this.store.get("embedding.weight"), this.#embeddingNorm());
  }

  /**
   * lm_head(dropout(latent)).
   *
   * @param latent f32 [B, L, D].
   * @param options Training mode (dropout) and seed.
   * @returns Logits f32 [B, L, V].
   */
  logits(latent: Tensor, options: ForwardOptions): Tensor {
    const p = this.config.dropout;
    const dropped = options.training && p > 0
      ? dropout(latent, p, this.engine.nextSeed(options.seed ?? 0))
      : latent;
    return linear(dropped, this.store.get("lm_head.weight"), this.store.get("lm_head.bias"));
  }

  /**
   * lm_head(latent) for inference, without a tape: where the product is split over K (few rows:
   * sampling a small batch), its partial products with the bias still to add, for a consumer that sums
   * them as it reads them (`softmaxInto`), which then sees {@linkcode Diffusion.prototype.logits}'
   * values to the bit without their reduction pass.
   *
   * @example Usage
   * ```ts
   * import { Diffusion, Engine } from "@difflm/core";
   * import { softmaxInto } from "@difflm/core/kernels";
   * const engine = await Engine.create();
   * const model = Diffusion.create(engine, { layers: 1, modelDim: 64, heads: 2, vocabSize: 50 });
   * const probabilities = engine.empty([8, 50]);
   * softmaxInto(probabilities, model.logitParts(engine.zeros([8, 64])));
   * ```
   * @param latent f32 [B, L, D].
   * @returns Logits f32 [B, L, V], or their partial products [splits, B·L, V] and the bias.
   * @throws {TypeError} If a tape is recording.
   */
  logitParts(latent: Tensor): Tensor | SplitProduct {
    return linearParts(latent, this.store.get("lm_head.weight"), { bias: this.store.get("lm_head.bias") });
  }

  /**
   * Interpolate(latent) = softmax(lm_head(latent)) · LN(W): the expected embedding under the model's
   * token distribution.
   *
   * @param latent f32 [B, L, D].
   * @param options Training mode (dropout) and seed.
   * @returns f32 [B, L, E].
   */
  interpolate(latent: Tensor, options: ForwardOptions): Tensor {
    const probabilities = softmax(this.logits(latent, options));
    return matmul(probabilities, this.normalizedEmbeddings());
  }

  /**
   * The training objective of one batch, recorded on the tape when it is started: mse + ce, with the
   * self-conditioning pass (no gradient) when `selfCondition` is set.
   *
   * @param inputs The batch on the GPU.
   * @param options `selfCondition`, the dropout/noise `seed`, `training` (dropout on; default true) and
   * an optional fixed noise `z` [B, L, E] (drawn from `seed` when omitted).
   * @returns The scalar loss terms.
   */
  loss(
    inputs: LossInputs,
    options: { selfCondition: boolean; seed: number; training?: boolean; z?: Tensor },
  ): LossOutputs {
    const engine = this.engine;
    const forward: ForwardOptions = { training: options.training ?? true, seed: options.seed };
    const x0 = this.embed(inputs.ids);
    const z = options.z ?? randomNormal(engine, x0.shape as number[], engine.nextSeed(options.seed));
    const xt = mixRows(x0, z, inputs.signal, inputs.noise);
    const xNoised = maskedFill(xt, inputs.cond, 0);
    const xCond = maskedFill(x0, inputs.cond, 0, { invert: true });
    let selfCond = engine.zeros(x0.shape, "f32", "self-conditioning");
    if (options.selfCondition) {
      selfCond = engine.noGrad(() => {
        // No tape here: the input projection reads the three tensors in place of their concatenation.
        const latent = this.estimator.latent([xNoised, xCond, selfCond], inputs.t, inputs.lengths, forward);
        return maskedFill(this.interpolate(latent, forward), inputs.cond, 0);
      });
    }
    const { estimate, latent } = this.estimator.forward(
      concat([xNoised, xCond, selfCond]),
      inputs.t,
      inputs.lengths,
      forward,
    );
    // The MSE target is x0 detached: gradients reach the embedding only through the inputs.
    const target = x0.viewAs(x0.shape);
    const mse = maskedMse(estimate, target, inputs.rowWeight);
    const { loss: ce, accuracy } = crossEntropyWithAccuracy(
      this.logits(latent, forward),
      inputs.ids,
      inputs.rowWeight,
    );
    return { loss: add(mse, ce), mse, ce, accuracy };
  }
}
