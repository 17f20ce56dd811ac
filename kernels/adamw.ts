/**
 * adamw: the optimiser step over flat f32 arenas (parameters, gradients, first and second moments of
 * one length), the global gradient norm for clipping, an in-place scale for averaging accumulated
 * gradients, and the exponential moving average of the weights (`ema_update`, pointwise like the update). Nothing is read back to the host: the clip coefficient is computed from the norm buffer
 * inside the update.
 *
 * Kernels
 * - `adamw_norm_partial`: one workgroup of 256 invocations per tile of 4096 elements; each invocation
 *   sums the squares of 16 elements (strided by 256, so loads coalesce), then a tree in workgroup memory
 *   writes one partial sum per tile at `offset + tile`. Launched once per arena chunk, each chunk with
 *   its own `offset`, so the partial sums of all chunks lie side by side.
 * - `adamw_norm_final`: one workgroup; each invocation sums every 256th partial, a tree adds those, and
 *   invocation 0 writes `sqrt(sum)`. The order of additions depends only on the length and the chunk
 *   size, so the norm is deterministic.
 * - `adamw_update` / `adamw_update_clipped`: one invocation per element, 256 per workgroup, grid folded
 *   into 2-D past 65535 groups. Restates PyTorch's AdamW (the default foreach path, non-amsgrad) op by
 *   op in f32, with the scalars computed on the host in double and rounded to f32 as PyTorch does:
 *     coef = min((1 / (norm + 1e-6)) · maxNorm, 1)  (clip_grad_norm_; `x / t` is `reciprocal(t)·x` there)
 *     g    = grad · coef
 *     p    = p · (1 − lr·wd)
 *     m    = lerp(m, g, 1 − β1)                       (torch.lerp: m + w·(g − m) for w < 0.5)
 *     v    = v · β2 + (1 − β2) · (g · g)
 *     p    = p + (−lr / (1 − β1^t)) · (m / (sqrt(v) / sqrt(1 − β2^t) + eps))
 *   The gradient arena is only read: the clipped gradient is never written back.
 * - `adamw_scale`: x ← x · factor in place, one invocation per element.
 *
 * Nothing is saved for a backward pass (there is none). Reference: tests/ref/adamw.ts (float64, and an
 * f32 restatement of PyTorch's order of operations).
 *
 * @module
 */
import { defineKernel, type KernelSpec, type UniformType } from "../src/gpu/kernel.ts";
import { pointwiseKernel, sumInto, treeReduceWgsl, workgroupEntry } from "./_wgsl.ts";

/** Elements per workgroup of `adamw_norm_partial` (256 invocations × 16 elements). */
export const ADAMW_NORM_TILE = 4096;

/** Partial sums of squares: partials[offset + tile] = Σ grads[i]² over the tile's 4096 elements. */
export const ADAMW_NORM_PARTIAL: KernelSpec = defineKernel({
  name: "adamw_norm_partial",
  reads: ["grads"],
  writes: ["partials"],
  uniforms: { n: "u32", tiles: "u32", offset: "u32" },
  body: /* wgsl */ `
var<workgroup> sums: array<f32, 256>;

${workgroupEntry("adamw_norm_partial", "256", "tile", "params.tiles")}
  let base = tile * ${ADAMW_NORM_TILE}u;
  var acc = 0.0;
  for (var k = 0u; k < 16u; k++) {
    let i = base + k * 256u + lid;
    if (i < params.n) {
      let g = grads[i];
      acc += g * g;
    }
  }
  sums[lid] = acc;
  workgroupBarrier();
  ${treeReduceWgsl("256u", sumInto("sums"))}
  if (lid == 0u) { partials[params.offset + tile] = sums[0]; }
}
`,
});

/** norm[0] = sqrt(Σ partials[0 … count−1]). */
export const ADAMW_NORM_FINAL: KernelSpec = defineKernel({
  name: "adamw_norm_final",
  reads: ["partials"],
  writes: ["norm"],
  uniforms: { count: "u32" },
  body: /* wgsl */ `
var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(256)
fn adamw_norm_final(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < params.count; i += 256u) { acc += partials[i]; }
  sums[lid] = acc;
  workgroupBarrier();
  ${treeReduceWgsl("256u", sumInto("sums"))}
  if (lid == 0u) { norm[0] = sqrt(sums[0]); }
}
`,
});

