/**
 * `Sampler`: the reverse process from t = 1 to 0 (difflm, DDIM or DDPM updates) with
 * self-conditioning, and conditional generation (prompt, infilling) through x_cond, as in training.
 *
 * Each step records estimator → interpolate → update → fresh noise on the GPU with no read-back; steps
 * are submitted in groups (those of the first group one by one, so that the GPU starts at once), and only
 * the final ids (and the optional per-step views) are read.
 *
 * @module
 */
import type { DispatchRecording } from "../gpu/runtime.ts";
import { mixSeed } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { addScaled, argmax, maskedFill } from "../tensor/ops/elementwise.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { matmul, matmulInto, matmulParts, type SplitProduct } from "../tensor/ops/matmul.ts";
import { addScaledNoise, addScaledNoiseParts, randomNormal } from "../tensor/ops/random.ts";
import { softmaxInto } from "../tensor/ops/softmax.ts";
import type { Diffusion } from "./diffusion.ts";

/** The update rule of the reverse process. */
export type SamplingMethod = "difflm" | "ddim" | "ddpm";

/** Turns ids into text (a `Tokenizer` fits). */
export interface SampleDecoder {
  /** Text of the ids, stopping at EOS and dropping pads. */
  decode(ids: readonly number[]): string;
  /** Ids of a text, without BOS/EOS. */
  encode(text: string): number[];
  /** End-of-sequence id. */
  readonly eosId: number;
  /** Padding id. */
  readonly padId: number;
}

/** Options of {@linkcode Sampler}. */
export interface SamplerOptions {
  /**
   * Reverse-process steps, an integer in [1, {@linkcode MAX_SAMPLING_STEPS}].
   * @default {200}
   */
  steps?: number;
  /**
   * Update rule.
   * @default {"difflm"}
   */
  method?: SamplingMethod;
  /**
   * Feed each step's estimate back in (self-conditioning).
   * @default {true}
   */
  selfConditioning?: boolean;
  /**
   * Replace each step's estimate by the embedding of its most likely token (Diffusion-LM's clamping
   * trick) instead of the softmax-weighted mix of embeddings (the seed's interpolation).
   * @default {false}
   */
  clamp?: boolean;
  /**
   * Softmax temperature τ of the interpolation, softmax(logits/τ) @ table: below 1 each estimate leans
   * further toward its most likely tokens (1 is the seed's). In [0.001, 1000].
   * @default {1}
   */
  temperature?: number;
  /**
   * Seed of the noise, an integer in [0, 2³²).
   * @default {0}
   */
  seed?: number;
  /**
   * Tokens per sample, an integer in [1, {@linkcode MAX_SAMPLE_LENGTH}] (a run's sampler: the run's crop length).
   * @default {64}
   */
  length?: number;
  /**
   * Steps recorded per GPU submission (the first group's steps are submitted one by one).
   * @default {10}
   */
  stepsPerSubmit?: number;
  /**
   * Record one step's estimate and replay its dispatches for the later steps (the host then issues three
   * WebGPU calls per dispatch instead of re-running the model's code); `false` re-runs the code every
   * step. The results are the same.
   * @default {true}
   */
  replay?: boolean;
  /** Tokenizer for prompts, templates and texts; without one, only ids are returned. */
  tokenizer?: SampleDecoder;
}

