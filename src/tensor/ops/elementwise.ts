/**
 * Elementwise, shape and reduction ops: launchers and autograd nodes over kernels/elementwise.ts.
 * Shapes and grid sizes only; the math lives in the kernels. Every reduction runs in a fixed order,
 * so results and gradients are bitwise reproducible.
 *
 * @module
 */
import {
  binarySpec,
  CONCAT_MAX_INPUTS,
  concatSpec,
  copyColsSpec,
  ELEMENTWISE_ARGMAX,
  ELEMENTWISE_AXPBY,
  ELEMENTWISE_MIX_ROWS,
  ELEMENTWISE_SCALE_ROWS,
  maskedFillSpec,
  REDUCE_BLOCK,
  reduceBackwardSpec,
  reduceSpec,
  scaleSpec,
  sumRowsSpec,
} from "../../../kernels/elementwise.ts";
import type { BufferView } from "../../gpu/runtime.ts";
import { type Engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";

function elementGrid(n: number): [number, number, number] {
  return grid1d(Math.ceil(n / 256));
}

function checkF32(op: string, name: string, t: Tensor): void {
  if (t.dtype !== "f32") throw new TypeError(`Cannot run ${op}: ${name} has dtype ${t.dtype}, expected f32`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** `grad(x) (+)= factor · src` over all n elements: overwrites a gradient not written yet. */
function gradAddScaled(engine: Engine, src: BufferView, x: Tensor, n: number, factor: number): void {
  const { grad, accumulate } = engine.gradTarget(x);
  engine.runtime.dispatch(scaleSpec({ accumulate }), { inp: src, out: grad }, { n, factor }, elementGrid(n));
}

/** Rows per segment of the first column-sum pass: at most 256 segments, so the second pass is short. */
function segmentRows(rows: number): number {
  return Math.max(32, Math.ceil(rows / 256));
}

/**
 * `dst[c] += Σ_r x[r, c] (· y[r, c])` over the rows of a [rows, cols] array, in a fixed order: one pass
 * when the rows fit one segment, else per-segment partials and a pass over them.
 */
function sumRowsInto(
  engine: Engine,
  io: { x: Tensor; y?: Tensor; dst: Tensor },
  rows: number,
  cols: number,
): void {
  const product = io.y !== undefined;
  const views: Record<string, Tensor> = { inp: io.x };
  if (io.y) views.other = io.y;
  const segRows = segmentRows(rows);
  const segs = Math.ceil(rows / segRows);
  const colBlocks = Math.ceil(cols / 64);
  if (segs <= 1) {
    engine.runtime.dispatch(sumRowsSpec({ product, accumulate: true }), { ...views, out: io.dst }, {
      rows,
      cols,
      seg_rows: rows,
    }, [colBlocks, 1]);
    return;
  }
  engine.tidy(() => {
    const partial = engine.empty([segs, cols], "f32", "column sum partials");
    engine.runtime.dispatch(sumRowsSpec({ product, accumulate: false }), { ...views, out: partial }, {
      rows,
      cols,
      seg_rows: segRows,
    }, [colBlocks, segs]);
    engine.runtime.dispatch(
      sumRowsSpec({ product: false, accumulate: true }),
      { inp: partial, out: io.dst },
      {
        rows: segs,
        cols,
        seg_rows: segs,
      },
      [colBlocks, 1],
    );
  });
}

function broadcastBinary(op: "add" | "mul", a: Tensor, b: Tensor): Tensor {
  checkF32(op, "a", a);
  checkF32(op, "b", b);
  const suffix = a.shape.slice(a.shape.length - b.shape.length);
  if (b.shape.length > a.shape.length || !sameShape(suffix, b.shape)) {
    throw new TypeError(
      `Cannot run ${op}: b has shape [${b.shape}], expected a suffix of a's shape [${a.shape}]`,
    );
  }
  const engine = a.engine;
  const n = a.size;
  const nb = b.size;
  const out = engine.empty(a.shape, "f32", op);
  if (n > 0) {
    engine.runtime.dispatch(binarySpec({ op, accumulate: false }), { a, b, out }, { n, nb }, elementGrid(n));
  }
  engine.record({
    name: op,
    inputs: [a, b],
    outputs: [out],
    backward: () => {
      if (n === 0) return;
      const dout = engine.gradOf(out);
      if (a.requiresGrad) {
        if (op === "add") gradAddScaled(engine, dout, a, n, 1);
        else {
          const { grad, accumulate } = engine.gradTarget(a);
          engine.runtime.dispatch(
            binarySpec({ op: "mul", accumulate }),
            { a: dout, b, out: grad },
            { n, nb },
            elementGrid(n),
          );
        }
      }
      if (b.requiresGrad) {
        if (nb === n) {
          if (op === "add") gradAddScaled(engine, dout, b, n, 1);
          else {
            const { grad, accumulate } = engine.gradTarget(b);
            engine.runtime.dispatch(binarySpec({ op: "mul", accumulate }), { a: dout, b: a, out: grad }, {
              n,
              nb: n,
            }, elementGrid(n));
          }
        } else {
          const db = engine.gradOf(b);
          sumRowsInto(engine, op === "add" ? { x: dout, dst: db } : { x: dout, y: a, dst: db }, n / nb, nb);
        }
      }
    },
  });
  return out;
}

/**
 * Elementwise sum `a + b`, with `b` repeated over the leading dimensions of `a` when its shape is a
 * proper suffix of `a`'s (a bias [D] added to [B, L, D]). The gradient of a broadcast `b` is summed
 * over the repeated dimensions in a fixed order.
 *
 * @example Usage
 * ```ts ignore
 * import { add, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const a = engine.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const b = engine.tensor(new Float32Array([10, 20]), [2]);
 * console.log(await add(a, b).read()); // [11, 22, 13, 24]
 * ```
 * @param a Any shape, f32.
 * @param b The shape of `a` or a suffix of it, f32.
 * @returns `a + b`, shaped like `a`.
 * @throws {TypeError} If `b`'s shape is not a suffix of `a`'s, or a dtype is not f32.
 */
export function add(a: Tensor, b: Tensor): Tensor {
  return broadcastBinary("add", a, b);
}

/**
 * Elementwise product `a · b`, with `b` repeated over the leading dimensions of `a` when its shape is
 * a proper suffix of `a`'s. The gradient of a broadcast `b` is summed over the repeated dimensions in
 * a fixed order.
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, mul } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const a = engine.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const b = engine.tensor(new Float32Array([10, 20]), [2]);
 * console.log(await mul(a, b).read()); // [10, 40, 30, 80]
 * ```
 * @param a Any shape, f32.
 * @param b The shape of `a` or a suffix of it, f32.
 * @returns `a · b`, shaped like `a`.
 * @throws {TypeError} If `b`'s shape is not a suffix of `a`'s, or a dtype is not f32.
 */
export function mul(a: Tensor, b: Tensor): Tensor {
  return broadcastBinary("mul", a, b);
}

/**
 * `factor · x`, elementwise.
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, scale } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * console.log(await scale(engine.tensor(new Float32Array([1, -2]), [2]), 0.5).read()); // [0.5, -1]
 * ```
 * @param x Any shape, f32.
 * @param factor A finite number.
 * @returns `factor · x`, same shape.
 */
export function scale(x: Tensor, factor: number): Tensor {
  checkF32("scale", "x", x);
  const engine = x.engine;
  const n = x.size;
  const out = engine.empty(x.shape, "f32", "scale");
  if (n > 0) {
    engine.runtime.dispatch(scaleSpec({ accumulate: false }), { inp: x, out }, { n, factor }, elementGrid(n));
  }
  engine.record({
    name: "scale",
    inputs: [x],
    outputs: [out],
    backward: () => {
      if (x.requiresGrad && n > 0) gradAddScaled(engine, engine.gradOf(out), x, n, factor);
    },
  });
  return out;
}

/**
 * `alpha · a + beta · b` for tensors of one shape.
 *
 * @example Usage
 * ```ts ignore
 * import { addScaled, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const a = engine.tensor(new Float32Array([1, 2]), [2]);
 * const b = engine.tensor(new Float32Array([10, 20]), [2]);
 * console.log(await addScaled(a, b, 2, 0.5).read()); // [7, 14]
 * ```
 * @param a Any shape, f32.
 * @param b Same shape as `a`, f32.
 * @param alpha Factor of `a`.
 * @param beta Factor of `b`.
 * @returns `alpha · a + beta · b`.
 * @throws {TypeError} If the shapes differ or a dtype is not f32.
 */
export function addScaled(a: Tensor, b: Tensor, alpha: number, beta: number): Tensor {
  checkF32("addScaled", "a", a);
  checkF32("addScaled", "b", b);
  if (!sameShape(a.shape, b.shape)) {
    throw new TypeError(`Cannot run addScaled: b has shape [${b.shape}], expected [${a.shape}]`);
  }
  const engine = a.engine;
  const n = a.size;
  const out = engine.empty(a.shape, "f32", "addScaled");
  if (n > 0) {
    engine.runtime.dispatch(ELEMENTWISE_AXPBY, { a, b, out }, { n, alpha, beta }, elementGrid(n));
  }
  engine.record({
    name: "addScaled",
    inputs: [a, b],
    outputs: [out],
    backward: () => {
      if (n === 0) return;
      const dout = engine.gradOf(out);
      if (a.requiresGrad) gradAddScaled(engine, dout, a, n, alpha);
      if (b.requiresGrad) gradAddScaled(engine, dout, b, n, beta);
    },
  });
  return out;
}

/**
 * Mixes two tensors with per-batch-element factors, `alpha[i]·a[i,…] + beta[i]·b[i,…]`: the diffusion
 * forward process x_t = √γ(t)·x0 + √(1−γ(t))·z with one t per batch element. Gradients flow to `a`
 * and `b` only.
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, mixRows } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const a = engine.tensor(new Float32Array([1, 1, 1, 1]), [2, 2]);
 * const b = engine.tensor(new Float32Array([2, 2, 2, 2]), [2, 2]);
 * const alpha = engine.tensor(new Float32Array([1, 0]), [2]);
 * const beta = engine.tensor(new Float32Array([0, 1]), [2]);
 * console.log(await mixRows(a, b, alpha, beta).read()); // [1, 1, 2, 2]
 * ```
 * @param a Shape [B, ...], f32.
 * @param b Same shape as `a`, f32.
 * @param alpha Factors of `a`, f32 [B].
 * @param beta Factors of `b`, f32 [B].
 * @returns The mix, shaped like `a`.
 * @throws {TypeError} If a shape or dtype does not fit.
 */
export function mixRows(a: Tensor, b: Tensor, alpha: Tensor, beta: Tensor): Tensor {
  for (const [name, t] of [["a", a], ["b", b], ["alpha", alpha], ["beta", beta]] as const) {
    checkF32("mixRows", name, t);
  }
  if (a.shape.length < 1 || !sameShape(a.shape, b.shape)) {
    throw new TypeError(
      `Cannot run mixRows: a has shape [${a.shape}] and b [${b.shape}], expected equal [B,..]`,
    );
  }
  const batch = a.shape[0]!;
  for (const [name, t] of [["alpha", alpha], ["beta", beta]] as const) {
    if (t.size !== batch || t.shape.length !== 1) {
      throw new TypeError(`Cannot run mixRows: ${name} has shape [${t.shape}], expected [${batch}]`);
    }
  }
  const engine = a.engine;
  const n = a.size;
  const rowSize = batch === 0 ? 1 : n / batch;
  const out = engine.empty(a.shape, "f32", "mixRows");
  if (n > 0) {
    engine.runtime.dispatch(
      ELEMENTWISE_MIX_ROWS,
      { a, b, alpha, beta, out },
      { n, row_size: rowSize },
      elementGrid(n),
    );
  }
  engine.record({
    name: "mixRows",
    inputs: [a, b],
    outputs: [out],
    backward: () => {
      if (n === 0) return;
      const dout = engine.gradOf(out);
      for (const [t, factor] of [[a, alpha], [b, beta]] as const) {
        if (!t.requiresGrad) continue;
        engine.runtime.dispatch(ELEMENTWISE_SCALE_ROWS, { inp: dout, factor, out: engine.gradOf(t) }, {
          n,
          row_size: rowSize,
        }, elementGrid(n));
      }
    },
  });
  return out;
}

/** Options for {@linkcode maskedFill}. */
export interface MaskedFillOptions {
  /**
   * Fill where the mask is 0 instead of where it is non-zero (`x.masked_fill(~mask, value)`).
   * @default {false}
   */
  invert?: boolean;
}

/**
 * Replaces whole vectors along the last dimension: where `mask` is non-zero (zero with `invert`), the
 * E-vector becomes `value` (PyTorch's `x.masked_fill(mask[..., None], value)`). The gradient passes
 * through everywhere else.
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, maskedFill } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3, 4]), [1, 2, 2]);
 * const mask = engine.tensor(new Uint32Array([0, 1]), [1, 2]);
 * console.log(await maskedFill(x, mask, 0).read()); // [1, 2, 0, 0]
 * ```
 * @param x Shape [..., E] (e.g. [B, L, E] or [N, E]), f32.
 * @param mask Shape of `x` without its last dimension, u32 or i32.
 * @param value The fill value.
 * @param options `invert` to fill where the mask is 0.
 * @returns The filled tensor, shaped like `x`.
 * @throws {TypeError} If a shape or dtype does not fit.
 */
export function maskedFill(x: Tensor, mask: Tensor, value: number, options: MaskedFillOptions = {}): Tensor {
  checkF32("maskedFill", "x", x);
  if (mask.dtype === "f32") {
    throw new TypeError(`Cannot run maskedFill: mask has dtype f32, expected u32 or i32`);
  }
  if (x.shape.length < 1 || !sameShape(mask.shape, x.shape.slice(0, -1))) {
    throw new TypeError(
      `Cannot run maskedFill: mask has shape [${mask.shape}], expected [${
        x.shape.slice(0, -1)
      }] for x [${x.shape}]`,
    );
  }
  const engine = x.engine;
  const n = x.size;
  const cols = x.shape.at(-1)!;
  const invert = options.invert ? 1 : 0;
  const out = engine.empty(x.shape, "f32", "maskedFill");
  if (n > 0) {
    engine.runtime.dispatch(maskedFillSpec({ accumulate: false }), { inp: x, mask, out }, {
      n,
      cols,
      value,
      invert,
    }, elementGrid(n));
  }
  engine.record({
    name: "maskedFill",
    inputs: [x],
    outputs: [out],
    backward: () => {
      if (!x.requiresGrad || n === 0) return;
      engine.runtime.dispatch(
        maskedFillSpec({ accumulate: true }),
        {
          inp: engine.gradOf(out),
          mask,
          out: engine.gradOf(x),
        },
        { n, cols, value: 0, invert },
        elementGrid(n),
      );
    },
  });
  return out;
}

/** Copies (or adds) a block of columns between two row-major matrices with `rows` rows. */
function copyCols(
  engine: Engine,
  io: { src: Tensor; dst: Tensor },
  layout: {
    rows: number;
    cols: number;
    srcStride: number;
    srcOff: number;
    dstStride: number;
    dstOff: number;
  },
  accumulate: boolean,
): void {
  const { rows, cols } = layout;
  if (rows * cols === 0) return;
  engine.runtime.dispatch(copyColsSpec({ accumulate }), io, {
    rows,
    cols,
    src_stride: layout.srcStride,
    src_off: layout.srcOff,
    dst_stride: layout.dstStride,
    dst_off: layout.dstOff,
  }, elementGrid(rows * cols));
}

/**
 * Concatenates tensors along the last dimension (the estimator input [x_noised, x_cond, x_selfcond]
 * → [B, L, 3E]). Gradients flow back to each input's columns.
 *
 * @example Usage
 * ```ts ignore
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
        copyCols(engine, { src: dout, dst: grad }, {
          rows,
          cols: widths[k]!,
          srcStride: total,
          srcOff: offsets[k]!,
          dstStride: widths[k]!,
          dstOff: 0,
        }, accumulate);
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
 * ```ts ignore
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
    copyCols(engine, { src: x, dst: piece }, {
      rows,
      cols: sizes[k]!,
      srcStride: total,
      srcOff: offsets[k]!,
      dstStride: sizes[k]!,
      dstOff: 0,
    }, false);
  }
  engine.record({
    name: "split",
    inputs: [x],
    outputs: pieces,
    backward: () => {
      if (!x.requiresGrad) return;
      for (const [k, piece] of pieces.entries()) {
        if (!piece.grad) continue;
        copyCols(engine, { src: piece.grad, dst: engine.gradOf(x) }, {
          rows,
          cols: sizes[k]!,
          srcStride: sizes[k]!,
          srcOff: 0,
          dstStride: total,
          dstOff: offsets[k]!,
        }, true);
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
 * ```ts ignore
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

/** [start, count] element ranges of `n` whose bindings fit the device limit and start aligned. */
function chunks(engine: Engine, n: number): [number, number][] {
  const limit = engine.runtime.gpu.limits.maxStorageBufferBindingSize / 4;
  const step = Math.max(REDUCE_BLOCK, Math.floor(limit / REDUCE_BLOCK) * REDUCE_BLOCK);
  const out: [number, number][] = [];
  for (let start = 0; start < n; start += step) out.push([start, Math.min(step, n - start)]);
  return out;
}

function range(t: Tensor, start: number, count: number): BufferView {
  return { buffer: t.buffer, byteOffset: t.byteOffset + start * 4, byteLength: count * 4 };
}

/**
 * Reduces `x` to one value: blocks of 4096 (chunked so that no binding exceeds the device limit),
 * then the partials again, until one workgroup writes `out[0] = total·scale` (square-rooted for `root`).
 */
function reduceInto(x: Tensor, out: Tensor, square: boolean, final: { scale: number; root: boolean }): void {
  const engine = x.engine;
  const n = x.size;
  const root = final.root ? 1 : 0;
  if (n <= REDUCE_BLOCK) {
    engine.runtime.dispatch(reduceSpec({ square }), { inp: x, out }, {
      n,
      out_off: 0,
      scale: final.scale,
      root,
    }, [1]);
    return;
  }
  engine.tidy(() => {
    let m = Math.ceil(n / REDUCE_BLOCK);
    let partials = engine.empty([m], "f32", "reduce partials");
    for (const [start, count] of chunks(engine, n)) {
      engine.runtime.dispatch(
        reduceSpec({ square }),
        { inp: range(x, start, count), out: partials },
        { n: count, out_off: start / REDUCE_BLOCK, scale: 1, root: 0 },
        grid1d(Math.ceil(count / REDUCE_BLOCK)),
      );
    }
    while (m > REDUCE_BLOCK) {
      const next = Math.ceil(m / REDUCE_BLOCK);
      const reduced = engine.empty([next], "f32", "reduce partials");
      engine.runtime.dispatch(reduceSpec({ square: false }), { inp: partials, out: reduced }, {
        n: m,
        out_off: 0,
        scale: 1,
        root: 0,
      }, grid1d(next));
      partials = reduced;
      m = next;
    }
    engine.runtime.dispatch(reduceSpec({ square: false }), { inp: partials, out }, {
      n: m,
      out_off: 0,
      scale: final.scale,
      root,
    }, [1]);
  });
}

type ReduceKind = "sum" | "mean" | "sumOfSquares" | "l2Norm";

function reduceOp(kind: ReduceKind, x: Tensor): Tensor {
  checkF32(kind, "x", x);
  const engine = x.engine;
  const n = x.size;
  if (kind === "mean" && n === 0) throw new RangeError("Cannot run mean: x has no elements");
  const out = engine.empty([1], "f32", kind);
  if (n === 0) engine.fill(out, 0);
  else {
    reduceInto(x, out, kind === "sumOfSquares" || kind === "l2Norm", {
      scale: kind === "mean" ? 1 / n : 1,
      root: kind === "l2Norm",
    });
  }
  engine.record({
    name: kind,
    inputs: [x],
    outputs: [out],
    backward: () => {
      if (!x.requiresGrad || n === 0) return;
      const dout = engine.gradOf(out);
      const dx = engine.gradOf(x);
      const mode = kind === "sum" || kind === "mean" ? "sum" : kind === "sumOfSquares" ? "square" : "norm";
      const factor = kind === "mean" ? 1 / n : kind === "sumOfSquares" ? 2 : 1;
      for (const [start, count] of chunks(engine, n)) {
        const views: Record<string, BufferView> = { dout, dinp: range(dx, start, count) };
        if (mode !== "sum") views.inp = range(x, start, count);
        if (mode === "norm") views.total = out;
        engine.runtime.dispatch(
          reduceBackwardSpec({ mode }),
          views,
          { n: count, scale: factor },
          elementGrid(count),
        );
      }
    },
  });
  return out;
}

/**
 * The sum of all elements, as a [1] tensor; a fixed-order tree, so the result is reproducible.
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, sum } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * console.log(await sum(engine.tensor(new Float32Array([1, 2, 3]), [3])).read()); // [6]
 * ```
 * @param x Any shape, f32.
 * @returns Σx, shape [1].
 */
export function sum(x: Tensor): Tensor {
  return reduceOp("sum", x);
}

/**
 * The mean of all elements, as a [1] tensor.
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, mean } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * console.log(await mean(engine.tensor(new Float32Array([1, 2, 3]), [3])).read()); // [2]
 * ```
 * @param x Any non-empty shape, f32.
 * @returns Σx / n, shape [1].
 * @throws {RangeError} If `x` has no elements.
 */
export function mean(x: Tensor): Tensor {
  return reduceOp("mean", x);
}

/**
 * The sum of squares of all elements, as a [1] tensor (differentiable: d/dx = 2x).
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, sumOfSquares } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * console.log(await sumOfSquares(engine.tensor(new Float32Array([1, 2, 3]), [3])).read()); // [14]
 * ```
 * @param x Any shape, f32 (any size: bindings past the device limit are reduced in chunks).
 * @returns Σx², shape [1].
 */
export function sumOfSquares(x: Tensor): Tensor {
  return reduceOp("sumOfSquares", x);
}

/**
 * The Euclidean norm of all elements, as a [1] tensor (the global gradient norm for clipping;
 * differentiable: d/dx = x/‖x‖, 0 at x = 0).
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, l2Norm } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * console.log(await l2Norm(engine.tensor(new Float32Array([3, 4]), [2])).read()); // [5]
 * ```
 * @param x Any shape, f32 (any size: bindings past the device limit are reduced in chunks).
 * @returns √Σx², shape [1].
 */
export function l2Norm(x: Tensor): Tensor {
  return reduceOp("l2Norm", x);
}

/**
 * Index of the largest element along the last dimension (the lowest index among equal maxima, as
 * PyTorch); not differentiable. NaN inputs give an unspecified index.
 *
 * @example Usage
 * ```ts ignore
 * import { argmax, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const logits = engine.tensor(new Float32Array([0, 5, 5, 1, 9, 2]), [2, 3]);
 * console.log(await argmax(logits).read()); // Int32Array [1, 1]
 * ```
 * @param x Shape [..., C] with C > 0, f32.
 * @returns Indices, i32 of shape [...] (x's shape without its last dimension).
 * @throws {TypeError} If `x` is not f32 or its last dimension is empty.
 */
export function argmax(x: Tensor): Tensor {
  checkF32("argmax", "x", x);
  const cols = x.shape.at(-1) ?? 0;
  if (cols === 0) {
    throw new TypeError(`Cannot run argmax: x has shape [${x.shape}], expected [..,C] with C > 0`);
  }
  const engine = x.engine;
  const rows = x.size / cols;
  const out = engine.empty(x.shape.slice(0, -1), "i32", "argmax");
  if (rows > 0) engine.runtime.dispatch(ELEMENTWISE_ARGMAX, { inp: x, out }, { rows, cols }, grid1d(rows));
  return out;
}
