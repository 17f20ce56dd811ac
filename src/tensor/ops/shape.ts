/**
 * Shape ops: concat and split along the last dimension, and reshape (a view). Launchers and autograd
 * nodes over kernels/elementwise.ts's column copies.
 *
 * @module
 */
import { CONCAT_MAX_INPUTS, concatSpec, copyColsSpec } from "../../../kernels/elementwise.ts";
import type { Engine } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { checkF32, elementGrid, gradAddScaled, sameShape } from "./_shared.ts";

/**
 * Copies (or adds) columns `off … off + cols − 1` of `wide` (rows × stride, row-major) into the dense
 * `narrow` (rows × cols) — `gather` — or the other way round — `scatter`.
 */
function copyBlock(
  engine: Engine,
  tensors: { wide: Tensor; narrow: Tensor },
  block: { rows: number; cols: number; stride: number; off: number },
  direction: "gather" | "scatter",
  accumulate: boolean,
): void {
  const { rows, cols, stride, off } = block;
  if (rows * cols === 0) return;
  const gather = direction === "gather";
  const io = gather ? { src: tensors.wide, dst: tensors.narrow } : { src: tensors.narrow, dst: tensors.wide };
  engine.runtime.dispatch(copyColsSpec({ accumulate }), io, {
    rows,
    cols,
    src_stride: gather ? stride : cols,
    src_off: gather ? off : 0,
    dst_stride: gather ? cols : stride,
    dst_off: gather ? 0 : off,
  }, elementGrid(rows * cols));
}

/**
 * Concatenates tensors along the last dimension (the estimator input [x_noised, x_cond, x_selfcond]
 * → [B, L, 3E]). Gradients flow back to each input's columns.
 *
 * @example Usage
 * ```ts
 * import { concat, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const a = engine.tensor(new Float32Array([1, 2]), [2, 1]);
 * const b = engine.tensor(new Float32Array([3, 4, 5, 6]), [2, 2]);
 * console.log(await concat([a, b]).read()); // [1, 3, 4, 2, 5, 6]
 * ```
 * @param tensors One or more f32 tensors whose shapes agree except in the last dimension.
 * @returns Shape [..., ΣC].
 * @throws {TypeError} If there are no tensors, or their shapes or dtypes do not fit.
 */
export function concat(tensors: readonly Tensor[]): Tensor {
  const first = tensors[0];
  if (!first || first.shape.length < 1) {
    throw new TypeError(
      `Cannot run concat: got ${tensors.length} tensors, expected at least one of rank >= 1`,
    );
  }
  const lead = first.shape.slice(0, -1);
  for (const [k, t] of tensors.entries()) {
    checkF32("concat", `tensor ${k}`, t);
    if (t.shape.length < 1 || !sameShape(t.shape.slice(0, -1), lead)) {
      throw new TypeError(`Cannot run concat: tensor ${k} has shape [${t.shape}], expected [${lead},C]`);
    }
  }
  const engine = first.engine;
  const widths = tensors.map((t) => t.shape.at(-1)!);
  const total = widths.reduce((s, w) => s + w, 0);
  const rows = lead.reduce((s, d) => s * d, 1);
  const offsets = widths.map((_, k) => widths.slice(0, k).reduce((s, w) => s + w, 0));
  const out = engine.empty([...lead, total], "f32", "concat");
  // Up to CONCAT_MAX_INPUTS inputs per dispatch, each group writing its block of columns.
  for (let first = 0; first < tensors.length; first += CONCAT_MAX_INPUTS) {
    const group = tensors.slice(first, first + CONCAT_MAX_INPUTS);
    const cols = widths.slice(first, first + group.length).reduce((s, w) => s + w, 0);
    if (rows * cols === 0) continue;
    const views: Record<string, Tensor> = { out };
    const uniforms: Record<string, number> = { rows, cols, dst_stride: total, dst_off: offsets[first]! };
    for (const [k, t] of group.entries()) {
      views[`in${k}`] = t;
      uniforms[`w${k}`] = widths[first + k]!;
    }
    engine.runtime.dispatch(concatSpec(group.length), views, uniforms, elementGrid(rows * cols));
  }
  engine.record({
    name: "concat",
    inputs: tensors,
    outputs: [out],
    backward: () => {
      const dout = engine.gradOf(out);
      for (const [k, t] of tensors.entries()) {
        if (!t.requiresGrad) continue;
        const { grad, accumulate } = engine.gradTarget(t);
        const block = { rows, cols: widths[k]!, stride: total, off: offsets[k]! };
        copyBlock(engine, { wide: dout, narrow: grad }, block, "gather", accumulate);
      }
    },
  });
  return out;
}

