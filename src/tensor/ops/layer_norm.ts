/**
 * The `layerNorm` and `layerNormFilm` ops: launchers and autograd nodes over kernels/layer_norm.ts.
 * Shapes only; the math lives in the kernels.
 *
 * @module
 */
import {
  LAYER_NORM_BACKWARD_PARAMS,
  LAYER_NORM_REDUCE_PARTIALS,
  layerNormBackwardSpec,
  layerNormForwardSpec,
  layerNormWorkgroupSize,
} from "../../../kernels/layer_norm.ts";
import { grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { checkF32 } from "./_shared.ts";
import type { SplitProduct } from "./matmul.ts";

/** Options for {@linkcode layerNorm}. */
export interface LayerNormOptions {
  /** Per-column scale [C]; none when omitted. */
  weight?: Tensor;
  /** Per-column shift [C]; none when omitted. */
  bias?: Tensor;
  /**
   * Added to the variance before the square root.
   * @default {1e-5}
   */
  eps?: number;
}

/** Options for {@linkcode layerNormFilm}. */
export interface LayerNormFilmOptions {
  /** Index of the C-wide slice of `film` that holds γ (for encoder layer i: 4i for γ1, 4i+1 for γ2). */
  gammaSlice: number;
  /** Index of the C-wide slice of `film` that holds β (4i+2 for β1, 4i+3 for β2). */
  betaSlice: number;
  /**
   * Added to the variance before the square root.
   * @default {1e-5}
   */
  eps?: number;
  /**
   * A product still split over K ({@linkcode matmulResidual}'s result) to add into `x` in place first:
   * `x += Σ_s part[s] + bias`, then `x` is normalised. Inference only (not while a tape records).
   */
  residual?: SplitProduct;
}

/** Rows per segment of the first pass of the affine weight/bias gradient (then one pass over segments). */
const PARAM_SEGMENT_ROWS = 128;

/** The column count to build the forward kernel for (unrolled), or undefined for the looping kernel. */
function unrolledCols(cols: number, wg: number): number | undefined {
  return cols >= 1 && cols <= 8 * wg ? cols : undefined;
}

/**
 * LayerNorm over the last dimension, as PyTorch's `nn.LayerNorm(C)`: (x − mean)/√(var + eps) with the
 * biased variance, then `· weight + bias` when given. Saves mean and rstd per row for backward;
 * gradients flow to `x`, `weight` and `bias` (the last two summed over rows in a fixed order).
 *
 * @example Usage
 * ```ts
 * import { Engine, layerNorm } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3, 4, 6, 8]), [2, 3]);
 * console.log(await layerNorm(x).read()); // ≈ [-1.2247, 0, 1.2247, -1.2247, 0, 1.2247]
 * ```
 * @param x Input [..., C], f32.
 * @param options Optional `weight` and `bias` [C], and `eps`.
 * @returns The normalised tensor, same shape as `x`.
 * @throws {TypeError} If a shape or dtype does not fit.
 */
export function layerNorm(x: Tensor, options: LayerNormOptions = {}): Tensor {
  const { weight, bias, eps = 1e-5 } = options;
  const cols = x.shape.at(-1) ?? 0;
  if (x.shape.length < 1 || cols === 0) {
    throw new TypeError(`Cannot run layerNorm: x has shape [${x.shape}], expected [..,C] with C > 0`);
  }
  checkF32("layerNorm", "x", x);
  for (const [name, p] of [["weight", weight], ["bias", bias]] as const) {
    if (!p) continue;
    checkF32("layerNorm", name, p);
    if (p.size !== cols || p.shape.length !== 1) {
      throw new TypeError(`Cannot run layerNorm: ${name} has shape [${p.shape}], expected [${cols}]`);
    }
  }
  const engine = x.engine;
  const rows = x.size / cols;
  const wg = layerNormWorkgroupSize(cols);
  const out = engine.empty(x.shape, "f32", "layer norm");
  const mean = engine.empty([rows], "f32", "layer norm mean");
  const rstd = engine.empty([rows], "f32", "layer norm rstd");
  const views: Record<string, Tensor> = { inp: x, out, mean, rstd };
  if (weight) views.weight = weight;
  if (bias) views.bias = bias;
  const grid = grid1d(rows);
  engine.runtime.dispatch(
    layerNormForwardSpec({ weight: !!weight, bias: !!bias, wg, cols: unrolledCols(cols, wg) }),
    views,
    { rows, cols, eps, group_rows: 1, w_stride: 0, w_off: 0, b_stride: 0, b_off: 0 },
    grid,
  );
  engine.record({
    name: "layerNorm",
    inputs: [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])],
    outputs: [out],
    backward: () => {
      const dout = engine.gradOf(out);
      if (x.requiresGrad) {
        const bviews: Record<string, Tensor> = { inp: x, dout, mean, rstd, dinp: engine.gradOf(x) };
        if (weight) bviews.weight = weight;
        engine.runtime.dispatch(
          layerNormBackwardSpec({ weight: !!weight, wg }),
          bviews,
          { rows, cols, group_rows: 1, w_stride: 0, w_off: 0 },
          grid,
        );
      }
      const needW = weight?.requiresGrad ?? false;
      const needB = bias?.requiresGrad ?? false;
      if (!needW && !needB) return;
      // Pass 1: per-segment column sums into a scratch [2, segs, C]; pass 2: sum the segments.
      const segRows = Math.max(PARAM_SEGMENT_ROWS, Math.ceil(rows / 65535));
      const segs = Math.max(1, Math.ceil(rows / segRows));
      // Gradients first: a tensor allocated inside the scope below would be released with it.
      const dweight = needW ? engine.gradOf(weight!) : null;
      const dbias = needB ? engine.gradOf(bias!) : null;
      engine.tidy(() => {
        const partial = engine.empty([2, segs, cols], "f32", "layer norm param partials");
        engine.runtime.dispatch(
          LAYER_NORM_BACKWARD_PARAMS,
          { inp: x, dout, mean, rstd, dparams: partial },
          {
            rows,
            cols,
            seg_rows: segRows,
            seg_stride: cols,
            gamma_off: 0,
            beta_off: segs * cols,
            accumulate: 0,
          },
          [Math.ceil(cols / 64), segs],
        );
        const reduce = (dst: Tensor, srcOff: number) =>
          engine.runtime.dispatch(
            LAYER_NORM_REDUCE_PARTIALS,
            { partial, dst },
            { segs, cols, src_off: srcOff },
            [Math.ceil(cols / 64)],
          );
        if (dweight) reduce(dweight, 0);
        if (dbias) reduce(dbias, segs * cols);
      });
    },
  });
  return out;
}

