/**
 * elementwise: the small memory-bound kernels around the model's big ones, forward and backward —
 * broadcast add/mul, scaling and mixing (the diffusion forward process), masked fill, column copies
 * (concat/split along the last dimension), deterministic reductions to a scalar, column sums over rows
 * (gradients of broadcast operands) and argmax over the last dimension.
 *
 * Parallelism
 * - Pointwise kernels: one invocation per element, 256 per workgroup, the grid folded into 2-D past
 *   65535 workgroups (index `gid.x + gid.y · num_workgroups.x · 256`). Variants marked `accumulate`
 *   add into `out` (backward) instead of overwriting it (forward).
 * - `elementwise_reduce`: each workgroup sums a block of 4096 elements (16 per invocation, strided so
 *   loads coalesce, then a shared-memory tree) into one partial; the launcher reduces the partials
 *   again until one value remains. Fixed order everywhere: bitwise reproducible, no atomics.
 * - `elementwise_sum_rows`: column sums of a [rows, cols] array over segments of rows; workgroups of
 *   64 columns × 4 row lanes, lanes combined in a fixed order; a second dispatch sums the segments.
 * - `elementwise_argmax`: one workgroup of 256 per row; ties resolve to the lowest index (as PyTorch).
 * Nothing is saved for backward beyond the inputs. Reference: tests/ref/elementwise.ts (float64).
 *
 * @module
 */
import { defineKernel, type KernelSpec, kernelVariants, type UniformType } from "../src/gpu/kernel.ts";
import { columnSegmentSums, pointwiseKernel, sumInto, treeReduceWgsl, workgroupEntry } from "./_wgsl.ts";

/** Whether a kernel adds into its output (backward) or overwrites it (forward). */
export interface AccumulateVariant {
  /** Add (+=) into the output instead of overwriting it. */
  readonly accumulate: boolean;
}

function store(accumulate: boolean, target: string, value: string): string {
  return accumulate ? `${target} += ${value};` : `${target} = ${value};`;
}

/**
 * `out[i] (+)= a[i] op b[i mod nb]` for n elements: b repeats over a's leading dimensions.
 *
 * @example Usage
 * ```ts
 * import { binarySpec } from "./elementwise.ts";
 * console.log(binarySpec({ op: "mul", accumulate: true }).name); // "elementwise_mul"
 * ```
 * @param variant The operation and whether to accumulate.
 * @returns The kernel spec (reads a, b; writes out; uniforms n, nb).
 */
export function binarySpec(variant: { readonly op: "add" | "mul" } & AccumulateVariant): KernelSpec {
  return binaryVariants(variant);
}

const binaryVariants = kernelVariants(buildBinary);

function buildBinary(variant: { readonly op: "add" | "mul" } & AccumulateVariant): KernelSpec {
  const name = `elementwise_${variant.op}`;
  const symbol = variant.op === "add" ? "+" : "*";
  return pointwiseKernel({
    name,
    reads: ["a", "b"],
    writes: ["out"],
    uniforms: { n: "u32", nb: "u32" },
    body: store(variant.accumulate, "out[i]", `a[i] ${symbol} b[i % params.nb]`),
  });
}

/**
 * `out[i] (+)= factor · inp[i]` for n elements.
 *
 * @example Usage
 * ```ts
 * import { scaleSpec } from "./elementwise.ts";
 * console.log(scaleSpec({ accumulate: false }).uniforms); // { n: "u32", factor: "f32" }
 * ```
 * @param variant Whether to accumulate.
 * @returns The kernel spec (reads inp; writes out; uniforms n, factor).
 */
export function scaleSpec(variant: AccumulateVariant): KernelSpec {
  return scaleVariants(variant);
}

const scaleVariants = kernelVariants(buildScale);

function buildScale(variant: AccumulateVariant): KernelSpec {
  return pointwiseKernel({
    name: "elementwise_scale",
    reads: ["inp"],
    writes: ["out"],
    uniforms: { n: "u32", factor: "f32" },
    body: store(variant.accumulate, "out[i]", "params.factor * inp[i]"),
  });
}

/** `out[i] = alpha·a[i] + beta·b[i]` for n elements. */
export const ELEMENTWISE_AXPBY: KernelSpec = pointwiseKernel({
  name: "elementwise_axpby",
  reads: ["a", "b"],
  writes: ["out"],
  uniforms: { n: "u32", alpha: "f32", beta: "f32" },
  body: /* wgsl */ `out[i] = params.alpha * a[i] + params.beta * b[i];`,
});

