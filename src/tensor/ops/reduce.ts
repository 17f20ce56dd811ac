/**
 * Reductions to a scalar (sum, mean, sumOfSquares, l2Norm) and argmax over the last dimension:
 * launchers and autograd nodes over kernels/elementwise.ts. Every reduction runs in a fixed order, so
 * results and gradients are bitwise reproducible.
 *
 * @module
 */
import {
  ELEMENTWISE_ARGMAX,
  REDUCE_BLOCK,
  reduceBackwardSpec,
  reduceSpec,
} from "../../../kernels/elementwise.ts";
import type { BufferView } from "../../gpu/buffer_pool.ts";
import { type Engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { checkF32, elementGrid } from "./_shared.ts";

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
 * ```ts
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
 * ```ts
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
 * ```ts
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
 * ```ts
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
 * ```ts
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
