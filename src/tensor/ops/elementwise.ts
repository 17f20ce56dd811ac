/**
 * Elementwise ops: broadcast add and mul, scaling, mixing and masked fill — launchers and autograd
 * nodes over kernels/elementwise.ts. Shapes and grid sizes only; the math lives in the kernels; column
 * sums for broadcast gradients run in a fixed order, so gradients are bitwise reproducible. Shape ops
 * (src/tensor/ops/shape.ts) and reductions (src/tensor/ops/reduce.ts) are re-exported from here.
 *
 * @module
 */
import {
  binarySpec,
  ELEMENTWISE_AXPBY,
  ELEMENTWISE_MIX_ROWS,
  ELEMENTWISE_SCALE_ROWS,
  maskedFillSpec,
  scaleSpec,
  sumRowsSpec,
} from "../../../kernels/elementwise.ts";
import type { Engine } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { checkF32, elementGrid, gradAddScaled, sameShape } from "./_shared.ts";

export { concat, reshape, split } from "./shape.ts";
export { argmax, l2Norm, mean, sum, sumOfSquares } from "./reduce.ts";

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
 * ```ts
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
 * ```ts
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
 * ```ts
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
 * ```ts
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
 * ```ts
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
 * ```ts
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