/** What one call of {@linkcode Sampler.generate} asks for. */
export interface GenerateRequest {
  /** Samples to draw, an integer in [1, {@linkcode MAX_SAMPLES}] (ignored with `known`). */
  count?: number;
  /** A prefix every sample starts with. */
  prompt?: string;
  /**
   * Words and `_` gaps: each `_` is one generated token, words are kept, and the sequence ends after the
   * template (e.g. "the _ _ sat on the _"). Not with `prompt`.
   */
  template?: string;
  /**
   * Known tokens per sample, by position (`null` = generate): one sample per entry. Used for infilling
   * evaluation; overrides `count`, `prompt` and `template`.
   */
  known?: readonly (readonly (number | null)[])[];
  /**
   * Called after each step with the current most likely ids and their texts; costs a read-back per
   * step. The last view (t = 0) is the result.
   */
  onStep?: (view: { step: number; t: number; ids: Int32Array[]; texts: string[] }) => void | Promise<void>;
  /** Aborting it stops sampling after the step in progress; `generate` then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The samples. */
export interface GenerateResult {
  /** Token ids per sample (length `length`, pads and EOS included). */
  ids: Int32Array[];
  /** Decoded texts with a tokenizer; without one, each sample's ids written as decimal numbers. */
  texts: string[];
}

/** Largest number of reverse-process steps a {@linkcode Sampler} takes. */
export const MAX_SAMPLING_STEPS = 10000;
/** Largest number of tokens per sample. */
export const MAX_SAMPLE_LENGTH = 4096;
/** Largest number of samples one call of {@linkcode Sampler.generate} draws. */
export const MAX_SAMPLES = 4096;

/**
 * Draws samples from a trained {@linkcode Diffusion} model.
 *
 * @example Usage
 * ```ts
 * import { Diffusion, Engine, Sampler } from "@difflm/core";
 * const engine = await Engine.create();
 * const model = Diffusion.create(engine, { vocabSize: 100, modelDim: 64, layers: 1, heads: 2 });
 * const { ids } = await new Sampler(model, { steps: 20, length: 16 }).generate({ count: 2 });
 * console.log(ids.length); // 2
 * ```
 */
export class Sampler {
  /** The model. */
  readonly model: Diffusion;
  /** Steps of the reverse process. */
  readonly steps: number;
  /** Update rule. */
  readonly method: SamplingMethod;
  /** Whether estimates are fed back. */
  readonly selfConditioning: boolean;
  /** Whether estimates are clamped to the nearest token's embedding. */
  readonly clamp: boolean;
  /** Softmax temperature of the interpolation. */
  readonly temperature: number;
  /** Tokens per sample. */
  readonly length: number;
  /** Steps per submission. */
  readonly stepsPerSubmit: number;
  /** Whether later steps replay the first recorded one. */
  readonly replay: boolean;
  /** Optional tokenizer. */
  readonly tokenizer?: SampleDecoder;
  #seed: number;
  #disposed = false;

