/**
 * `Estimator`: the seed's TransformerModel. It maps [x_noised, x_cond, x_selfcond] (3E wide) and the
 * diffusion time to an estimate of the clean embeddings (E wide) and the final latent (D wide).
 *
 * Dimension letters: B batch, L sequence length, E embedding dim (64), D model dim (512), H heads,
 * V vocabulary, NL layers; lower-case t is diffusion time.
 *
 * Per layer, as a list of fused ops (the backward visits them reversed through the tape):
 *   a   = γ1·LN(x) + β1                (layerNormFilm)
 *   qkv = a·[W_q; W_k; W_v]ᵀ           (one matmul over the three contiguous weights)
 *   x  += dropout(attention(qkv)·W_oᵀ + b_o)
 *   a   = γ2·LN(x) + β2
 *   x  += dropout(GELU(a·W_1ᵀ + b_1)·W_2ᵀ + b_2)
 *
 * @module
 */
import type { Engine } from "../tensor/engine.ts";
import type { ParameterStore } from "../tensor/parameters.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { attention } from "../tensor/ops/attention.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { layerNormFilm } from "../tensor/ops/layer_norm.ts";
import {
  linear,
  linearConcat,
  linearParts,
  matmulInto,
  matmulResidual,
  type SplitProduct,
} from "../tensor/ops/matmul.ts";
import { dropout, dropoutAdd } from "../tensor/ops/random.ts";
import { timeEmbedding } from "../tensor/ops/time_embedding.ts";
import type { ModelConfig } from "./config.ts";

/** How a forward pass runs. */
export interface ForwardOptions {
  /** Training mode: dropout is active. */
  training: boolean;
  /** Base seed of the dropout masks (each dropout draws a fresh seed from the engine's counter). */
  seed?: number;
  /**
   * The FiLM parameters of `t`, computed earlier by {@linkcode Estimator.prototype.timeConditioning}
   * (the sampler computes a group of steps' at once); `t` is then not read.
   */
  film?: Tensor;
}

/** The estimator's three inputs x_noised, x_cond and x_selfcond, each f32 [B, L, E], unconcatenated. */
export type EstimatorInputs = readonly [Tensor, Tensor, Tensor];

const LINEAR = { kind: "normal", std: 0.02 } as const;
const ZERO = { kind: "constant", value: 0 } as const;

/**
 * The denoising transformer with FiLM time conditioning and rotary attention.
 *
 * @example Usage
 * ```ts
 * import { Engine, Estimator, modelConfig } from "@difflm/core";
 * import { ParameterStore } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const store = new ParameterStore(engine);
 * const estimator = new Estimator(store, modelConfig({ layers: 2, vocabSize: 100 }));
 * store.allocate(0);
 * ```
 */
export class Estimator {
  /** The model's shape. */
  readonly config: ModelConfig;
  /** Where the parameters live. */
  readonly store: ParameterStore;
  /** Prefix of every parameter name (the seed's `estimator.`). */
  readonly prefix: string;

  /**
   * Declares the estimator's parameters (with the seed's names, shapes and initialisation) in `store`.
   *
   * @param store The parameter store, not yet allocated.
   * @param config The model's shape.
   * @param prefix Parameter-name prefix.
   */
  constructor(store: ParameterStore, config: ModelConfig, prefix = "estimator.") {
    this.config = config;
    this.store = store;
    this.prefix = prefix;
    const { embeddingDim: E, modelDim: D, layers, timeFeatures, timeHidden } = config;
    const p = (name: string) => prefix + name;
    store.declare(p("time_mlp.0.weights"), [timeFeatures / 2], { kind: "normal", std: 1 });
    store.declare(p("time_mlp.1.weight"), [timeHidden, timeFeatures], LINEAR);
    store.declare(p("time_mlp.1.bias"), [timeHidden], ZERO);
    store.declare(p("time_mlp.4.weight"), [layers * 4 * D, timeHidden], LINEAR);
    store.declare(p("time_mlp.4.bias"), [layers * 4 * D], ZERO);
    store.declare(p("project.0.weight"), [D, 3 * E], LINEAR);
    store.declare(p("project.0.bias"), [D], ZERO);
    for (let i = 0; i < layers; i++) {
      const l = (name: string) => p(`encoder_layers.${i}.${name}`);
      // w_q, w_k, w_v are declared back to back so that they form one [3D, D] weight.
      store.declare(l("attention.w_q.weight"), [D, D], LINEAR);
      store.declare(l("attention.w_k.weight"), [D, D], LINEAR);
      store.declare(l("attention.w_v.weight"), [D, D], LINEAR);
      store.declare(l("attention.w_o.weight"), [D, D], LINEAR);
      store.declare(l("attention.w_o.bias"), [D], ZERO);
      store.declare(l("ffn.0.weight"), [4 * D, D], LINEAR);
      store.declare(l("ffn.0.bias"), [4 * D], ZERO);
      store.declare(l("ffn.2.weight"), [D, 4 * D], LINEAR);
      store.declare(l("ffn.2.bias"), [D], ZERO);
    }
    store.declare(p("out.weight"), [E, D], LINEAR);
    store.declare(p("out.bias"), [E], ZERO);
  }

