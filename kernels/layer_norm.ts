/**
 * layer_norm: LayerNorm over the last dimension of a row-major [rows, cols] tensor, with an optional
 * per-column scale and shift that may also vary per group of rows. The same kernels serve the plain
 * affine LayerNorm (weight and bias shared by every row) and the encoder's LayerNorm fused with FiLM,
 * γ[b]·LN(x[b,l]) + β[b], where γ and β are D-wide slices of the time-MLP output `film` [B, S·D]:
 * a weight index is `(row / group_rows)·w_stride + w_off + col`, so affine uses w_stride = 0 and FiLM
 * uses group_rows = L, w_stride = S·D, w_off = slice·D.
 *
 * Kernels
 * - `layer_norm_forward`: one workgroup per row. Each invocation runs Welford over its strided columns;
 *   the workgroup merges the (count, mean, M2) triples in a fixed tree (Chan et al.), so the variance
 *   never subtracts two large sums. Writes out, and saves mean and rstd = 1/√(var + eps) per row. The
 *   `residual` variant first adds a product left split over K into its input, in place (inference: the
 *   residual stream's projections at few rows, whose reduction pass this saves).
 * - `layer_norm_backward`: one workgroup per row; dinp += rstd·(g − mean(g) − x̂·mean(g·x̂)) with
 *   g = dout·weight, the two means from one tree reduction.
 * - `layer_norm_backward_params`: Σ dout·x̂ and Σ dout over segments of `seg_rows` consecutive rows, per
 *   column; workgroups of 64 columns × 4 row lanes, lanes combined in a fixed order. For FiLM a segment
 *   is one batch element (its L rows) and the sums go (+=) straight into the film gradient at the γ
 *   and β slices; for affine they are per-segment partials that `layer_norm_reduce_partials` sums.
 * - `layer_norm_reduce_partials`: dst[c] += Σ_s partial[src_off + s·cols + c], in segment order.
 * Every reduction has a fixed order: results are bitwise reproducible, and no atomics are used.
 * Saved for backward: mean and rstd [rows]. Reference: tests/ref/layer_norm.ts (float64).
 *
 * @module
 */
import { defineKernel, type KernelSpec, kernelVariants, type UniformType } from "../src/gpu/kernel.ts";
import { columnSegmentSums, sumInto, treeReduceWgsl, workgroupEntry } from "./_wgsl.ts";
import { partialSumsWgsl } from "./matmul.ts";

/** Options that change the WGSL text of the row kernels. */
export interface LayerNormVariant {
  /** Whether a scale (`weight`) is read: affine weight, or FiLM γ. */
  readonly weight: boolean;
  /** Whether a shift (`bias`) is read (forward only): affine bias, or FiLM β. */
  readonly bias?: boolean;
  /**
   * Invocations per workgroup (one workgroup per row), a power of two from 32 to 256.
   * @default {128}
   */
  readonly wg?: number;
  /**
   * Forward only: first add a split-K product into the input in place, `inp += Σ_s part[s] (+ rbias)`
   * (the partial sums in split order, then the bias, as `matmul_reduce` adds them), then normalise the
   * sum. `part` is [splits, rows, cols]; `inp` moves to the written buffers.
   */
  readonly residual?: boolean;
  /** With `residual`: the product's bias `rbias` [cols] is added to the partial sums. */
  readonly residualBias?: boolean;
  /**
   * Forward only: build the kernel for exactly this many columns (the `cols` uniform must match), at
   * most 32 per invocation. Each invocation's columns are then unrolled, so all of its loads are in flight
   * together and its values stay in registers for the second pass; the sums are the same, in the same
   * order. Without it a loop over the columns issues each column's loads only after the previous
   * column's update (about 4 round trips to memory per row at 512 columns, more with partial sums).
   */
  readonly cols?: number;
}

/**
 * The workgroup size the launchers use for rows of `cols` columns: 64 up to 64 columns (the
 * embedding LayerNorm), 128 beyond (the model's 512).
 *
 * @example Usage
 * ```ts
 * import { layerNormWorkgroupSize } from "./layer_norm.ts";
 * console.log(layerNormWorkgroupSize(512)); // 128
 * ```
 * @param cols Columns per row.
 * @returns Invocations per workgroup.
 */