  /**
   * Creates a sampler.
   *
   * @param model A trained model.
   * @param options Steps, method, seed, length, tokenizer.
   * @throws {RangeError} If steps, length, temperature or seed is outside the range its option states.
   */
  constructor(model: Diffusion, options: SamplerOptions = {}) {
    this.model = model;
    this.steps = options.steps ?? 200;
    this.method = options.method ?? "difflm";
    this.selfConditioning = options.selfConditioning ?? true;
    this.clamp = options.clamp ?? false;
    this.temperature = options.temperature ?? 1;
    this.length = options.length ?? 64;
    this.stepsPerSubmit = options.stepsPerSubmit ?? 10;
    this.replay = options.replay ?? true;
    this.tokenizer = options.tokenizer;
    this.#seed = options.seed ?? 0;
    if (!Number.isInteger(this.steps) || this.steps < 1 || this.steps > MAX_SAMPLING_STEPS) {
      throw new RangeError(
        `Cannot sample with ${this.steps} steps: steps must be an integer in [1, ${MAX_SAMPLING_STEPS}]`,
      );
    }
    if (!Number.isInteger(this.length) || this.length < 1 || this.length > MAX_SAMPLE_LENGTH) {
      throw new RangeError(
        `Cannot sample with length ${this.length}: length must be an integer in [1, ${MAX_SAMPLE_LENGTH}]`,
      );
    }
    if (!(this.temperature >= 1e-3 && this.temperature <= 1e3)) {
      throw new RangeError(`Cannot sample with temperature ${this.temperature}: it must be in [0.001, 1000]`);
    }
    if (!Number.isInteger(this.#seed) || this.#seed < 0 || this.#seed >= 2 ** 32) {
      throw new RangeError(`Cannot sample with seed ${this.#seed}: it must be an integer in [0, 2^32)`);
    }
    if (!Number.isInteger(this.stepsPerSubmit) || this.stepsPerSubmit < 1) {
      throw new RangeError(`Cannot sample with stepsPerSubmit ${this.stepsPerSubmit}: it must be >= 1`);
    }
    if (!["difflm", "ddim", "ddpm"].includes(this.method)) {
      throw new RangeError(`Cannot sample with method "${this.method}": expected difflm, ddim or ddpm`);
    }
  }

  /**
   * The most samples one call can draw on this GPU: the largest tensor of a step (logits, B·L·V, or the
   * feed-forward layer, B·L·4D) must fit one storage binding.
   *
   * @returns The count, at most {@linkcode MAX_SAMPLES}.
   */
  maxCount(): number {
    const { vocabSize, modelDim } = this.model.config;
    const limit = this.model.engine.runtime.gpu.limits.maxStorageBufferBindingSize;
    const perSample = this.length * Math.max(vocabSize, 4 * modelDim) * 4;
    return Math.max(1, Math.min(MAX_SAMPLES, Math.floor(limit / perSample)));
  }

  /**
   * Ends the sampler: it cannot sample afterwards. A sampler keeps no GPU memory between calls (each
   * `generate` frees what it took, also when aborted), and the model is not its to free, so this only
   * closes it; `using` scopes it like the objects that own GPU memory.
   */
  dispose(): void {
    this.#disposed = true;
  }

  /** Ends the sampler, as {@linkcode Sampler.dispose}. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * The known tokens of a request: ids and a mask per sample (all-zero masks when unconditional).
   *
   * @param request The request.
   * @returns Known ids and mask, B·L each, and the batch size B.
   */
  conditioning(
    request: GenerateRequest,
  ): { ids: Int32Array<ArrayBuffer>; mask: Uint32Array<ArrayBuffer>; count: number } {
    const L = this.length;
    if (request.known) {
      const count = request.known.length;
      if (count < 1 || count > MAX_SAMPLES) {
        throw new RangeError(`Cannot sample ${count} known rows: expected 1 to ${MAX_SAMPLES}`);
      }
      const ids = new Int32Array(count * L);
      const mask = new Uint32Array(count * L);
      for (const [b, row] of request.known.entries()) {
        if (row.length > L) {
          throw new RangeError(`Cannot sample: known row ${b} has ${row.length} tokens, over ${L}`);
        }
        for (const [i, id] of row.entries()) {
          if (id === null) continue;
          ids[b * L + i] = id;
          mask[b * L + i] = 1;
        }
      }
      return { ids, mask, count };
    }
    const count = request.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > MAX_SAMPLES) {
      throw new RangeError(`Cannot sample ${count} texts: count must be an integer in [1, ${MAX_SAMPLES}]`);
    }
    if (request.prompt !== undefined && request.template !== undefined) {
      throw new TypeError("Cannot sample from a prompt and a template together: give one");
    }
    const ids = new Int32Array(count * L);
    const mask = new Uint32Array(count * L);
    let known: (number | null)[] = [];
    if (request.prompt !== undefined || request.template !== undefined) {
      const tokenizer = this.tokenizer;
      if (!tokenizer) throw new TypeError("Cannot sample from a prompt or template without a tokenizer");
      if (request.template !== undefined) {
        for (const word of request.template.trim().split(/\s+/)) {
          if (word === "_") known.push(null);
          else known.push(...tokenizer.encode(word));
        }
        // The template is the whole text: the sequence ends after it.
        known.push(tokenizer.eosId);
      } else {
        known = tokenizer.encode(request.prompt!);
      }
      if (known.length > L) {
        throw new RangeError(
          `Cannot sample: the prompt or template has ${known.length} tokens, over the length ${L}`,
        );
      }
    }
    for (let b = 0; b < count; b++) {
      for (const [i, id] of known.entries()) {
        if (id === null) continue;
        ids[b * L + i] = id;
        mask[b * L + i] = 1;
      }
    }
    return { ids, mask, count };
  }