  #param(name: string): Tensor {
    return this.store.get(this.prefix + name);
  }

  /** Whether `#residual` adds into x in place (sampling): no tape, no dropout, x from the pool. */
  #inPlace(x: Tensor, options: ForwardOptions): boolean {
    return !x.engine.recording && !this.#dropping(options) && x.pooled;
  }

  /**
   * x + dropout(input·Wᵀ + b). Without a tape and without dropout (sampling), the product is added into
   * x in the matmul's epilogue: one dispatch instead of two, and no temporary; with `defer`, a product
   * split over K is instead left as its partial products (`pending`) for the next LayerNorm to add,
   * which saves the reduction pass. `input` may be partial products (from `linearParts`) only then.
   */
  #residual(
    x: Tensor,
    input: Tensor | SplitProduct,
    linearName: string,
    options: ForwardOptions,
    defer: boolean,
  ): { x: Tensor; pending: SplitProduct | undefined } {
    const engine = x.engine;
    const weight = this.store.get(`${linearName}.weight`);
    const bias = this.store.get(`${linearName}.bias`);
    if (this.#inPlace(x, options)) {
      if (!defer) {
        matmulInto(x, input, weight, { transB: true, bias, accumulate: true });
        return { x, pending: undefined };
      }
      return { x, pending: matmulResidual(x, input, weight, { transB: true, bias }) ?? undefined };
    }
    if ("part" in input) throw new TypeError("Cannot add partial products to x outside sampling");
    const y = linear(input, weight, bias);
    // The seed #dropout would draw: residual and dropout in one pass, the same values.
    const sum = this.#dropping(options)
      ? dropoutAdd(x, y, this.config.dropout, engine.nextSeed(options.seed ?? 0))
      : add(x, y);
    return { x: sum, pending: undefined };
  }

  /** Whether this pass drops activations (training, with a dropout rate). */
  #dropping(options: ForwardOptions): boolean {
    return options.training && this.config.dropout > 0;
  }

  #dropout(engine: Engine, x: Tensor, options: ForwardOptions): Tensor {
    return this.#dropping(options) ? dropout(x, this.config.dropout, engine.nextSeed(options.seed ?? 0)) : x;
  }

  /**
   * FiLM parameters of every layer from diffusion time: [B, NL·4·D], slices (γ1, γ2, β1, β2) per layer.
   *
   * @param t Times, f32 [B].
   * @param options Training mode and seed.
   * @returns The time embedding.
   */
  timeConditioning(t: Tensor, options: ForwardOptions): Tensor {
    const engine = t.engine;
    const features = timeEmbedding(t, this.#param("time_mlp.0.weights"));
    const hidden = linear(features, this.#param("time_mlp.1.weight"), this.#param("time_mlp.1.bias"), {
      activation: "gelu",
    });
    const film = linear(
      this.#dropout(engine, hidden, options),
      this.#param("time_mlp.4.weight"),
      this.#param("time_mlp.4.bias"),
      { activation: "gelu" },
    );
    return film;
  }

  /**
   * One forward pass.
   *
   * @param input [x_noised, x_cond, x_selfcond], f32 [B, L, 3E], or the three [B, L, E] tensors (see
   * {@linkcode Estimator.prototype.latent}).
   * @param t Diffusion times, f32 [B].
   * @param lengths Sequence lengths, i32 [B] (keys and queries at positions ≥ length are masked).
   * @param options Training mode and dropout seed.
   * @returns `estimate` [B, L, E] of the clean embeddings and the final `latent` [B, L, D].
   */
  forward(
    input: Tensor | EstimatorInputs,
    t: Tensor,
    lengths: Tensor,
    options: ForwardOptions,
  ): { estimate: Tensor; latent: Tensor } {
    const latent = this.latent(input, t, lengths, options);
    const estimate = linear(latent, this.#param("out.weight"), this.#param("out.bias"));
    return { estimate, latent };
  }

  /**
   * The forward pass up to the final latent, without the `estimate` projection: what a caller that
   * reads only the latent (the sampler, the self-conditioning pass) records, one product fewer.
   *
   * @example Usage
   * ```ts
   * import { Diffusion, Engine } from "@difflm/core";
   * const engine = await Engine.create();
   * const model = Diffusion.create(engine, { layers: 1, modelDim: 64, heads: 2, vocabSize: 50 });
   * const input = engine.zeros([1, 8, 3 * model.config.embeddingDim]);
   * const latent = model.estimator.latent(input, engine.zeros([1]), engine.tensor(new Int32Array([8]), [1]), {
   *   training: false,
   * });
   * console.log(latent.shape); // [1, 8, 64]
   * ```
   * @param input [x_noised, x_cond, x_selfcond], f32 [B, L, 3E]; or, without a tape (sampling), the three
   * f32 [B, L, E] tensors, which the input projection reads in place of their concatenation (no
   * concatenation pass, the same values).
   * @param t Diffusion times, f32 [B].
   * @param lengths Sequence lengths, i32 [B] (keys and queries at positions ≥ length are masked).
   * @param options Training mode and dropout seed.
   * @returns The final `latent` [B, L, D].
   * @throws {TypeError} If a shape does not fit, or the three tensors are given while a tape records.
   */
  latent(input: Tensor | EstimatorInputs, t: Tensor, lengths: Tensor, options: ForwardOptions): Tensor {
    const { embeddingDim: E, modelDim: D, layers, heads, rotaryDim } = this.config;
    const inputs = Array.isArray(input) ? input as EstimatorInputs : null;
    const shapes = inputs ? inputs.map((x) => x.shape) : [(input as Tensor).shape];
    const [B, L] = shapes[0]!, width = inputs ? E : 3 * E;
    if (shapes.some((s) => s.length !== 3 || s[0] !== B || s[1] !== L || s[2] !== width)) {
      throw new TypeError(
        inputs
          ? `Cannot run Estimator: inputs have shapes ${shapes.map((x) => `[${x}]`).join(", ")}, ` +
            `expected [B,L,${E}] for each of the three`
          : `Cannot run Estimator: input has shape [${shapes[0]}], expected [B,L,${width}]`,
      );
    }
    if (t.shape.length !== 1 || t.shape[0] !== B || lengths.shape[0] !== B) {
      throw new TypeError(
        `Cannot run Estimator: t [${t.shape}] and lengths [${lengths.shape}] must be [${B}]`,
      );
    }
    const engine = t.engine;
    const film = options.film ?? this.timeConditioning(t, options);
    if (film.shape[0] !== B || film.shape[1] !== layers * 4 * D) {
      throw new TypeError(
        `Cannot run Estimator: film has shape [${film.shape}], expected [${B},${layers * 4 * D}]`,
      );
    }
    const [weight, bias] = [this.#param("project.0.weight"), this.#param("project.0.bias")];
    let x = this.#dropout(
      engine,
      inputs ? linearConcat(inputs, weight, bias) : linear(input as Tensor, weight, bias),
      options,
    );
    let pending: SplitProduct | undefined;
    for (let i = 0; i < layers; i++) {
      const l = (name: string) => `${this.prefix}encoder_layers.${i}.${name}`;
      const wqkv = this.store.span([
        l("attention.w_q.weight"),
        l("attention.w_k.weight"),
        l("attention.w_v.weight"),
      ]);
      const a1 = layerNormFilm(x, film, { gammaSlice: 4 * i, betaSlice: 4 * i + 2, residual: pending });
      // Without a tape, a qkv product split over K reaches attention as its partial sums (no reduction pass).
      const qkv = engine.recording ? linear(a1, wqkv) : linearParts(a1, wqkv);
      const heads_ = attention(qkv, lengths, {
        heads,
        rotaryDim: Math.min(rotaryDim, D / heads),
      });
      ({ x, pending } = this.#residual(x, heads_, l("attention.w_o"), options, true));
      const a2 = layerNormFilm(x, film, { gammaSlice: 4 * i + 1, betaSlice: 4 * i + 3, residual: pending });
      const [w1, b1] = [this.store.get(l("ffn.0.weight")), this.store.get(l("ffn.0.bias"))];
      // In sampling, an up-projection split over K reaches the down-projection as its partial products,
      // which that product sums, biases and activates as it loads them (no reduction pass).
      const hidden = this.#inPlace(x, options)
        ? linearParts(a2, w1, { bias: b1, activation: "gelu" })
        : linear(a2, w1, b1, { activation: "gelu" });
      ({ x, pending } = this.#residual(x, hidden, l("ffn.2"), options, i + 1 < layers));
      // The partials (splits × B·L × 4D) go back to the pool at once, as the reduction pass's would.
      if ("part" in hidden) hidden.part.dispose();
    }
    return x;
  }
}
