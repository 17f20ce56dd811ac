/**
 * References for kernels/adamw.ts: `torch.nn.utils.clip_grad_norm_` followed by one step of
 * `torch.optim.AdamW` (non-amsgrad), restated with plain loops.
 * - `precision: "f64"`: the mathematics in float64, the accuracy target.
 * - `precision: "f32"`: PyTorch's default (foreach) path op by op, each result rounded to f32 and every
 *   Python-float scalar rounded to f32 as its kernels take it; the GPU should agree to an ulp or two.
 */
import type { AdamwOptions } from "../../src/tensor/ops/adamw.ts";

/** Hyper-parameters of one step, as in src/tensor/ops/adamw.ts. */
export interface AdamwRefOptions
  extends Pick<AdamwOptions, "lr" | "beta1" | "beta2" | "eps" | "weightDecay" | "step"> {
  /** Clip to this global norm; `null` for no clipping. */
  maxNorm: number | null;
  /** The arithmetic to restate; default "f64". */
  precision?: "f64" | "f32";
  /** Use this global gradient norm instead of computing it (to isolate the update's rounding). */
  norm?: number;
}

/** Optimiser state; updated in place by {@linkcode adamwStepRef}. */
export interface AdamwRefState {
  params: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** sqrt(Σ g²) in float64. */
export function gradNormRef(grads: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < grads.length; i++) s += grads[i]! * grads[i]!;
  return Math.sqrt(s);
}

/** clip_grad_norm_'s coefficient: min(1, maxNorm / (norm + 1e-6)). */
export function clipCoefRef(norm: number, maxNorm: number, precision: "f64" | "f32" = "f64"): number {
  if (precision === "f64") return Math.min(1, maxNorm / (norm + 1e-6));
  const r = Math.fround;
  // PyTorch evaluates `max_norm / tensor` as reciprocal(tensor) · max_norm.
  return Math.min(1, r(r(1 / r(r(norm) + r(1e-6))) * r(maxNorm)));
}

/**
 * One clipped AdamW step on `state` with gradients `grads`; returns the norm used.
 *
 * @param state Parameters and moments, updated in place.
 * @param grads Gradients before clipping.
 * @param options Hyper-parameters.
 * @returns The global gradient norm (computed, or `options.norm`).
 */
export function adamwStepRef(
  state: AdamwRefState,
  grads: ArrayLike<number>,
  options: AdamwRefOptions,
): number {
  const { lr, beta1, beta2, eps, weightDecay, step, maxNorm, precision = "f64" } = options;
  const norm = options.norm ?? gradNormRef(grads);
  const coef = maxNorm === null ? 1 : clipCoefRef(norm, maxNorm, precision);
  const { params, m, v } = state;
  if (precision === "f64") {
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    for (let i = 0; i < params.length; i++) {
      const g = grads[i]! * coef;
      params[i] = params[i]! * (1 - lr * weightDecay);
      m[i] = beta1 * m[i]! + (1 - beta1) * g;
      v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + eps;
      params[i] = params[i]! - (lr / bc1) * m[i]! / denom;
    }
    return norm;
  }
  const r = Math.fround;
  const decay = r(1 - lr * weightDecay);
  const w1 = r(1 - beta1);
  const b2 = r(beta2);
  const w2 = r(1 - beta2);
  const bc2Sqrt = r(Math.sqrt(1 - beta2 ** step));
  const negStep = r(-(lr / (1 - beta1 ** step)));
  const eps32 = r(eps);
  for (let i = 0; i < params.length; i++) {
    const g = r(r(grads[i]!) * coef);
    const p = r(r(params[i]!) * decay);
    const m0 = r(m[i]!);
    const d = r(g - m0);
    // torch.lerp with a scalar weight.
    const m1 = w1 < 0.5 ? r(m0 + r(w1 * d)) : r(g - r(d * r(1 - w1)));
    const v1 = r(r(r(v[i]!) * b2) + r(w2 * r(g * g)));
    const denom = r(r(r(Math.sqrt(v1)) / bc2Sqrt) + eps32);
    params[i] = r(p + r(negStep * r(m1 / denom)));
    m[i] = m1;
    v[i] = v1;
  }
  return norm;
}