/** `out[i] = alpha[r]·a[i] + beta[r]·b[i]` with r = i / row_size: per-row (per batch element) factors. */
export const ELEMENTWISE_MIX_ROWS: KernelSpec = pointwiseKernel({
  name: "elementwise_mix_rows",
  reads: ["a", "b", "alpha", "beta"],
  writes: ["out"],
  uniforms: { n: "u32", row_size: "u32" },
  body: /* wgsl */ `let r = i / params.row_size;
  out[i] = alpha[r] * a[i] + beta[r] * b[i];`,
});

/** `out[i] += factor[r]·inp[i]` with r = i / row_size (the backward of mix_rows). */
export const ELEMENTWISE_SCALE_ROWS: KernelSpec = pointwiseKernel({
  name: "elementwise_scale_rows",
  reads: ["inp", "factor"],
  writes: ["out"],
  uniforms: { n: "u32", row_size: "u32" },
  body: /* wgsl */ `out[i] += factor[i / params.row_size] * inp[i];`,
});

/**
 * `out[i] (+)= hit ? value : inp[i]`, where hit = (mask[i / cols] ≠ 0) xor (invert ≠ 0): whole rows
 * of `cols` elements are replaced. The backward is the accumulate variant with value 0 and inp = dout.
 * The mask is read as 32-bit words, so u32 and i32 masks both work.
 *
 * @example Usage
 * ```ts
 * import { maskedFillSpec } from "./elementwise.ts";
 * console.log(maskedFillSpec({ accumulate: false }).reads); // ["inp", "mask"]
 * ```
 * @param variant Whether to accumulate.
 * @returns The kernel spec (reads inp, mask; writes out; uniforms n, cols, value, invert).
 */
export function maskedFillSpec(variant: AccumulateVariant): KernelSpec {
  return maskedFillVariants(variant);
}

const maskedFillVariants = kernelVariants(buildMaskedFill);

function buildMaskedFill(variant: AccumulateVariant): KernelSpec {
  return pointwiseKernel({
    name: "elementwise_masked_fill",
    reads: ["inp", "mask"],
    writes: ["out"],
    uniforms: { n: "u32", cols: "u32", value: "f32", invert: "u32" },
    elements: { mask: "u32" },
    body: /* wgsl */ `let hit = (mask[i / params.cols] != 0u) != (params.invert != 0u);
  ${store(variant.accumulate, "out[i]", "select(inp[i], params.value, hit)")}`,
  });
}

/**
 * `dst[r·dst_stride + dst_off + j] (+)= src[r·src_stride + src_off + j]` for r < rows, j < cols: one
 * block of columns of a row-major matrix into another (concat, split and their backward).
 *
 * @example Usage
 * ```ts
 * import { copyColsSpec } from "./elementwise.ts";
 * console.log(copyColsSpec({ accumulate: true }).writes); // ["dst"]
 * ```
 * @param variant Whether to accumulate.
 * @returns The kernel spec (reads src; writes dst).
 */
export function copyColsSpec(variant: AccumulateVariant): KernelSpec {
  return copyColsVariants(variant);
}

const copyColsVariants = kernelVariants(buildCopyCols);

function buildCopyCols(variant: AccumulateVariant): KernelSpec {
  return pointwiseKernel({
    name: "elementwise_copy_cols",
    reads: ["src"],
    writes: ["dst"],
    uniforms: {
      rows: "u32",
      cols: "u32",
      src_stride: "u32",
      src_off: "u32",
      dst_stride: "u32",
      dst_off: "u32",
    },
    count: "params.rows * params.cols",
    body: /* wgsl */ `let r = i / params.cols;
  let j = i - r * params.cols;
  ${
      store(
        variant.accumulate,
        "dst[r * params.dst_stride + params.dst_off + j]",
        "src[r * params.src_stride + params.src_off + j]",
      )
    }`,
  });
}

/** Inputs one `elementwise_concat` dispatch reads; a longer concat takes one dispatch per group. */
export const CONCAT_MAX_INPUTS = 4;

/**
 * `out[r·dst_stride + dst_off + j] = in_k[r·w_k + j − o_k]` for r < rows, j < cols, where input k
 * covers columns o_k = w_0 + … + w_(k−1) up to o_k + w_k and cols = Σ w_k: up to
 * {@linkcode CONCAT_MAX_INPUTS} row-major inputs side by side in one pass (the forward of concat).
 *
 * @example Usage
 * ```ts
 * import { concatSpec } from "./elementwise.ts";
 * console.log(concatSpec(3).reads); // ["in0", "in1", "in2"]
 * ```
 * @param inputs How many inputs, 1 to {@linkcode CONCAT_MAX_INPUTS}.
 * @returns The kernel spec (reads in0 …; writes out).
 */
