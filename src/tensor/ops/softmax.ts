/**
 * The softmax ops: `softmax` (autograd) and `softmaxInto` (no autograd, optional temperature, may write
 * in place), over the last dim, on kernels/softmax.ts.
 *
 * @module
 */
import { softmaxBackwardSpec, softmaxForwardSpec, softmaxWorkgroup } from "../../../kernels/softmax.ts";
import { grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";

/** Options of {@linkcode softmaxInto}. */
export interface SoftmaxIntoOptions {
  /**
   * Divides the logits before the softmax: softmax(x/τ). Must be positive.
   * @default {1}
   */
  temperature?: number;
}

function rowsOf(op: string, x: Tensor): { rows: number; cols: number } {
  if (x.dtype !== "f32" || x.shape.length === 0 || x.shape.at(-1) === 0) {
    throw new TypeError(
      `Cannot run ${op}: x has shape [${x.shape}] (${x.dtype}), expected f32 [..,C] with C > 0`,
    );
  }
  const cols = x.shape.at(-1)!;
  return { rows: x.size / cols, cols };
}

/**
 * Softmax over the last dim, with autograd (the output is saved for backward).
 *
 * @example Usage
 * ```ts
 * import { Engine, softmax } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const y = softmax(engine.tensor(new Float32Array([0, 1, 2]), [1, 3]));
 * console.log(await y.read()); // ≈ [0.0900, 0.2447, 0.6652]
 * ```
 * @param x f32 [..., C].
 * @returns softmax(x), same shape.
 * @throws {TypeError} If x is not f32 or its last dim is 0.
 */
export function softmax(x: Tensor): Tensor {
  const { rows, cols } = rowsOf("softmax", x);
  const engine = x.engine;
  const out = engine.empty(x.shape, "f32", "softmax");
  const workgroup = softmaxWorkgroup(cols);
  const grid = grid1d(rows);
  engine.runtime.dispatch(
    softmaxForwardSpec({ workgroup, inPlace: false }),
    { inp: x, out },
    { rows, cols, inv_temp: 1 },
    grid,
  );
  engine.record({
    name: "softmax",
    inputs: [x],
    outputs: [out],
    backward: () => {
      if (!x.requiresGrad) return;
      engine.runtime.dispatch(
        softmaxBackwardSpec(workgroup),
        { y: out, dy: engine.gradOf(out), dx: engine.gradOf(x) },
        { rows, cols },
        grid,
      );
    },
  });
  return out;
}

/**
 * Writes softmax(x/τ) over the last dim into `out`, recording no autograd (sampling, self-conditioning,
 * interpolation over the vocabulary). `out` may be `x` itself (in place) or any tensor of the same shape
 * in another buffer.
 *
 * @example Usage
 * ```ts
 * import { Engine, softmaxInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const logits = engine.tensor(new Float32Array([0, 1, 2, 3]), [2, 2]);
 * softmaxInto(logits, logits, { temperature: 0.5 }); // in place
 * console.log(await logits.read());
 * ```
 * @param out f32, the shape of x.
 * @param x f32 [..., C].
 * @param options The temperature τ (default 1).
 * @throws {TypeError} If the shapes differ, or out shares x's buffer at another offset.
 * @throws {RangeError} If the temperature is not positive.
 */
export function softmaxInto(out: Tensor, x: Tensor, options: SoftmaxIntoOptions = {}): void {
  const { rows, cols } = rowsOf("softmaxInto", x);
  const { temperature = 1 } = options;
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`Cannot run softmaxInto: temperature is ${temperature}, expected a positive number`);
  }
  if (
    out.dtype !== "f32" || out.shape.length !== x.shape.length || out.shape.some((n, i) => n !== x.shape[i])
  ) {
    throw new TypeError(`Cannot run softmaxInto: out has shape [${out.shape}], expected f32 [${x.shape}]`);
  }
  const inPlace = out.buffer === x.buffer;
  if (inPlace && out.byteOffset !== x.byteOffset) {
    throw new TypeError(
      `Cannot run softmaxInto: out shares x's buffer at byte offset ${out.byteOffset}, expected ${x.byteOffset} or another buffer`,
    );
  }
  const spec = softmaxForwardSpec({ workgroup: softmaxWorkgroup(cols), inPlace });
  x.engine.runtime.dispatch(
    spec,
    inPlace ? { out } : { inp: x, out },
    { rows, cols, inv_temp: 1 / temperature },
    grid1d(rows),
  );
}
