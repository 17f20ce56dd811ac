/**
 * Launchers of the optimiser kernels (kernels/adamw.ts), beside the other kernel families' launchers, over flat f32 arenas: the global gradient norm,
 * the AdamW step with gradient-norm clipping read from the GPU, and an in-place scale. No autograd; no
 * GPU→CPU read-back. Every launcher walks the arena in chunks no longer than the device's
 * `maxStorageBufferBindingSize`, each chunk a view at an offset aligned to the storage alignment.
 *
 * Imports only the GPU runtime, the tensor type and the kernels; nothing here knows about models.
 *
 * @module
 */
import {
  ADAMW_NORM_FINAL,
  ADAMW_NORM_PARTIAL,
  ADAMW_NORM_TILE,
  ADAMW_SCALE,
  ADAMW_UPDATE,
  ADAMW_UPDATE_CLIPPED,
  ADAMW_UPDATE_GUARDED,
  EMA_UPDATE,
} from "../../../kernels/adamw.ts";
import type { BufferView } from "../../gpu/buffer_pool.ts";
import { grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { elementGrid } from "./_shared.ts";

/** Options shared by the arena launchers. */
export interface ArenaChunkOptions {
  /**
   * Elements per chunk (a multiple of the storage alignment in elements, 64 for 256 bytes). Tests set
   * it small to exercise the multi-chunk path on small arenas.
   * @default {the largest such multiple within maxStorageBufferBindingSize}
   */
  chunkElements?: number;
}

/** The four arenas of one optimiser: the same length, f32, element i of each belongs to one weight. */
export interface AdamwArenas {
  /** Parameters, updated in place. */
  params: Tensor;
  /** Gradients, only read (the clipped gradient is not written back). */
  grads: Tensor;
  /** First moments (PyTorch's `exp_avg`), updated in place; zeros before the first step. */
  m: Tensor;
  /** Second moments (PyTorch's `exp_avg_sq`), updated in place; zeros before the first step. */
  v: Tensor;
}

/** Hyper-parameters of one AdamW step (PyTorch's names in comments). */
export interface AdamwOptions extends ArenaChunkOptions {
  /** Learning rate of this step (`lr`), after any schedule. */
  lr: number;
  /** First-moment decay (`betas[0]`), e.g. 0.9. */
  beta1: number;
  /** Second-moment decay (`betas[1]`), e.g. 0.99. */
  beta2: number;
  /** Added to the denominator (`eps`), e.g. 1e-8. */
  eps: number;
  /** Decoupled weight decay (`weight_decay`), e.g. 1e-4. */
  weightDecay: number;
  /** The 1-based number of this step (PyTorch's `state["step"]` after its increment); sets the bias corrections. */
  step: number;
  /**
   * The step guard's state (kernels/loss_scale.ts): when given with a norm, the step is skipped if the
   * guard says so, and the gradient is multiplied by the guard's factor (undoing the loss scale).
   */
  guard?: Tensor;
  /** `max_norm` of `clip_grad_norm_`; used only when a norm tensor is given. */
  maxNorm: number;
}

/** Checks an f32 arena's dtype and alignment; returns its length. */
function arenaLength(what: string, name: string, t: Tensor): number {
  if (t.dtype !== "f32") {
    throw new TypeError(`Cannot run ${what}: ${name} has dtype ${t.dtype}, expected f32`);
  }
  const align = t.engine.runtime.storageAlignment;
  if (t.byteOffset % align !== 0) {
    throw new RangeError(
      `Cannot run ${what}: ${name} starts at byte ${t.byteOffset}, expected a multiple of ${align}`,
    );
  }
  return t.size;
}

/** Elements per chunk: the option if given (checked), else the largest aligned count within the binding limit. */
function chunkSize(what: string, t: Tensor, options: ArenaChunkOptions): number {
  const runtime = t.engine.runtime;
  const alignElements = runtime.storageAlignment / 4;
  const maxElements = Math.floor(runtime.gpu.limits.maxStorageBufferBindingSize / 4);
  const chunk = options.chunkElements ?? Math.floor(maxElements / alignElements) * alignElements;
  if (!Number.isInteger(chunk) || chunk <= 0 || chunk % alignElements !== 0 || chunk > maxElements) {
    throw new RangeError(
      `Cannot run ${what}: chunkElements is ${chunk}, expected a positive multiple of ${alignElements} ` +
        `up to ${maxElements}`,
    );
  }
  return chunk;
}

/** The view of elements start … start+count−1 of `t`. */
/** The [start, count] element ranges of an arena of n elements in chunks of `chunk`. */
function chunks(n: number, chunk: number): [number, number][] {
  const ranges: [number, number][] = [];
  for (let start = 0; start < n; start += chunk) ranges.push([start, Math.min(chunk, n - start)]);
  return ranges;
}

function slice(t: Tensor, start: number, count: number): BufferView {
  return { buffer: t.buffer, byteOffset: t.byteOffset + start * 4, byteLength: count * 4 };
}

/**
 * Writes the global L2 norm of the whole gradient arena, sqrt(Σ g²), into `norm` (f32, element 0):
 * partial sums of squares per 4096 elements for each chunk, then one workgroup adds them and takes the
 * square root. Deterministic for a given length and chunk size; no read-back.
 *
 * @example Usage
 * ```ts
 * import { Engine, gradNormInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const grads = engine.tensor(new Float32Array([3, 4]), [2]);
 * const norm = engine.empty([1]);
 * gradNormInto(norm, grads);
 * console.log(await norm.read()); // Float32Array [5]
 * ```
 * @param norm Receives the norm in element 0 (f32, at least one element).
 * @param grads The gradient arena (f32, any shape, offset aligned to the storage alignment).
 * @param options Chunk size override (for tests).
 * @throws {TypeError} If a tensor is not f32 or `norm` is empty.
 * @throws {RangeError} If `grads` is misaligned or `chunkElements` is invalid.
 */
export function gradNormInto(norm: Tensor, grads: Tensor, options: ArenaChunkOptions = {}): void {
  const what = "gradNormInto";
  if (norm.dtype !== "f32" || norm.size < 1) {
    throw new TypeError(
      `Cannot run ${what}: norm has shape [${norm.shape}] and dtype ${norm.dtype}, expected f32 [1]`,
    );
  }
  const n = arenaLength(what, "grads", grads);
  const chunk = chunkSize(what, grads, options);
  const runtime = grads.engine.runtime;
  let totalTiles = 0;
  for (const [, count] of chunks(n, chunk)) totalTiles += Math.ceil(count / ADAMW_NORM_TILE);
  const partials = runtime.acquire(Math.max(1, totalTiles) * 4, "gradient norm partial sums");
  const partialsView: BufferView = {
    buffer: partials,
    byteOffset: 0,
    byteLength: Math.max(1, totalTiles) * 4,
  };
  let offset = 0;
  for (const [start, count] of chunks(n, chunk)) {
    const tiles = Math.ceil(count / ADAMW_NORM_TILE);
    runtime.dispatch(
      ADAMW_NORM_PARTIAL,
      { grads: slice(grads, start, count), partials: partialsView },
      { n: count, tiles, offset },
      grid1d(tiles),
    );
    offset += tiles;
  }
  runtime.dispatch(ADAMW_NORM_FINAL, { partials: partialsView, norm: slice(norm, 0, 1) }, {
    count: totalTiles,
  }, [
    1,
  ]);
  // Recorded work that reads the buffer stays ordered before any later reuse from the pool.
  runtime.release(partials);
}

/**
 * One AdamW step over the arenas, as PyTorch's `torch.optim.AdamW` (non-amsgrad) after
 * `torch.nn.utils.clip_grad_norm_(params, maxNorm)`: when `norm` is given (from {@linkcode gradNormInto}),
 * each gradient is scaled by min(1, maxNorm / (norm + 1e-6)) inside the update, read from the GPU; then
 * p ← p·(1 − lr·wd), m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g², and
 * p ← p − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps). The bias corrections are computed on the host in
 * double from `step` and passed as f32, as PyTorch passes its Python-float scalars to f32 kernels. One pass
 * per chunk; the gradients are only read.
 *
 * @example Usage
 * ```ts
 * import { adamwUpdate, Engine, gradNormInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const n = 1000;
 * const arenas = {
 *   params: engine.zeros([n]), grads: engine.zeros([n]), m: engine.zeros([n]), v: engine.zeros([n]),
 * };
 * const norm = engine.empty([1]);
 * gradNormInto(norm, arenas.grads);
 * adamwUpdate(arenas, norm, {
 *   lr: 1e-4, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 1e-4, step: 1, maxNorm: 1,
 * });
 * ```
 * @param arenas Parameters, gradients and moments: f32, one length, offsets aligned to the storage alignment.
 * @param norm The global gradient norm in element 0, or `null` for no clipping.
 * @param options Hyper-parameters of this step, and the chunk size override (for tests).
 * @throws {TypeError} If the arenas differ in length or dtype, or `norm` is not f32 with an element.
 * @throws {RangeError} If `step` is not a positive integer, an arena is misaligned, or `chunkElements` is invalid.
 */
export function adamwUpdate(arenas: AdamwArenas, norm: Tensor | null, options: AdamwOptions): void {
  const what = "adamwUpdate";
  const { params, grads, m, v } = arenas;
  const n = arenaLength(what, "params", params);
  for (const [name, t] of [["grads", grads], ["m", m], ["v", v]] as const) {
    const size = arenaLength(what, name, t);
    if (size !== n) {
      throw new TypeError(`Cannot run ${what}: ${name} has ${size} elements, expected ${n} as params`);
    }
  }
  if (norm && (norm.dtype !== "f32" || norm.size < 1)) {
    throw new TypeError(
      `Cannot run ${what}: norm has shape [${norm.shape}] and dtype ${norm.dtype}, expected f32 [1]`,
    );
  }
  const { lr, beta1, beta2, eps, weightDecay, step, maxNorm } = options;
  if (!Number.isInteger(step) || step < 1) {
    throw new RangeError(`Cannot run ${what}: step is ${step}, expected an integer >= 1`);
  }
  const chunk = chunkSize(what, params, options);
  // Scalars in double, as PyTorch computes them in Python before its f32 kernels round them.
  const uniforms: Record<string, number> = {
    decay: 1 - lr * weightDecay,
    w1: 1 - beta1,
    beta2,
    w2: 1 - beta2,
    bc2_sqrt: Math.sqrt(1 - beta2 ** step),
    neg_step: -(lr / (1 - beta1 ** step)),
    eps,
  };
  const guard = norm ? options.guard : undefined;
  const spec = guard ? ADAMW_UPDATE_GUARDED : norm ? ADAMW_UPDATE_CLIPPED : ADAMW_UPDATE;
  if (norm) uniforms.max_norm = maxNorm;
  const runtime = params.engine.runtime;
  for (const [start, count] of chunks(n, chunk)) {
    const views: Record<string, BufferView> = {
      grads: slice(grads, start, count),
      weights: slice(params, start, count),
      m: slice(m, start, count),
      v: slice(v, start, count),
    };
    if (norm) views.norm = slice(norm, 0, 1);
    if (guard) views.guard = slice(guard, 0, guard.size);
    runtime.dispatch(spec, views, { ...uniforms, n: count }, elementGrid(count));
  }
}

/**
 * Multiplies every element of `x` by `factor` in place (e.g. 1/steps to average accumulated gradients),
 * chunk by chunk.
 *
 * @example Usage
 * ```ts
 * import { Engine, scaleInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([2, 4]), [2]);
 * scaleInto(x, 0.5);
 * console.log(await x.read()); // Float32Array [1, 2]
 * ```
 * @param x An f32 tensor, offset aligned to the storage alignment.
 * @param factor The multiplier (rounded to f32).
 * @param options Chunk size override (for tests).
 * @throws {TypeError} If `x` is not f32.
 * @throws {RangeError} If `x` is misaligned or `chunkElements` is invalid.
 */
export function scaleInto(x: Tensor, factor: number, options: ArenaChunkOptions = {}): void {
  const what = "scaleInto";
  const n = arenaLength(what, "x", x);
  const chunk = chunkSize(what, x, options);
  const runtime = x.engine.runtime;
  for (const [start, count] of chunks(n, chunk)) {
    runtime.dispatch(
      ADAMW_SCALE,
      { x: slice(x, start, count) },
      { n: count, factor },
      elementGrid(count),
    );
  }
}

/**
 * Moves a moving average of the weights towards the weights: average ← average + (1 − decay) ·
 * (weights − average), chunk by chunk. Run after each optimiser step, it gives the averaged weights that
 * diffusion models usually sample with.
 *
 * @example Usage
 * ```ts
 * import { emaUpdate, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const weights = engine.tensor(new Float32Array([1, 2]), [2]);
 * const average = engine.tensor(new Float32Array([0, 0]), [2]);
 * emaUpdate(weights, average, 0.75);
 * console.log(await average.read()); // Float32Array [0.25, 0.5]
 * ```
 * @param weights The weights (e.g. the parameter arena), f32, offset aligned.
 * @param average The average, same length, updated in place.
 * @param decay The average's decay per step, in [0, 1).
 * @param options Chunk size override (for tests).
 * @throws {TypeError} If a tensor is not f32 or the lengths differ.
 * @throws {RangeError} If a tensor is misaligned, `decay` is outside [0, 1) or `chunkElements` is invalid.
 */
export function emaUpdate(
  weights: Tensor,
  average: Tensor,
  decay: number,
  options: ArenaChunkOptions = {},
): void {
  const what = "emaUpdate";
  const n = arenaLength(what, "weights", weights);
  const size = arenaLength(what, "average", average);
  if (size !== n) throw new TypeError(`Cannot run ${what}: average has ${size} elements, expected ${n}`);
  if (!(decay >= 0 && decay < 1)) {
    throw new RangeError(`Cannot run ${what}: decay is ${decay}, expected [0, 1)`);
  }
  const chunk = chunkSize(what, weights, options);
  const runtime = weights.engine.runtime;
  for (const [start, count] of chunks(n, chunk)) {
    runtime.dispatch(
      EMA_UPDATE,
      { weights: slice(weights, start, count), average: slice(average, start, count) },
      { n: count, rate: 1 - decay },
      elementGrid(count),
    );
  }
}
