/**
 * softmax: over the last dim of a [rows, cols] view, forward (optionally with a temperature, optionally in
 * place) and backward. Built for wide rows (the vocabulary, V = 8000) as well as narrow ones.
 *
 * Parallelism: one workgroup per row (256 invocations for rows of 1024 or more, 64 below), grid folded
 * into 2-D past 65535 rows. Forward: a strided pass for the row max, a tree reduction in workgroup
 * memory, a pass for Σ exp((x − max)/τ), a reduction, and a pass writing exp((x − max)/τ)/Σ; each element
 * is read and written by the same invocation, so the in-place variant is safe. Backward:
 * dx += y∘(dy − Σ y∘dy) from the saved output y (nothing else is saved).
 *
 * Reference: tests/ref/softmax.ts (float64).
 *
 * @module
 */
import { defineKernel, type KernelSpec, kernelVariants } from "../src/gpu/kernel.ts";
import { maxInto, sumInto, treeReduceWgsl, workgroupEntry } from "./_wgsl.ts";
import { partialSumsWgsl } from "./_matmul_wgsl.ts";

/** Workgroup sizes of the softmax variants. */
export type SoftmaxWorkgroup = 64 | 256;

/**
 * The workgroup size the launchers pick for a row width.
 *
 * @example Usage
 * ```ts
 * import { softmaxWorkgroup } from "./softmax.ts";
 * console.log(softmaxWorkgroup(8000)); // 256
 * ```
 * @param cols Row width.
 * @returns 256 for rows of 1024 or more, else 64.
 */
export function softmaxWorkgroup(cols: number): SoftmaxWorkgroup {
  return cols >= 1024 ? 256 : 64;
}

/** A WGSL function `name(v, tid)` that reduces v over the workgroup (all invocations get the result). */
function workgroupReduceFn(
  name: string,
  combine: (...arrays: string[]) => (a: string, b: string) => string,
): string {
  return /* wgsl */ `
fn ${name}(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  ${treeReduceWgsl("WG", combine("red"), { lid: "tid" })}
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;
}

function reductions(wg: number): string {
  return /* wgsl */ `
const WG: u32 = ${wg}u;
var<workgroup> red: array<f32, WG>;
${workgroupReduceFn("reduce_max", maxInto)}${workgroupReduceFn("reduce_sum", sumInto)}`;
}

/** The forward kernel's variants (see {@linkcode softmaxForwardSpec}). */
export interface SoftmaxForwardVariant {
  /** Workgroup size. */
  workgroup: SoftmaxWorkgroup;
  /** `out` is read and written (no `inp`). */
  inPlace: boolean;
  /**
   * The logits are `params.splits` partial products in `part`, `params.part_stride` elements apart,
   * summed in split order (then `bias` added per column with `bias`), as `matmul_reduce` sums them: its
   * values to the bit without its pass. Not in place.
   */
  parts?: "plain" | "bias";
}

/**
 * The forward kernel: out = softmax(inp · inv_temp) over rows of `cols`; the in-place variant binds only
 * `out` (read and written); the `parts` variants read the logits as partial products (and a bias) instead
 * of `inp`, with the uniforms `splits` and `part_stride`. Grid: one workgroup per row, folded with
 * `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { softmaxForwardSpec } from "./softmax.ts";
 * console.log(softmaxForwardSpec({ workgroup: 256, inPlace: false }).reads); // ["inp"]
 * console.log(softmaxForwardSpec({ workgroup: 256, inPlace: false, parts: "bias" }).reads); // ["part", "bias"]
 * ```
 * @param options Workgroup size, whether the kernel works in place, and where the logits come from.
 * @returns The kernel spec (the same object for the same options).
 * @throws {TypeError} If partial products are asked of the in-place variant.
 */
export function softmaxForwardSpec(options: SoftmaxForwardVariant): KernelSpec {
  if (options.parts && options.inPlace) {
    throw new TypeError("Cannot build softmax_forward: partial products are read, not written in place");
  }
  return forwardVariants(options);
}

const forwardVariants = kernelVariants(
  ({ workgroup, inPlace, parts }: SoftmaxForwardVariant): KernelSpec => {
    const src = inPlace ? "out" : "inp";
    const name = parts
      ? `softmax_forward_parts${parts === "bias" ? "_bias" : ""}`
      : inPlace
      ? "softmax_forward_inplace"
      : "softmax_forward";
    // The logit at column c of the row: read, or summed from the partial products.
    const logit = (c: string) => parts ? `logit(base + ${c}, ${c})` : `${src}[base + ${c}]`;
    const logitFn = parts
      ? /* wgsl */ `
fn logit(i: u32, col: u32) -> f32 {
  var s = 0.0;
  ${partialSumsWgsl([{ name: "s", at: (k) => `part[i + (${k}) * params.part_stride]` }], "params.splits")}
  ${parts === "bias" ? "s += bias[col];" : ""}
  return s;
}
`
      : "";
    return defineKernel({
      name,
      reads: parts ? ["part", ...(parts === "bias" ? ["bias"] : [])] : inPlace ? [] : ["inp"],
      writes: ["out"],
      uniforms: {
        rows: "u32",
        cols: "u32",
        inv_temp: "f32",
        ...(parts ? { splits: "u32", part_stride: "u32" } : {}),
      },
      body: /* wgsl */ `
${reductions(workgroup)}${logitFn}
${workgroupEntry(name, "WG", "row", "params.rows")}
  let base = row * params.cols;
  let n = params.cols;
  var m = -3.402823e38;
  for (var c = lid; c < n; c += WG) { m = max(m, ${logit("c")}); }
  m = reduce_max(m, lid);
  var s = 0.0;
  for (var c = lid; c < n; c += WG) { s += exp((${logit("c")} - m) * params.inv_temp); }
  s = reduce_sum(s, lid);
  for (var c = lid; c < n; c += WG) { out[base + c] = exp((${logit("c")} - m) * params.inv_temp) / s; }
}
`,
    });
  },
  ({ workgroup, inPlace, parts }) => `${workgroup}|${inPlace}|${parts ?? ""}`,
);

/**
 * The backward kernel: dx += y∘(dy − Σ y∘dy) over rows of `cols`. Grid: one workgroup per row, folded
 * with `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { softmaxBackwardSpec } from "./softmax.ts";
 * console.log(softmaxBackwardSpec(64).writes); // ["dx"]
 * ```
 * @param workgroup Workgroup size.
 * @returns The kernel spec (the same object for the same size).
 */
export function softmaxBackwardSpec(workgroup: SoftmaxWorkgroup): KernelSpec {
  return backwardVariants(workgroup);
}

const backwardVariants = kernelVariants((workgroup: SoftmaxWorkgroup): KernelSpec =>
  defineKernel({
    name: "softmax_backward",
    reads: ["y", "dy"],
    writes: ["dx"],
    uniforms: { rows: "u32", cols: "u32" },
    body: /* wgsl */ `
${reductions(workgroup)}
${workgroupEntry("softmax_backward", "WG", "row", "params.rows")}
  let base = row * params.cols;
  let n = params.cols;
  var s = 0.0;
  for (var c = lid; c < n; c += WG) { s += y[base + c] * dy[base + c]; }
  s = reduce_sum(s, lid);
  for (var c = lid; c < n; c += WG) { dx[base + c] += y[base + c] * (dy[base + c] - s); }
}
`,
  })
);