export function layerNormWorkgroupSize(cols: number): number {
  return cols <= 64 ? 64 : 128;
}

function checkWg(wg: number): number {
  if (![32, 64, 128, 256].includes(wg)) {
    throw new RangeError(`Cannot build layer_norm kernel: wg is ${wg}, expected 32, 64, 128 or 256`);
  }
  return wg;
}

/**
 * The forward kernel for one variant: reads `inp` [rows, cols] (and `weight`, `bias` when present),
 * writes `out` [rows, cols], `mean` and `rstd` [rows].
 *
 * @example Usage
 * ```ts
 * import { layerNormForwardSpec } from "./layer_norm.ts";
 * const spec = layerNormForwardSpec({ weight: true, bias: true });
 * console.log(spec.reads); // ["inp", "weight", "bias"]
 * ```
 * @param variant Which of weight and bias are read, and the workgroup size.
 * @returns The kernel spec.
 */
export function layerNormForwardSpec(variant: LayerNormVariant): KernelSpec {
  return forwardVariants(variant);
}

// The key holds what the text depends on, as buildForward reads it (absent = false; the residual's
// bias only with the residual), so equal kernels share one entry.
const forwardVariants = kernelVariants(buildForward, (variant: LayerNormVariant) => {
  const residual = !!variant.residual;
  return `${!!variant.weight}|${!!variant.bias}|${variant.wg ?? 128}|${residual}|${
    residual && !!variant.residualBias
  }|${variant.cols ?? 0}`;
});

/** Folds the Welford triple (count, mean, M2) at `b` into the one at `a` (Chan et al.). */
function welfordMerge(a: string, b: string): string {
  return `let nb = s_n[${b}];
    if (nb > 0.0) {
      let na = s_n[${a}];
      let nn = na + nb;
      let d = s_mean[${b}] - s_mean[${a}];
      s_mean[${a}] += d * (nb / nn);
      s_m2[${a}] += s_m2[${b}] + d * d * (na * nb / nn);
      s_n[${a}] = nn;
    }`;
}