/**
 * LayerNorm without affine fused with FiLM, the encoder layer's `γ·LN(x) + β`:
 * `out[b,l,:] = film[b, gammaSlice·C + :] · LN(x[b,l,:]) + film[b, betaSlice·C + :]`. Backward adds
 * into the gradients of `x` and of `film` at the two slices (dγ[b] = Σ_l dout·x̂, dβ[b] = Σ_l dout,
 * summed over L in a fixed order).
 *
 * @example Usage
 * ```ts
 * import { Engine, layerNormFilm } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3, 4]), [1, 1, 4]);
 * const film = engine.tensor(new Float32Array([2, 2, 2, 2, 1, 1, 1, 1]), [1, 8]); // γ = 2, β = 1
 * const y = layerNormFilm(x, film, { gammaSlice: 0, betaSlice: 1 });
 * console.log(await y.read()); // ≈ [-1.683, 0.106, 1.894, 3.683]
 * ```
 * @param x Input [B, L, C], f32.
 * @param film Per-batch-element FiLM vectors [B, S·C] (or any shape [B, ...] of B·S·C elements).
 * @param options The γ and β slice indices in [0, S), and `eps`.
 * @returns The modulated tensor [B, L, C].
 * @throws {TypeError} If a shape or dtype does not fit.
 * @throws {RangeError} If a slice index is outside [0, S).
 */
