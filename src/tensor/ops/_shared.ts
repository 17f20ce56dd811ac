/**
 * Helpers the op launchers share: the grid of a pointwise kernel, dtype checks, and the gradient
 * written as a scaled copy (the backward of reshape, scale and the views).
 *
 * @module
 */
import { scaleSpec } from "../../../kernels/elementwise.ts";
import type { BufferView } from "../../gpu/buffer_pool.ts";
import { type Engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";

/** The folded grid of a pointwise kernel over n elements, 256 per workgroup. */
export function elementGrid(n: number): [number, number, number] {
  return grid1d(Math.ceil(n / 256));
}

/** Throws a TypeError naming the op and the argument unless `t` is f32. */
export function checkF32(op: string, name: string, t: Tensor): void {
  if (t.dtype !== "f32") throw new TypeError(`Cannot run ${op}: ${name} has dtype ${t.dtype}, expected f32`);
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** `grad(x) (+)= factor · src` over all n elements: overwrites a gradient not written yet. */
export function gradAddScaled(engine: Engine, src: BufferView, x: Tensor, n: number, factor: number): void {
  const { grad, accumulate } = engine.gradTarget(x);
  engine.runtime.dispatch(scaleSpec({ accumulate }), { inp: src, out: grad }, { n, factor }, elementGrid(n));
}