export function concatSpec(inputs: number): KernelSpec {
  return concatVariants(inputs);
}

const concatVariants = kernelVariants(buildConcat);

function buildConcat(inputs: number): KernelSpec {
  if (!Number.isInteger(inputs) || inputs < 1 || inputs > CONCAT_MAX_INPUTS) {
    throw new RangeError(`Cannot build concat kernel: ${inputs} inputs, expected 1 to ${CONCAT_MAX_INPUTS}`);
  }
  const ks = [...Array(inputs).keys()];
  const uniforms: Record<string, UniformType> = {
    rows: "u32",
    cols: "u32",
    dst_stride: "u32",
    dst_off: "u32",
  };
  for (const k of ks) uniforms[`w${k}`] = "u32";
  // Each input's branch: columns below its end come from it (the earlier branches took those before).
  const branches = ks.map((k) => {
    const start = ks.slice(0, k).map((m) => `params.w${m}`).join(" + ") || "0u";
    const read = `in${k}[r * params.w${k} + j - (${start})]`;
    return k === inputs - 1 ? `{ v = ${read}; }` : `if (j < ${start} + params.w${k}) { v = ${read}; }`;
  });
  return pointwiseKernel({
    name: `elementwise_concat${inputs}`,
    reads: ks.map((k) => `in${k}`),
    writes: ["out"],
    uniforms,
    count: "params.rows * params.cols",
    body: /* wgsl */ `let r = i / params.cols;
  let j = i - r * params.cols;
  var v: f32;
  ${branches.join(" else ")}
  out[r * params.dst_stride + params.dst_off + j] = v;`,
  });
}

/**
 * Column sums over segments of rows: `out[s·cols + c] (+)= Σ_{r in segment s} inp[r·cols + c]`
 * (times `other[r·cols + c]` in the product variant), segment s covering rows s·seg_rows …
 * (s+1)·seg_rows − 1 clipped at `rows`. Grid: [⌈cols/64⌉, segments].
 *
 * @example Usage
 * ```ts
 * import { sumRowsSpec } from "./elementwise.ts";
 * console.log(sumRowsSpec({ product: true, accumulate: false }).reads); // ["inp", "other"]
 * ```
 * @param variant Whether each term is a product with `other`, and whether to accumulate.
 * @returns The kernel spec (uniforms rows, cols, seg_rows).
 */
export function sumRowsSpec(variant: { readonly product: boolean } & AccumulateVariant): KernelSpec {
  return sumRowsVariants(variant);
}

const sumRowsVariants = kernelVariants(buildSumRows);

function buildSumRows(variant: { readonly product: boolean } & AccumulateVariant): KernelSpec {
  return defineKernel({
    name: "elementwise_sum_rows",
    reads: ["inp", ...(variant.product ? ["other"] : [])],
    writes: ["out"],
    uniforms: { rows: "u32", cols: "u32", seg_rows: "u32" },
    body: columnSegmentSums(
      "elementwise_sum_rows",
      ["s"],
      `let k = row * params.cols + col;
      s += inp[k]${variant.product ? " * other[k]" : ""};`,
      store(variant.accumulate, "out[seg * params.cols + col]", "s_total"),
    ),
  });
}

/** Elements each workgroup of `elementwise_reduce` sums (256 invocations × 16). */
export const REDUCE_BLOCK = 4096;

/**
 * One pass of the scalar reduction: workgroup w sums elements w·4096 … w·4096 + 4095 of `inp`
 * (squared in the `square` variant) and writes `out[out_off + w] = total·scale`, square-rooted when
 * `root` ≠ 0. Intermediate passes use scale 1 and root 0.
 *
 * @example Usage
 * ```ts
 * import { reduceSpec } from "./elementwise.ts";
 * console.log(reduceSpec({ square: true }).uniforms); // { n: "u32", out_off: "u32", scale: "f32", root: "u32" }
 * ```
 * @param variant Whether elements are squared before summing.
 * @returns The kernel spec (reads inp; writes out).
 */
export function reduceSpec(variant: { readonly square: boolean }): KernelSpec {
  return reduceVariants(variant);
}

const reduceVariants = kernelVariants(buildReduce);