export function layerNormFilm(x: Tensor, film: Tensor, options: LayerNormFilmOptions): Tensor {
  const { gammaSlice, betaSlice, eps = 1e-5 } = options;
  if (x.shape.length !== 3 || x.shape[2] === 0) {
    throw new TypeError(`Cannot run layerNormFilm: x has shape [${x.shape}], expected [B,L,C] with C > 0`);
  }
  const [batch, len, cols] = x.shape as [number, number, number];
  if (film.shape[0] !== batch || batch === 0 || film.size % (batch * cols) !== 0) {
    throw new TypeError(
      `Cannot run layerNormFilm: film has shape [${film.shape}], expected [${batch},S·${cols}]`,
    );
  }
  checkF32("layerNormFilm", "x", x);
  checkF32("layerNormFilm", "film", film);
  const slices = film.size / (batch * cols);
  for (const [name, s] of [["gammaSlice", gammaSlice], ["betaSlice", betaSlice]] as const) {
    if (!Number.isInteger(s) || s < 0 || s >= slices) {
      throw new RangeError(
        `Cannot run layerNormFilm: ${name} is ${s}, expected an integer in [0, ${slices})`,
      );
    }
  }
  const engine = x.engine;
  const rows = batch * len;
  const stride = slices * cols;
  const wg = layerNormWorkgroupSize(cols);
  const out = engine.empty(x.shape, "f32", "layer norm film");
  const mean = engine.empty([rows], "f32", "layer norm mean");
  const rstd = engine.empty([rows], "f32", "layer norm rstd");
  const grid = grid1d(rows);
  const groupRows = Math.max(1, len);
  const residual = options.residual;
  const views: Record<string, Tensor> = { inp: x, weight: film, bias: film, out, mean, rstd };
  if (residual) {
    if (engine.recording) {
      throw new TypeError("Cannot run layerNormFilm: residual adds into x in place, so no tape may record");
    }
    const { part, splits, bias } = residual;
    if (residual.activation) {
      throw new TypeError(
        "Cannot run layerNormFilm: residual has an activation, which the kernel does not apply",
      );
    }
    if (part.dtype !== "f32" || part.size !== splits * rows * cols || splits < 1) {
      throw new TypeError(
        `Cannot run layerNormFilm: residual part has shape [${part.shape}], expected ${splits}·${rows}·${cols} f32`,
      );
    }
    if (bias && (bias.dtype !== "f32" || bias.size !== cols)) {
      throw new TypeError(
        `Cannot run layerNormFilm: residual bias has shape [${bias.shape}], expected [${cols}]`,
      );
    }
    views.part = part;
    if (bias) views.rbias = bias;
  }
  engine.runtime.dispatch(
    layerNormForwardSpec({
      weight: true,
      bias: true,
      wg,
      residual: !!residual,
      residualBias: !!residual?.bias,
      cols: unrolledCols(cols, wg),
    }),
    views,
    {
      rows,
      cols,
      eps,
      group_rows: groupRows,
      w_stride: stride,
      w_off: gammaSlice * cols,
      b_stride: stride,
      b_off: betaSlice * cols,
      ...(residual ? { splits: residual.splits, part_stride: rows * cols } : {}),
    },
    grid,
  );
  engine.record({
    name: "layerNormFilm",
    inputs: [x, film],
    outputs: [out],
    backward: () => {
      const dout = engine.gradOf(out);
      if (x.requiresGrad) {
        engine.runtime.dispatch(
          layerNormBackwardSpec({ weight: true, wg }),
          { inp: x, dout, mean, rstd, weight: film, dinp: engine.gradOf(x) },
          { rows, cols, group_rows: groupRows, w_stride: stride, w_off: gammaSlice * cols },
          grid,
        );
      }
      if (film.requiresGrad && len > 0) {
        // One segment per batch element: its L rows sum straight into dγ[b] and dβ[b].
        engine.runtime.dispatch(
          LAYER_NORM_BACKWARD_PARAMS,
          { inp: x, dout, mean, rstd, dparams: engine.gradOf(film) },
          {
            rows,
            cols,
            seg_rows: len,
            seg_stride: stride,
            gamma_off: gammaSlice * cols,
            beta_off: betaSlice * cols,
            accumulate: 1,
          },
          [Math.ceil(cols / 64), batch],
        );
      }
    },
  });
  return out;
}