function buildForward(variant: LayerNormVariant): KernelSpec {
  const wg = checkWg(variant.wg ?? 128);
  const fixed = variant.cols;
  if (fixed !== undefined && !(Number.isInteger(fixed) && fixed >= 1 && fixed <= 32 * wg)) {
    throw new RangeError(`Cannot build layer_norm_forward for ${fixed} columns: expected 1 to ${32 * wg}`);
  }
  const residual = !!variant.residual, residualBias = residual && !!variant.residualBias;
  const reads = [
    ...(residual ? ["part", ...(residualBias ? ["rbias"] : [])] : ["inp"]),
    ...(variant.weight ? ["weight"] : []),
    ...(variant.bias ? ["bias"] : []),
  ];
  const writes = [...(residual ? ["inp"] : []), "out", "mean", "rstd"];
  const uniforms: Record<string, UniformType> = {
    rows: "u32",
    cols: "u32",
    eps: "f32",
    group_rows: "u32",
    w_stride: "u32",
    w_off: "u32",
    b_stride: "u32",
    b_off: "u32",
    ...(residual ? { splits: "u32", part_stride: "u32" } : {}),
  };
  // The input value of column `c` into `x`: with `residual`, the product's partial sums and bias added in
  // first (four loads in flight before their adds, which stay in split order).
  const load = (c: string, x: string) =>
    residual
      ? `var s = 0.0;
    ${
        partialSumsWgsl(
          [{
            name: "s",
            at: (k) => `part[(${k}) * params.part_stride + base + ${c}]`,
          }],
          "params.splits",
          "    ",
        )
      }
    ${residualBias ? `s += rbias[${c}];` : ""}
    ${x} = inp[base + ${c}] + s;
    inp[base + ${c}] = ${x};`
      : `${x} = inp[base + ${c}];`;
  const welford = (x: string) =>
    `n += 1.0;
    let d = ${x} - m;
    m += d / n;
    m2 += d * (${x} - m);`;
  const normalize = (c: string, x: string) =>
    `var y = (${x} - mu) * rs;
    ${variant.weight ? `y = y * weight[wbase + ${c}];` : "_ = wbase;"}
    ${variant.bias ? `y = y + bias[bbase + ${c}];` : "_ = bbase;"}
    out[base + ${c}] = y;`;
  // Columns lid, lid + WG, ...: a loop, or (fixed column count) one block per column, loads first.
  let gather: string, scatter: string;
  if (fixed === undefined) {
    gather = `for (var c = lid; c < cols; c += WG) {
    var x: f32;
    ${load("c", "x")}
    ${welford("x")}
  }`;
    scatter = `for (var c = lid; c < cols; c += WG) {
    let x = inp[base + c];
    ${normalize("c", "x")}
  }`;
  } else {
    const per = Math.ceil(fixed / wg);
    const us = [...Array(per).keys()];
    const all = (u: number) => (u + 1) * wg <= fixed; // every invocation has column u
    const guard = (u: number, body: string) =>
      all(u) ? `{\n    ${body}\n  }` : `if (c${u} < ${fixed}u) {\n    ${body}\n  }`;
    // Loads read column min(c, cols − 1), so a missing last column reads a valid one and is ignored.
    const lines = us.map((u) =>
      `let c${u} = lid + ${u * wg}u;\n  let r${u} = ${all(u) ? `c${u}` : `min(c${u}, ${fixed - 1}u)`};`
    );
    if (residual) {
      // Every column's partials in one loop: all in flight together, each column's sum in split order.
      lines.push(
        us.map((u) => `var s${u} = 0.0;`).join(" "),
        partialSumsWgsl(
          us.map((u) => ({
            name: `s${u}`,
            at: (k: string) => `part[(${k}) * params.part_stride + base + r${u}]`,
          })),
          "params.splits",
        ),
        ...us.map((u) =>
          `${residualBias ? `s${u} += rbias[r${u}];\n  ` : ""}let x${u} = inp[base + r${u}] + s${u};\n  ${
            guard(u, `inp[base + c${u}] = x${u};`)
          }`
        ),
      );
    } else {
      lines.push(...us.map((u) => `let x${u} = inp[base + r${u}];`));
    }
    lines.push(...us.map((u) => guard(u, welford(`x${u}`))));
    gather = `_ = cols;\n  ${lines.join("\n  ")}`;
    scatter = us.map((u) => guard(u, normalize(`c${u}`, `x${u}`))).join("\n  ");
  }
  return defineKernel({
    name: "layer_norm_forward",
    reads,
    writes,
    uniforms,
    body: /* wgsl */ `
const WG = ${wg}u;
var<workgroup> s_n: array<f32, WG>;
var<workgroup> s_mean: array<f32, WG>;
var<workgroup> s_m2: array<f32, WG>;

${workgroupEntry("layer_norm_forward", "WG", "row", "params.rows")}
  let cols = params.cols;
  let base = row * cols;
  // Welford over this invocation's columns lid, lid + WG, ...
  var n = 0.0;
  var m = 0.0;
  var m2 = 0.0;
  ${gather}
  s_n[lid] = n;
  s_mean[lid] = m;
  s_m2[lid] = m2;
  workgroupBarrier();
  // Merge pairs (Chan et al.); invocations holding columns form a prefix, so a partner with data
  // always meets an invocation with data.
  ${treeReduceWgsl("WG", welfordMerge)}
  let mu = s_mean[0];
  let rs = inverseSqrt(s_m2[0] / f32(cols) + params.eps);
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = rs;
  }
  let group = row / params.group_rows;
  let wbase = group * params.w_stride + params.w_off;
  let bbase = group * params.b_stride + params.b_off;
  ${scatter}
}
`,
  });
}

/**
 * The input-gradient kernel for one variant: reads `inp`, `dout` [rows, cols], the saved `mean`,
 * `rstd` [rows] (and `weight` when present), accumulates (+=) into `dinp` [rows, cols].
 *
 * @example Usage
 * ```ts
 * import { layerNormBackwardSpec } from "./layer_norm.ts";
 * console.log(layerNormBackwardSpec({ weight: false }).reads); // ["inp", "dout", "mean", "rstd"]
 * ```
 * @param variant Whether a weight is read, and the workgroup size.
 * @returns The kernel spec.
 */
export function layerNormBackwardSpec(variant: LayerNormVariant): KernelSpec {
  return backwardVariants(variant);
}