function buildReduce(variant: { readonly square: boolean }): KernelSpec {
  return defineKernel({
    name: "elementwise_reduce",
    reads: ["inp"],
    writes: ["out"],
    uniforms: { n: "u32", out_off: "u32", scale: "f32", root: "u32" },
    body: /* wgsl */ `
var<workgroup> partial: array<f32, 256>;

${workgroupEntry("elementwise_reduce", "256", "block")}
  let start = block * ${REDUCE_BLOCK}u;
  var s = 0.0;
  for (var k = 0u; k < 16u; k++) {
    let i = start + k * 256u + lid;
    if (i < params.n) {
      let v = inp[i];
      s += ${variant.square ? "v * v" : "v"};
    }
  }
  partial[lid] = s;
  workgroupBarrier();
  ${treeReduceWgsl("256u", sumInto("partial"))}
  // Workgroups past the last block (a folded grid rounds up) write nothing.
  if (lid == 0u && start < params.n) {
    var total = partial[0] * params.scale;
    if (params.root != 0u) { total = sqrt(total); }
    out[params.out_off + block] = total;
  }
}
`,
  });
}

/**
 * Backward of the scalar reductions, accumulating into `dinp` (n elements) from the scalar `dout[0]`:
 * `sum` adds dout·scale (sum: scale 1, mean: 1/n); `square` adds dout·scale·inp (sumOfSquares:
 * scale 2); `norm` adds dout·inp/total (l2Norm, 0 where the norm is 0).
 *
 * @example Usage
 * ```ts
 * import { reduceBackwardSpec } from "./elementwise.ts";
 * console.log(reduceBackwardSpec({ mode: "norm" }).reads); // ["inp", "dout", "total"]
 * ```
 * @param variant Which reduction is differentiated.
 * @returns The kernel spec (uniforms n, scale).
 */
export function reduceBackwardSpec(variant: { readonly mode: "sum" | "square" | "norm" }): KernelSpec {
  return reduceBackwardVariants(variant);
}

const reduceBackwardVariants = kernelVariants(buildReduceBackward);

function buildReduceBackward(variant: { readonly mode: "sum" | "square" | "norm" }): KernelSpec {
  const reads = variant.mode === "sum"
    ? ["dout"]
    : variant.mode === "square"
    ? ["inp", "dout"]
    : ["inp", "dout", "total"];
  const term = variant.mode === "sum"
    ? "dout[0] * params.scale"
    : variant.mode === "square"
    ? "dout[0] * params.scale * inp[i]"
    : "select(0.0, dout[0] * inp[i] / total[0], total[0] > 0.0)";
  return pointwiseKernel({
    name: "elementwise_reduce_backward",
    reads,
    writes: ["dinp"],
    uniforms: { n: "u32", scale: "f32" },
    body: /* wgsl */ `dinp[i] += ${term};
  ${variant.mode === "norm" ? "_ = params.scale;" : ""}`,
  });
}

/** `out[r]` = index of the largest of `inp[r·cols …]`, lowest index on ties; one workgroup per row. */
export const ELEMENTWISE_ARGMAX: KernelSpec = defineKernel({
  name: "elementwise_argmax",
  reads: ["inp"],
  writes: ["out"],
  uniforms: { rows: "u32", cols: "u32" },
  elements: { out: "i32" },
  body: /* wgsl */ `
var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

const NONE = 0xffffffffu;

// Whether candidate (vb, ib) beats (va, ia): larger value, or equal value at a lower index.
fn beats(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  return ib != NONE && (ia == NONE || vb > va || (vb == va && ib < ia));
}

${workgroupEntry("elementwise_argmax", "256", "row", "params.rows")}
  let base = row * params.cols;
  var v = 0.0;
  var idx = NONE;
  // Columns ascend within an invocation, so a strict > keeps the first of equal values.
  for (var c = lid; c < params.cols; c += 256u) {
    let x = inp[base + c];
    if (idx == NONE || x > v) {
      v = x;
      idx = c;
    }
  }
  best_v[lid] = v;
  best_i[lid] = idx;
  workgroupBarrier();
  ${
    treeReduceWgsl("256u", (a, b) =>
      `if (beats(best_v[${a}], best_i[${a}], best_v[${b}], best_i[${b}])) {
      best_v[${a}] = best_v[${b}];
      best_i[${a}] = best_i[${b}];
    }`)
  }
  if (lid == 0u) { out[row] = i32(best_i[0]); }
}
`,
});
