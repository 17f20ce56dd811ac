/**
 * loss: the two training losses and the deterministic reduction that turns per-row terms into a scalar.
 *
 * - Cross-entropy, fused with its gradient (llm.c style). One workgroup of 256 invocations per row of V
 *   logits: a first sweep keeps, per invocation, an online max/sum-of-exp pair and the running argmax
 *   (ties → lowest index), reduced across the workgroup in shared memory; a second sweep writes
 *   w·scale·(softmax − onehot(target)). Per row it writes loss = w·(logsumexp − logit[target]) and
 *   correct = w·[argmax = target]. Rows with w = 0, or a target outside [0, V) (PyTorch's ignore_index),
 *   count for nothing and get a zero gradient. Three variants of the same text: `inplace` overwrites
 *   the logits with the gradient (the chunked lm_head loop), `saved` writes the gradient to a separate
 *   buffer (kept by the autograd op for backward), `forward` writes no gradient.
 * - Masked MSE: Σ_i w_i · mean_e (est − target)², the sum split into fixed chunks of 4096 elements,
 *   one workgroup per chunk, then `loss_sum` over the chunk partials. Backward is elementwise and
 *   saves nothing: it rereads est, target and the weights.
 * - `loss_sum`: workgroup g sums elements [g·chunk, (g+1)·chunk) in a fixed order (strided per
 *   invocation, then a shared-memory tree), so the result depends only on the sizes, never on
 *   scheduling: the same inputs give the same bits.
 * - `loss_scale_add`: dinp += dout[0] · saved, reading the upstream scalar on the GPU.
 *
 * Reference: tests/ref/loss.ts (float64).
 *
 * @module
 */
import { defineKernel, type KernelSpec, type UniformType } from "../src/gpu/kernel.ts";
import { pointwiseKernel, sumInto, treeReduceWgsl, workgroupEntry } from "./_wgsl.ts";

/** Invocations per workgroup in every loss kernel. */
export const LOSS_WORKGROUP = 256;

/** Which buffers the cross-entropy kernel writes its gradient into. */
export type CrossEntropyMode = "inplace" | "saved" | "forward";

const TREE_MAX_SUM = /* wgsl */ `
// Tree-reduces (max, sum·exp, argmax) over the workgroup; ties keep the lowest index.
fn reduce_row(lid: u32) {
  ${
  treeReduceWgsl("256u", (a, b) =>
    `let m1 = sh_max[${a}];
      let m2 = sh_max[${b}];
      let m = max(m1, m2);
      sh_sum[${a}] = sh_sum[${a}] * exp(m1 - m) + sh_sum[${b}] * exp(m2 - m);
      let i1 = sh_arg[${a}];
      let i2 = sh_arg[${b}];
      let v1 = sh_best[${a}];
      let v2 = sh_best[${b}];
      if (v2 > v1 || (v2 == v1 && i2 < i1)) {
        sh_best[${a}] = v2;
        sh_arg[${a}] = i2;
      }
      sh_max[${a}] = m;`)
}
}
`;

/**
 * The cross-entropy kernel of one variant.
 *
 * @param mode `inplace` (gradient over the logits), `saved` (gradient into `dlogits`) or `forward` (none).
 * @returns The kernel spec; entry point `loss_cross_entropy_<mode>`.
 */
function crossEntropySpec(mode: CrossEntropyMode): KernelSpec {
  const gradTarget = mode === "inplace" ? "logits" : "dlogits";
  const gradient = mode === "forward" ? "" : /* wgsl */ `
  // Second sweep: the gradient. Every read of this row happened before the barriers above.
  // Ignored rows get exact zeros, even where their logits are not finite.
  let g = w * params.grad_scale;
  let inv_sum = 1.0 / total;
  for (var j = lid; j < cols; j += 256u) {
    let p = exp(logits[base + j] - m) * inv_sum;
    ${gradTarget}[base + j] = select(0.0, g * (p - select(0.0, 1.0, i32(j) == tgt)), counted);
  }`;
  return defineKernel({
    name: `loss_cross_entropy_${mode}`,
    reads: mode === "inplace" ? ["targets", "row_weight"] : ["logits", "targets", "row_weight"],
    writes: mode === "inplace"
      ? ["logits", "loss", "correct"]
      : mode === "saved"
      ? ["dlogits", "loss", "correct"]
      : ["loss", "correct"],
    uniforms: { rows: "u32", cols: "u32", grad_scale: "f32" },
    elements: { targets: "i32" },
    body: /* wgsl */ `
var<workgroup> sh_max: array<f32, 256>;
var<workgroup> sh_sum: array<f32, 256>;
var<workgroup> sh_best: array<f32, 256>;
var<workgroup> sh_arg: array<u32, 256>;
${TREE_MAX_SUM}
${workgroupEntry(`loss_cross_entropy_${mode}`, "256", "row", "params.rows")}
  let cols = params.cols;
  let base = row * cols;
  let tgt = targets[row];
  let w = row_weight[row];
  // Ignored rows (zero weight or target outside the vocabulary) contribute nothing.
  let counted = w != 0.0 && tgt >= 0 && u32(tgt) < cols;
  var target_logit = 0.0;
  if (counted) { target_logit = logits[base + u32(tgt)]; }

  // First sweep: online max and Σexp(x − max), and the argmax (strict > keeps the lowest index).
  var m = -3.0e38;
  var s = 0.0;
  var best = -3.0e38;
  var arg = 0xffffffffu;
  for (var j = lid; j < cols; j += 256u) {
    let x = logits[base + j];
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
    if (x > best) {
      best = x;
      arg = j;
    }
  }
  sh_max[lid] = m;
  sh_sum[lid] = s;
  sh_best[lid] = best;
  sh_arg[lid] = arg;
  workgroupBarrier();
  reduce_row(lid);
  m = sh_max[0];
  let total = sh_sum[0];
  let argmax = sh_arg[0];
  if (lid == 0u) {
    let lse = m + log(total);
    loss[row] = select(0.0, w * (lse - target_logit), counted);
    correct[row] = select(0.0, w, counted && argmax == u32(tgt));
  }
  ${gradient}
}
`,
  });
}