const backwardVariants = kernelVariants(
  buildBackward,
  (variant: LayerNormVariant) => `${!!variant.weight}|${variant.wg ?? 128}`,
);

function buildBackward(variant: LayerNormVariant): KernelSpec {
  const wg = checkWg(variant.wg ?? 128);
  const reads = ["inp", "dout", "mean", "rstd", ...(variant.weight ? ["weight"] : [])];
  return defineKernel({
    name: "layer_norm_backward",
    reads,
    writes: ["dinp"],
    uniforms: { rows: "u32", cols: "u32", group_rows: "u32", w_stride: "u32", w_off: "u32" },
    body: /* wgsl */ `
const WG = ${wg}u;
var<workgroup> s_g: array<f32, WG>;
var<workgroup> s_gx: array<f32, WG>;

${workgroupEntry("layer_norm_backward", "WG", "row", "params.rows")}
  let cols = params.cols;
  let base = row * cols;
  let mu = mean[row];
  let rs = rstd[row];
  let wbase = (row / params.group_rows) * params.w_stride + params.w_off;
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = lid; c < cols; c += WG) {
    let g = dout[base + c]${variant.weight ? " * weight[wbase + c]" : ""};
    sg += g;
    sgx += g * (inp[base + c] - mu) * rs;
  }
  s_g[lid] = sg;
  s_gx[lid] = sgx;
  workgroupBarrier();
  ${treeReduceWgsl("WG", sumInto("s_g", "s_gx"))}
  let mg = s_g[0] / f32(cols);
  let mgx = s_gx[0] / f32(cols);
  for (var c = lid; c < cols; c += WG) {
    let g = dout[base + c]${variant.weight ? " * weight[wbase + c]" : ""};
    let xh = (inp[base + c] - mu) * rs;
    dinp[base + c] += rs * (g - mg - xh * mgx);
  }
  ${variant.weight ? "" : "_ = wbase;"}
}
`,
  });
}

/**
 * Σ dout·x̂ and Σ dout per column over segments of `seg_rows` rows (segment s covers rows
 * s·seg_rows … (s+1)·seg_rows − 1, clipped at `rows`), written or added to
 * `dparams[s·seg_stride + gamma_off + col]` and `dparams[s·seg_stride + beta_off + col]`.
 * Grid: [⌈cols/64⌉, segments]. `accumulate` = 1 adds, 0 overwrites.
 */
export const LAYER_NORM_BACKWARD_PARAMS: KernelSpec = defineKernel({
  name: "layer_norm_backward_params",
  reads: ["inp", "dout", "mean", "rstd"],
  writes: ["dparams"],
  uniforms: {
    rows: "u32",
    cols: "u32",
    seg_rows: "u32",
    seg_stride: "u32",
    gamma_off: "u32",
    beta_off: "u32",
    accumulate: "u32",
  },
  body: columnSegmentSums(
    "layer_norm_backward_params",
    ["sg", "sb"],
    `let d = dout[row * params.cols + col];
      sg += d * (inp[row * params.cols + col] - mean[row]) * rstd[row];
      sb += d;`,
    `let gi = seg * params.seg_stride + params.gamma_off + col;
    let bi = seg * params.seg_stride + params.beta_off + col;
    if (params.accumulate != 0u) {
      dparams[gi] += sg_total;
      dparams[bi] += sb_total;
    } else {
      dparams[gi] = sg_total;
      dparams[bi] = sb_total;
    }`,
  ),
});

/** dst[c] += Σ_{s < segs} partial[src_off + s·cols + c], summed in segment order; one invocation per column. */
export const LAYER_NORM_REDUCE_PARTIALS: KernelSpec = defineKernel({
  name: "layer_norm_reduce_partials",
  reads: ["partial"],
  writes: ["dst"],
  uniforms: { segs: "u32", cols: "u32", src_off: "u32" },
  body: /* wgsl */ `
@compute @workgroup_size(64)
fn layer_norm_reduce_partials(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= params.cols) { return; }
  var s = 0.0;
  for (var k = 0u; k < params.segs; k++) {
    s += partial[params.src_off + k * params.cols + c];
  }
  dst[c] += s;
}
`,
});