/**
 * Builds the AdamW update module: with `clipped`, the gradient is scaled by the clip coefficient read
 * from `norm[0]` (binding `norm`, uniform `max_norm`); with `guarded` too, it reads the step guard's
 * verdict (binding `guard`, kernels/loss_scale.ts): `guard[4]` ≠ 0 skips the step (weights and moments
 * untouched) and `guard[3]` multiplies the gradient (undoing the loss scale); without, the gradient is
 * used as is.
 *
 * @param clipped Whether the kernel reads the global gradient norm and clips.
 * @param guarded Whether it reads the step guard's verdict (only with `clipped`).
 * @returns The kernel spec (`adamw_update`, `adamw_update_clipped` or `adamw_update_guarded`).
 */
function adamwUpdateSpec(clipped: boolean, guarded = false): KernelSpec {
  const name = guarded ? "adamw_update_guarded" : clipped ? "adamw_update_clipped" : "adamw_update";
  const reads = guarded ? ["grads", "norm", "guard"] : clipped ? ["grads", "norm"] : ["grads"];
  const uniforms: Record<string, UniformType> = {
    n: "u32",
    decay: "f32",
    w1: "f32",
    beta2: "f32",
    w2: "f32",
    bc2_sqrt: "f32",
    neg_step: "f32",
    eps: "f32",
  };
  if (clipped) uniforms.max_norm = "f32";
  // clip_grad_norm_: clamp(max_norm / (total_norm + 1e-6), max=1), where scalar / tensor is reciprocal·scalar.
  const coef = "let coef = min((1.0 / (norm[0] + 1e-6)) * params.max_norm, 1.0);";
  const gradient = guarded
    ? `if (guard[4] != 0.0) { return; }\n  ${coef}\n  let g = grads[i] * guard[3] * coef;`
    : clipped
    ? `${coef}\n  let g = grads[i] * coef;`
    : "let g = grads[i];";
  return pointwiseKernel({
    name,
    reads,
    writes: ["weights", "m", "v"],
    uniforms,
    body: /* wgsl */ `${gradient}
  let p = weights[i] * params.decay;
  let m0 = m[i];
  let d = g - m0;
  // torch.lerp(m, g, w): m + w·(g − m) for w < 0.5, else g − (g − m)·(1 − w).
  let m1 = select(g - d * (1.0 - params.w1), m0 + params.w1 * d, params.w1 < 0.5);
  let v1 = v[i] * params.beta2 + params.w2 * (g * g);
  let denom = sqrt(v1) / params.bc2_sqrt + params.eps;
  weights[i] = p + params.neg_step * (m1 / denom);
  m[i] = m1;
  v[i] = v1;`,
  });
}

/** One AdamW step over n elements: weights, m, v updated in place from grads (no clipping). */
export const ADAMW_UPDATE: KernelSpec = adamwUpdateSpec(false);

/** One AdamW step over n elements with the gradient scaled by min(1, max_norm / (norm[0] + 1e-6)). */
export const ADAMW_UPDATE_CLIPPED: KernelSpec = adamwUpdateSpec(true);

/**
 * One AdamW step over n elements, clipped as {@linkcode ADAMW_UPDATE_CLIPPED}, after the step guard's
 * verdict: skipped when `guard[4]` ≠ 0, the gradient multiplied by `guard[3]` (kernels/loss_scale.ts).
 */
export const ADAMW_UPDATE_GUARDED: KernelSpec = adamwUpdateSpec(true, true);

/** x ← x · factor in place, n elements. */
export const ADAMW_SCALE: KernelSpec = pointwiseKernel({
  name: "adamw_scale",
  reads: [],
  writes: ["x"],
  uniforms: { n: "u32", factor: "f32" },
  body: /* wgsl */ `x[i] = x[i] * params.factor;`,
});

/** Exponential moving average of the weights: average ← average + rate · (weights − average), n elements. */
export const EMA_UPDATE: KernelSpec = pointwiseKernel({
  name: "ema_update",
  reads: ["weights"],
  writes: ["average"],
  uniforms: { n: "u32", rate: "f32" },
  body: /* wgsl */ `average[i] = average[i] + params.rate * (weights[i] - average[i]);`,
});