/**
 * Cross-entropy over rows of logits [rows, cols], one workgroup per row (grid folded into 2-D); writes
 * loss[rows], correct[rows] and OVERWRITES the logits with w·grad_scale·(softmax − onehot).
 */
export const LOSS_CROSS_ENTROPY_INPLACE: KernelSpec = crossEntropySpec("inplace");

/** Cross-entropy as {@linkcode LOSS_CROSS_ENTROPY_INPLACE}, with the gradient written to `dlogits` [rows, cols]. */
export const LOSS_CROSS_ENTROPY_SAVED: KernelSpec = crossEntropySpec("saved");

/** Cross-entropy as {@linkcode LOSS_CROSS_ENTROPY_INPLACE}, loss and correct only (no gradient). */
export const LOSS_CROSS_ENTROPY_FORWARD: KernelSpec = crossEntropySpec("forward");

/**
 * A chunked sum: workgroup g adds the terms of elements g·chunk … min(n, (g+1)·chunk) − 1 (256 lanes,
 * then a tree in a fixed order) and runs `store` with the total in `total`; one workgroup per chunk,
 * the grid folded into 2-D.
 */
function chunkSumKernel(
  io: { name: string; reads: string[]; writes: string[]; uniforms: Record<string, UniformType> },
  term: string,
  store: string,
): KernelSpec {
  return defineKernel({
    ...io,
    body: /* wgsl */ `
var<workgroup> sh_acc: array<f32, 256>;

${workgroupEntry(io.name, "256", "g")}
  let start = g * params.chunk;
  let end = min(params.n, start + params.chunk);
  var acc = 0.0;
  for (var i = start + lid; i < end; i += 256u) {
    ${term}
  }
  sh_acc[lid] = acc;
  workgroupBarrier();
  ${treeReduceWgsl("256u", sumInto("sh_acc"))}
  if (lid == 0u) {
    let total = sh_acc[0];
    ${store}
  }
}
`,
  });
}

/** out[g] = Σ inp[g·chunk … min(n, (g+1)·chunk) − 1], one workgroup per g (grid folded into 2-D). */
export const LOSS_SUM: KernelSpec = chunkSumKernel(
  { name: "loss_sum", reads: ["inp"], writes: ["out"], uniforms: { n: "u32", chunk: "u32" } },
  "acc += inp[i];",
  "out[g] = total;",
);

/**
 * partial[g] = Σ over elements i in chunk g of w[i / cols]·(est[i] − tgt[i])² / cols; rows with w = 0
 * contribute exactly 0. `loss_sum` then adds the partials.
 */
export const LOSS_MSE_FORWARD: KernelSpec = chunkSumKernel(
  {
    name: "loss_mse_forward",
    reads: ["est", "tgt", "row_weight"],
    writes: ["partial"],
    uniforms: { n: "u32", cols: "u32", chunk: "u32" },
  },
  `let w = row_weight[i / params.cols];
    let d = est[i] - tgt[i];
    acc += select(0.0, w * d * d, w != 0.0);`,
  "partial[g] = total / f32(params.cols);",
);

/** The masked-MSE backward, adding into `dest` or writing it (a gradient not written before, unzeroed). */
function mseBackwardSpec(accumulate: boolean): KernelSpec {
  return pointwiseKernel({
    name: accumulate ? "loss_mse_backward" : "loss_mse_backward_write",
    reads: ["est", "tgt", "row_weight", "dout"],
    writes: ["dest"],
    uniforms: { n: "u32", cols: "u32" },
    body: /* wgsl */ `let w = row_weight[i / params.cols];
  let d = est[i] - tgt[i];
  let g = dout[0] * w * 2.0 / f32(params.cols);
  dest[i] ${accumulate ? "+=" : "="} select(0.0, g * d, w != 0.0);`,
  });
}

/** dest[i] += dout[0] · w[i / cols] · 2(est[i] − tgt[i]) / cols, one invocation per element. */
export const LOSS_MSE_BACKWARD: KernelSpec = mseBackwardSpec(true);

/** {@linkcode LOSS_MSE_BACKWARD} writing `dest` instead of adding into it. */
export const LOSS_MSE_BACKWARD_WRITE: KernelSpec = mseBackwardSpec(false);

/** The cross-entropy backward, adding into `dinp` or writing it (a gradient not written before, unzeroed). */
function scaleSavedSpec(accumulate: boolean): KernelSpec {
  return pointwiseKernel({
    name: accumulate ? "loss_scale_add" : "loss_scale_write",
    reads: ["saved", "dout"],
    writes: ["dinp"],
    uniforms: { n: "u32" },
    body: /* wgsl */ `dinp[i] ${accumulate ? "+=" : "="} dout[0] * saved[i];`,
  });
}

/** dinp[i] += dout[0] · saved[i], one invocation per element (the cross-entropy backward). */
export const LOSS_SCALE_ADD: KernelSpec = scaleSavedSpec(true);

/** {@linkcode LOSS_SCALE_ADD} writing `dinp` instead of adding into it. */
export const LOSS_SCALE_WRITE: KernelSpec = scaleSavedSpec(false);
