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

/**
 * The forward kernel: out = softmax(inp · inv_temp) over rows of `cols`; the in-place variant binds only
 * `out` (read and written). Grid: one workgroup per row, folded with `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { softmaxForwardSpec } from "./softmax.ts";
 * console.log(softmaxForwardSpec({ workgroup: 256, inPlace: false }).reads); // ["inp"]
 * ```
 * @param options Workgroup size and whether the kernel works in place.
 * @returns The kernel spec (the same object for the same options).
 */
export function softmaxForwardSpec(options: { workgroup: SoftmaxWorkgroup; inPlace: boolean }): KernelSpec {
  return forwardVariants(options);
}

const forwardVariants = kernelVariants(
  ({ workgroup, inPlace }: { workgroup: SoftmaxWorkgroup; inPlace: boolean }): KernelSpec => {
    const src = inPlace ? "out" : "inp";
    const name = inPlace ? "softmax_forward_inplace" : "softmax_forward";
    return defineKernel({
      name,
      reads: inPlace ? [] : ["inp"],
      writes: ["out"],
      uniforms: { rows: "u32", cols: "u32", inv_temp: "f32" },
      body: /* wgsl */ `
${reductions(workgroup)}
${workgroupEntry(name, "WG", "row", "params.rows")}
  let base = row * params.cols;
  let n = params.cols;
  var m = -3.402823e38;
  for (var c = lid; c < n; c += WG) { m = max(m, ${src}[base + c]); }
  m = reduce_max(m, lid);
  var s = 0.0;
  for (var c = lid; c < n; c += WG) { s += exp((${src}[base + c] - m) * params.inv_temp); }
  s = reduce_sum(s, lid);
  for (var c = lid; c < n; c += WG) { out[base + c] = exp((${src}[base + c] - m) * params.inv_temp) / s; }
}
`,
    });
  },
  ({ workgroup, inPlace }) => `${workgroup}|${inPlace}`,
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