/**
 * Splits a tensor along the last dimension into pieces of the given widths (copies, not views).
 * Gradients of the pieces flow back into the matching columns of `x`.
 *
 * @example Usage
 * ```ts
 * import { Engine, split } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * const [a, b] = split(x, [1, 2]);
 * console.log(await a!.read(), await b!.read()); // [1, 4] [2, 3, 5, 6]
 * ```
 * @param x Shape [..., C], f32.
 * @param sizes Widths of the pieces, summing to C.
 * @returns The pieces, shapes [..., sizes[k]].
 * @throws {TypeError} If the sizes do not sum to C or `x` is not f32.
 */
export function split(x: Tensor, sizes: readonly number[]): Tensor[] {
  checkF32("split", "x", x);
  const total = x.shape.at(-1);
  const sum = sizes.reduce((s, w) => s + w, 0);
  if (total === undefined || sum !== total || sizes.some((w) => !Number.isInteger(w) || w < 0)) {
    throw new TypeError(
      `Cannot run split: x has shape [${x.shape}], expected [..,${sum}] for sizes [${sizes}]`,
    );
  }
  const engine = x.engine;
  const lead = x.shape.slice(0, -1);
  const rows = lead.reduce((s, d) => s * d, 1);
  const offsets = sizes.map((_, k) => sizes.slice(0, k).reduce((s, w) => s + w, 0));
  const pieces = sizes.map((w) => engine.empty([...lead, w], "f32", "split"));
  for (const [k, piece] of pieces.entries()) {
    const block = { rows, cols: sizes[k]!, stride: total, off: offsets[k]! };
    copyBlock(engine, { wide: x, narrow: piece }, block, "gather", false);
  }
  engine.record({
    name: "split",
    inputs: [x],
    outputs: pieces,
    backward: () => {
      if (!x.requiresGrad) return;
      for (const [k, piece] of pieces.entries()) {
        if (!piece.grad) continue;
        const block = { rows, cols: sizes[k]!, stride: total, off: offsets[k]! };
        copyBlock(engine, { wide: engine.gradOf(x), narrow: piece.grad }, block, "scatter", true);
      }
    },
  });
  return pieces;
}

/**
 * A view of `x` with another shape (no copy); one dimension may be −1 and is then inferred. The
 * gradient flows: backward adds the gradient of the view into that of `x`. The view shares `x`'s
 * memory, so `x` must stay alive as long as the view is used (a `tidy` that returns only the view
 * releases `x`).
 *
 * @example Usage
 * ```ts
 * import { Engine, reshape } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * console.log(reshape(x, [3, -1]).shape); // [3, 2]
 * ```
 * @param x Any tensor.
 * @param shape The new dimensions, with the same element count.
 * @returns The view.
 * @throws {TypeError} If the element counts differ.
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1).reduce((s, d) => s * d, 1);
  const holes = shape.filter((d) => d === -1).length;
  const resolved = holes === 1 && known > 0 && x.size % known === 0
    ? shape.map((d) => (d === -1 ? x.size / known : d))
    : [...shape];
  if (
    holes > 1 || resolved.some((d) => !Number.isInteger(d) || d < 0) ||
    resolved.reduce((s, d) => s * d, 1) !== x.size
  ) {
    throw new TypeError(`Cannot run reshape: x has shape [${x.shape}], which does not fit [${shape}]`);
  }
  const engine = x.engine;
  const out = x.viewAs(resolved);
  engine.record({
    name: "reshape",
    inputs: [x],
    outputs: [out],
    backward: () => {
      if (x.requiresGrad && x.size > 0) gradAddScaled(engine, engine.gradOf(out), x, x.size, 1);
    },
  });
  return out;
}
