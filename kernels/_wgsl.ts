/**
 * WGSL snippets shared by the kernel families: the index of a pointwise kernel in a folded grid, and
 * the workgroup tree reduction. Every family builds its reductions from {@linkcode treeReduceWgsl}, so
 * they add (or take the maximum) in one fixed order: stride halves from half the width down to 1,
 * invocation i combining i + stride into itself, a barrier after each level.
 *
 * @module
 */

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
