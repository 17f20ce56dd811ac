/**
 * WGSL shared by the kernel families: pointwise kernels ({@linkcode pointwiseKernel}), the opening of a
 * kernel with one workgroup per row, tile or block ({@linkcode workgroupEntry}), column sums over row
 * segments ({@linkcode columnSegmentSums}), and the workgroup tree reduction. Every family builds its
 * reductions from {@linkcode treeReduceWgsl}, so they add (or take the maximum) in one fixed order:
 * stride halves from half the width down to 1, invocation i combining i + stride into itself, a
 * barrier after each level.
 *
 * @module
 */
import { defineKernel, type KernelDefinition, type KernelSpec } from "../src/gpu/kernel.ts";

/** The arguments of a pointwise entry point: `gid` and `groups` for {@linkcode POINTWISE_INDEX}. */
export const POINTWISE_ARGS =
  "@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u";

/** The element index `i` of a 256-wide workgroup in a grid folded into 2-D past 65535 workgroups. */
export const POINTWISE_INDEX = "let i = gid.x + gid.y * groups.x * 256u;";

/**
 * The workgroup tree reduction: after it, element 0 of each array combines all `width` elements.
 *
 * @example Usage
 * ```ts
 * import { sumInto, treeReduceWgsl } from "./_wgsl.ts";
 * console.log(treeReduceWgsl("256u", sumInto("partial")));
 * ```
 * @param width The number of elements, a WGSL power-of-two expression ("256u", "WG").
 * @param combine The statements that fold element `b` into element `a`.
 * @param options `lid`: the invocation's index (default "lid"); `indent`: the loop's indentation.
 * @returns A WGSL loop.
 */
export function treeReduceWgsl(
  width: string,
  combine: (a: string, b: string) => string,
  options: { lid?: string; indent?: string } = {},
): string {
  const lid = options.lid ?? "lid", pad = options.indent ?? "  ";
  return `for (var stride = ${width} / 2u; stride > 0u; stride >>= 1u) {
${pad}  if (${lid} < stride) { ${combine(lid, `${lid} + stride`)} }
${pad}  workgroupBarrier();
${pad}}`;
}

/**
 * Combines by addition, for {@linkcode treeReduceWgsl}.
 *
 * @param arrays The workgroup arrays summed side by side.
 * @returns The combine function.
 */
export function sumInto(...arrays: string[]): (a: string, b: string) => string {
  return (a, b) => arrays.map((s) => `${s}[${a}] += ${s}[${b}];`).join(" ");
}

/**
 * Combines by maximum, for {@linkcode treeReduceWgsl}.
 *
 * @param arrays The workgroup arrays reduced side by side.
 * @returns The combine function.
 */
export function maxInto(...arrays: string[]): (a: string, b: string) => string {
  return (a, b) => arrays.map((s) => `${s}[${a}] = max(${s}[${a}], ${s}[${b}]);`).join(" ");
}

/**
 * A pointwise kernel: one invocation per element, 256 per workgroup, the grid folded into 2-D; the
 * entry point computes `i`, returns past `count` and runs `body`.
 *
 * @example Usage
 * ```ts
 * import { pointwiseKernel } from "./_wgsl.ts";
 * const spec = pointwiseKernel({
 *   name: "negate",
 *   reads: ["inp"],
 *   writes: ["out"],
 *   uniforms: { n: "u32" },
 *   body: "out[i] = -inp[i];",
 * });
 * console.log(spec.name); // "negate"
 * ```
 * @param definition The kernel's bindings and uniforms; `body` the statements for element `i`;
 * `helpers` WGSL placed before the entry point; `count` the element count (default `params.n`).
 * @returns The kernel spec.
 */
export function pointwiseKernel(
  definition: Omit<KernelDefinition, "body"> & { body: string; helpers?: string; count?: string },
): KernelSpec {
  const { body, helpers, count, ...io } = definition;
  return defineKernel({
    ...io,
    body: /* wgsl */ `${helpers ?? ""}
@compute @workgroup_size(256)
fn ${io.name}(${POINTWISE_ARGS}) {
  ${POINTWISE_INDEX}
  if (i >= ${count ?? "params.n"}) { return; }
  ${body}
}
`,
  });
}

/**
 * The opening of a kernel that gives each workgroup one item (a row, a tile, a block): the entry point
 * with `lid` (the invocation in the workgroup), `wid` and `groups`, the item's index folded from a 2-D
 * grid, and a return past `count`. The kernel's statements follow, then its closing brace.
 *
 * @example Usage
 * ```ts
 * import { workgroupEntry } from "./_wgsl.ts";
 * console.log(workgroupEntry("row_max", "256", "row", "params.rows"));
 * ```
 * @param name The entry point.
 * @param size The workgroup size, a WGSL expression.
 * @param item The name given to the folded workgroup index.
 * @param count Items in the grid, a WGSL expression; omit when the kernel checks its own bounds.
 * @returns WGSL up to and including the bounds check.
 */
export function workgroupEntry(name: string, size: string, item: string, count?: string): string {
  return `@compute @workgroup_size(${size})
fn ${name}(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let ${item} = wid.x + wid.y * groups.x;${count ? `\n  if (${item} >= ${count}) { return; }` : ""}`;
}

/**
 * The body of a column-sum kernel over segments of rows: workgroups of 64 columns × 4 row lanes, grid
 * [⌈cols/64⌉, segments], segment `seg` covering rows seg·seg_rows … (seg+1)·seg_rows − 1 clipped at
 * `params.rows`. For each named sum, lane y adds the terms of rows first + y, first + y + 4, …; the four
 * lanes are then combined as (l0 + l1) + (l2 + l3) into `<sum>_total`, in a fixed order.
 *
 * @example Usage
 * ```ts
 * import { columnSegmentSums } from "./_wgsl.ts";
 * const wgsl = columnSegmentSums("col_sums", ["s"], "s += inp[row * params.cols + col];", "out[col] = s_total;");
 * console.log(wgsl.includes("fn col_sums("));
 * ```
 * @param name The entry point.
 * @param sums The accumulators, `f32` variables the row statements add to.
 * @param row Statements for one row `row` and column `col`.
 * @param finish Statements run once per column (lane 0) with the totals.
 * @returns The workgroup arrays and the entry point.
 */
export function columnSegmentSums(name: string, sums: string[], row: string, finish: string): string {
  return `${sums.map((s) => `var<workgroup> lanes_${s}: array<array<f32, 64>, 4>;`).join("\n")}

@compute @workgroup_size(64, 4)
fn ${name}(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let col = wid.x * 64u + lid.x;
  let seg = wid.y;
  let first = seg * params.seg_rows;
  let last = min(first + params.seg_rows, params.rows);
  ${sums.map((s) => `var ${s} = 0.0;`).join("\n  ")}
  if (col < params.cols) {
    for (var row = first + lid.y; row < last; row += 4u) {
      ${row}
    }
  }
  ${sums.map((s) => `lanes_${s}[lid.y][lid.x] = ${s};`).join("\n  ")}
  workgroupBarrier();
  if (lid.y == 0u && col < params.cols) {
    ${
    sums.map((s) => {
      const l = (k: number) => `lanes_${s}[${k}][lid.x]`;
      return `let ${s}_total = (${l(0)} + ${l(1)}) + (${l(2)} + ${l(3)});`;
    }).join("\n    ")
  }
    ${finish}
  }
}`;
}