  /**
   * Runs the reverse process.
   *
   * @param request How many samples, and what is given.
   * @returns Ids (and texts with a tokenizer).
   */
  async generate(request: GenerateRequest = {}): Promise<GenerateResult> {
    const model = this.model;
    const engine = model.engine;
    const runtime = engine.runtime;
    const { embeddingDim: E } = model.config;
    const L = this.length;
    if (this.#disposed) throw new Error("Cannot sample: the sampler was disposed");
    const { ids: knownIds, mask: knownMask, count: B } = this.conditioning(request);
    if (B > this.maxCount()) {
      throw new RangeError(
        `Cannot sample ${B} texts of ${L} tokens at once: this GPU's buffers hold at most ${this.maxCount()}`,
      );
    }
    const signal = request.signal;
    signal?.throwIfAborted();
    const seed = this.#seed;
    const shape = [B, L, E];
    const keep = <T extends Tensor>(t: T) => engine.keep(t) as T;
    const cond = keep(engine.tensor(knownMask, [B, L], "u32"));
    const lengths = keep(engine.tensor(new Int32Array(B).fill(L), [B], "i32"));
    const t = keep(engine.zeros([B], "f32", "t"));
    const forward = { training: false };
    let xCond!: Tensor, x!: Tensor, estimate!: Tensor;
    engine.noGrad(() => {
      const known = keep(engine.tensor(knownIds, [B, L], "i32"));
      xCond = keep(engine.tidy(() => maskedFill(model.embed(known), cond, 0, { invert: true })));
      known.dispose();
      x = keep(randomNormal(engine, shape, mixSeed(seed, 0)));
      estimate = keep(engine.zeros(shape, "f32", "estimate"));
    });
    const zero = keep(engine.zeros(shape, "f32", "zeros"));
    // LN(embedding table) does not change during sampling: compute it once.
    const table = keep(engine.noGrad(() => engine.tidy(() => model.normalizedEmbeddings())));
    // With nothing given, masking by the all-zero mask would only copy: skip it.
    const given = knownMask.some((v) => v !== 0);
    const masked = (tensor: Tensor) => given ? maskedFill(tensor, cond, 0) : tensor;
    const times: number[] = [];
    for (let step = 0, time = 1; step < this.steps; step++, time = Math.max(time - 1 / this.steps, 0)) {
      times.push(time);
    }
    // The time conditioning (FiLM rows) of a group of steps is computed in one pass into `film`, each
    // step's B rows in a block of its own that starts where a storage binding may (padding rows, when
    // needed, are computed and never read), so that each step's estimate reads its rows in place.
    const { layers, modelDim } = model.config;
    const width = layers * 4 * modelDim;
    const blockRows = alignedRows(B, width * 4, runtime.storageAlignment);
    const film = keep(engine.empty([this.stepsPerSubmit * blockRows, width], "f32", "sampling film"));
    const filmOf = (inGroup: number) => film.rows(inGroup * blockRows, B);
    // The estimate of every step is the same dispatches on the same buffers (only x and the estimate
    // change, in place, and which block of FiLM rows is read): record it once and replay it, rebound to
    // each step's block, so the host does not re-run the model's code each step. The update's
    // coefficients and seed change every step, so it is recorded anew (one dispatch that writes x in
    // place).
    let stepIds: Tensor | null = null;
    // Where nothing reads the logits themselves (no step views, no clamping), the softmax sums the
    // head's split-K partial products as it reads them; with the difflm update and nothing given, the
    // update likewise sums the estimate's and writes the estimate: where those products are split (few
    // rows: small batches), up to two reduction passes fewer a step, the same values to the bit.
    const headParts = !this.clamp && !request.onStep;
    const updateParts = !this.clamp && !given && this.method === "difflm";
    let estimateParts: SplitProduct | null = null;
    const estimateStep = (stepFilm: Tensor) =>
      engine.noGrad(() =>
        engine.tidy(() => {
          const selfCond = this.selfConditioning ? estimate : zero;
          const latent = model.estimator.latent([masked(x), xCond, selfCond], t, lengths, {
            ...forward,
            film: stepFilm,
          });
          const logits = headParts ? model.logitParts(latent) : model.logits(latent, forward);
          if (this.clamp) {
            const rows = this.estimate(logits as Tensor, table);
            runtime.copy(given ? masked(rows) : rows, estimate);
          } else {
            const probabilities = this.#probabilities(logits, latent.shape.slice(0, -1));
            if (updateParts) {
              const parts = matmulParts(estimate, probabilities, table);
              estimateParts = parts && { ...parts, part: engine.keep(parts.part) };
            } else if (given) {
              runtime.copy(masked(matmul(probabilities, table)), estimate);
            } else {
              matmulInto(estimate, probabilities, table);
            }
          }
          stepIds = request.onStep ? engine.keep(argmax(logits as Tensor)) : null;
        })
      );
    let recording: DispatchRecording | null = null;
    let recordedAt = 0;
    // The recording rebound to each block of FiLM rows but the one it was made on.
    const rebound = new Map<number, DispatchRecording>();
    const replayAt = (inGroup: number, base: DispatchRecording) => {
      let variant = inGroup === recordedAt ? base : rebound.get(inGroup);
      if (!variant) {
        variant = runtime.rebind(base, filmOf(recordedAt), filmOf(inGroup));
        rebound.set(inGroup, variant);
      }
      runtime.replay(variant);
    };
    // The checks of the submitted groups: the previous group's (awaited before the next group is
    // recorded) and those of this group's submissions so far.
    let inFlight: Promise<void> | null = null;
    let unchecked: Promise<void>[] = [];
    let finalIds: Tensor | null = null;
    let result!: Int32Array;
    const kept = [x, estimate, xCond, cond, lengths, t, zero, table];
    try {
      for (let step = 0; step < this.steps; step++) {
        const time = times[step]!;
        const next = Math.max(time - 1 / this.steps, 0);
        const inGroup = step % this.stepsPerSubmit;
        if (inGroup === 0 && signal) {
          // Waiting on submissions settles as microtasks, which never let a timer or a signal handler
          // run: yield to the event loop once per group, so whatever aborts the signal gets its turn.
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
        signal?.throwIfAborted();
        if (inGroup === 0) {
          // The time conditioning of the whole group of steps in one pass (the time MLP's rows are
          // independent, so each step's rows equal a pass at its own t).
          const group = times.slice(step, step + this.stepsPerSubmit);
          const groupTimes = new Float32Array(group.length * blockRows);
          group.forEach((tg, g) => groupTimes.fill(tg, g * blockRows, (g + 1) * blockRows));
          engine.noGrad(() =>
            engine.tidy(() => {
              const rows = model.estimator.timeConditioning(
                engine.tensor(groupTimes, [group.length * blockRows]),
                forward,
              );
              runtime.copy(rows, film);
            })
          );
        }
        // The first step runs as usual: it fills what kernels cache on first use (the RoPE table), which
        // a recording could not repeat.
        if (recording) replayAt(inGroup, recording);
        else if (step === 0 || !this.replay) estimateStep(filmOf(inGroup));
        else {
          recording = runtime.record(() => estimateStep(filmOf(inGroup)));
          recordedAt = inGroup;
        }
        const update = { time, next, seed: mixSeed(seed, step + 1) };
        if (estimateParts) {
          const parts: SplitProduct = estimateParts;
          const c = this.#coefficients(time, next);
          addScaledNoiseParts(parts, c.estimate, c.noise, update.seed, { sum: estimate, into: x });
          if (!recording) {
            parts.part.dispose(); // a recording's partials are rewritten in place instead
            estimateParts = null;
          }
        } else {
          engine.noGrad(() => engine.tidy(() => void this.update(x, estimate, update, x)));
        }
        // The last step's view is the result, shown once it is computed below.
        if (request.onStep && stepIds && step < this.steps - 1) {
          const host = new Int32Array(await runtime.read(stepIds));
          if (!recording) {
            (stepIds as Tensor).dispose(); // a recording's output is rewritten in place instead
            stepIds = null;
          }
          const rows = splitRows(host, B, L, knownIds, knownMask);
          await request.onStep({ step: step + 1, t: next, ids: rows, texts: this.#decode(rows) });
        } else if ((step + 1) % this.stepsPerSubmit === 0 || step < this.stepsPerSubmit) {
          // Submit now, but wait only for the previous group's check: the host records the next steps
          // while the GPU runs these. The steps of the first group are each submitted at once, so the
          // GPU starts on them while the host still runs the model's code (first step, recording).
          const submitted = runtime.flush("sampling");
          submitted.catch(() => {}); // handled: the error is rethrown where it is awaited below
          unchecked.push(submitted);
          if ((step + 1) % this.stepsPerSubmit === 0) {
            const group = Promise.all(unchecked).then(() => {});
            unchecked = [];
            if (inFlight) await inFlight;
            inFlight = group;
          }
        }
      }
      // The final pass is recorded and submitted while the GPU may still run the last steps; the last
      // group's check is awaited after it.
      engine.fill(t, 0);
      finalIds = engine.noGrad(() =>
        engine.tidy(() => {
          const selfCond = this.selfConditioning ? estimate : zero;
          const latent = model.estimator.latent([masked(x), xCond, selfCond], t, lengths, forward);
          return argmax(model.logits(latent, forward));
        })
      );
      const read = runtime.read(finalIds);
      read.catch(() => {}); // handled: awaited below
      await Promise.all([inFlight, ...unchecked]);
      result = new Int32Array(await read);
    } catch (error) {
      // A failed or aborted submission must not be left unawaited.
      await Promise.allSettled([inFlight, ...unchecked]);
      for (const tensor of [...kept, ...(finalIds ? [finalIds] : [])]) tensor.dispose();
      throw error;
    } finally {
      (stepIds as Tensor | null)?.dispose();
      (estimateParts as SplitProduct | null)?.part.dispose();
      recording?.dispose(); // and with it every rebound copy
      film.dispose();
    }
    for (const tensor of [finalIds, ...kept]) tensor.dispose();
    const ids = splitRows(result, B, L, knownIds, knownMask);
    const texts = this.#decode(ids);
    await request.onStep?.({ step: this.steps, t: 0, ids, texts });
    return { ids, texts };
  }

  #decode(rows: Int32Array[]): string[] {
    const tokenizer = this.tokenizer;
    return rows.map((r) => tokenizer ? tokenizer.decode([...r]) : r.join(" "));
  }

  /**
   * The estimate of x0 from the logits: softmax(logits/τ) · table (the seed's interpolation, τ = 1), or the
   * table row of the most likely token when clamping.
   *
   * @param logits f32 [B, L, V].
   * @param table The normalised embedding table, f32 [V, E].
   * @param into Where to write instead of a new tensor (same values).
   * @returns f32 [B, L, E] (`into` when given).
   */
  estimate(logits: Tensor, table: Tensor, into?: Tensor): Tensor {
    if (this.clamp) {
      const rows = embedding(table, argmax(logits));
      if (!into) return rows;
      this.model.engine.runtime.copy(rows, into);
      return into;
    }
    const probabilities = this.#probabilities(logits, logits.shape.slice(0, -1));
    if (!into) return matmul(probabilities, table);
    matmulInto(into, probabilities, table);
    return into;
  }

  /** softmax(logits/τ) [..rows, V], the logits whole or as the head's partial products. */
  #probabilities(logits: Tensor | SplitProduct, rows: readonly number[]): Tensor {
    const shape = [...rows, ("part" in logits ? logits.part : logits).shape.at(-1)!];
    const probabilities = this.model.engine.empty(shape, "f32", "probabilities");
    softmaxInto(probabilities, logits, { temperature: this.temperature });
    return probabilities;
  }

  /** The coefficients of the step from `time` to `next` under this sampler's method. */
  #coefficients(time: number, next: number): { estimate: number; current: number; noise: number } {
    const schedule = this.model.schedule;
    return reverseStep(this.method, schedule.gamma(time), schedule.gamma(next));
  }

  /**
   * One reverse step from `time` to `next` with this sampler's method (see {@linkcode reverseStep}).
   *
   * @param x The current x_t, f32 [B, L, E].
   * @param est The estimate of x0, same shape.
   * @param step `time` and `next` in [0, 1], and the `seed` of the fresh noise.
   * @param into Where to write instead of a new tensor (`x` itself will do; same values).
   * @returns x at `next` (`into` when given).
   */
  update(x: Tensor, est: Tensor, step: { time: number; next: number; seed: number }, into?: Tensor): Tensor {
    const { time, next, seed } = step;
    const c = this.#coefficients(time, next);
    if (c.noise === 0) {
      const y = addScaled(est, x, c.estimate, c.current);
      if (!into) return y;
      this.model.engine.runtime.copy(y, into);
      return into;
    }
    if (c.current === 0) return addScaledNoise(est, c.estimate, c.noise, seed, into);
    return addScaledNoise(addScaled(est, x, c.estimate, c.current), 1, c.noise, seed, into);
  }
}

/**
 * The fewest rows, at least `rows`, whose bytes (`rowBytes` each) are a multiple of `alignment`: a block
 * of them starts where a storage binding may when the block before it does.
 */
function alignedRows(rows: number, rowBytes: number, alignment: number): number {
  let count = rows;
  while ((count * rowBytes) % alignment !== 0) count++;
  return count;
}

/**
 * Coefficients of one reverse step: x_next = estimate·x̂0 + current·x_t + noise·ε with ε ~ N(0, I).
 * - difflm: √γ'·x̂0 + √(1−γ')·ε (fresh noise, the seed's update);
 * - ddim: ε̂ = (x_t − √γ·x̂0)/√(1−γ), x = √γ'·x̂0 + √(1−γ')·ε̂ (deterministic);
 * - ddpm: the ancestral step, a draw from the Gaussian posterior q(x_s | x_t, x0 = x̂0) with ᾱ = γ.
 *
 * @example Usage
 * ```ts
 * import { reverseStep } from "./sampler.ts";
 * const c = reverseStep("difflm", 0.5, 0.8);
 * console.log(c.current); // 0
 * ```
 * @param method The update rule.
 * @param gammaNow γ(t) at the current time.
 * @param gammaNext γ(t') at the next (smaller) time.
 * @returns The three coefficients.
 */
export function reverseStep(
  method: SamplingMethod,
  gammaNow: number,
  gammaNext: number,
): { estimate: number; current: number; noise: number } {
  if (method === "difflm") {
    return { estimate: Math.sqrt(gammaNext), current: 0, noise: Math.sqrt(1 - gammaNext) };
  }
  if (method === "ddim") {
    const k = Math.sqrt(1 - gammaNext) / Math.sqrt(Math.max(1 - gammaNow, 1e-12));
    return { estimate: Math.sqrt(gammaNext) - k * Math.sqrt(gammaNow), current: k, noise: 0 };
  }
  const ratio = gammaNow / Math.max(gammaNext, 1e-12);
  const denom = Math.max(1 - gammaNow, 1e-12);
  return {
    estimate: Math.sqrt(gammaNext) * (1 - ratio) / denom,
    current: Math.sqrt(ratio) * (1 - gammaNext) / denom,
    noise: Math.sqrt(Math.max(((1 - gammaNext) / denom) * (1 - ratio), 0)),
  };
}

function splitRows(
  host: Int32Array,
  B: number,
  L: number,
  knownIds: Int32Array,
  knownMask: Uint32Array,
): Int32Array[] {
  const rows: Int32Array[] = [];
  for (let b = 0; b < B; b++) {
    const row = host.slice(b * L, (b + 1) * L);
    // Given tokens are returned as given, whatever the head predicts there.
    for (let i = 0; i < L; i++) if (knownMask[b * L + i]) row[i] = knownIds[b * L + i]!;
    rows.push(row);
  }
  return rows;
}
