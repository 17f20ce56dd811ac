/**
 * The softmax ops: `softmax` (autograd) and `softmaxInto` (no autograd, optional temperature, may write
 * in place or read a product's partial products), over the last dim, on kernels/softmax.ts.
 *
 * @module
 */
import { softmaxBackwardSpec, softmaxForwardSpec, softmaxWorkgroup } from "../../../kernels/softmax.ts";
import { grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import type { SplitProduct } from "./matmul.ts";

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
 * in another buffer. `x` may also be a product left as its split-K partial products (from
 * `linearParts`, a bias allowed, no activation): the kernel sums them as it reads them, which
 * gives the summed product's softmax to the bit without its reduction pass.
 *
 * @example Usage
 * ```ts
 * import { Engine, linearParts, softmaxInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const logits = engine.tensor(new Float32Array([0, 1, 2, 3]), [2, 2]);
 * softmaxInto(logits, logits, { temperature: 0.5 }); // in place
 * console.log(await logits.read());
 * // The logits of a linear layer, summed as they are read when the product was split over K.
 * const latent = engine.zeros([64, 512]), w = engine.zeros([1000, 512]), b = engine.zeros([1000]);
 * const probabilities = engine.empty([64, 1000]);
 * softmaxInto(probabilities, linearParts(latent, w, { bias: b }));
 * ```
 * @param out f32, the shape of x (of the product's [M, N] for partial products, or any shape [.., N] of
 * as many elements).
 * @param x f32 [..., C], or a product's partial products.
 * @param options The temperature τ (default 1).
 * @throws {TypeError} If the shapes differ, out shares x's buffer at another offset, or the partial
 * products carry an activation or a batch.
 * @throws {RangeError} If the temperature is not positive.
 */
export function softmaxInto(out: Tensor, x: Tensor | SplitProduct, options: SoftmaxIntoOptions = {}): void {
  const { temperature = 1 } = options;
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`Cannot run softmaxInto: temperature is ${temperature}, expected a positive number`);
  }
  if ("part" in x) {
    partsSoftmaxInto(out, x, 1 / temperature);
    return;
  }
  const { rows, cols } = rowsOf("softmaxInto", x);
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

/** softmaxInto of a product given as its partial products [splits, M, N] (and bias [N]). */
function partsSoftmaxInto(out: Tensor, x: SplitProduct, invTemp: number): void {
  const { part, splits, bias, activation } = x;
  const [count, rows, cols] = part.shape;
  if (part.shape.length !== 3 || count !== splits || part.dtype !== "f32" || activation) {
    throw new TypeError(
      `Cannot run softmaxInto on partial products of shape [${part.shape}]${
        activation ? ` with ${activation}` : ""
      }: expected f32 [${splits},M,N] with no activation`,
    );
  }
  if (out.dtype !== "f32" || out.size !== rows! * cols! || out.shape.at(-1) !== cols) {
    throw new TypeError(
      `Cannot run softmaxInto: out has shape [${out.shape}], expected f32 [${rows},${cols}]`,
    );
  }
  if (bias && (bias.size !== cols || bias.dtype !== "f32")) {
    throw new TypeError(`Cannot run softmaxInto: the bias has shape [${bias.shape}], expected [${cols}]`);
  }
  const spec = softmaxForwardSpec({
    workgroup: softmaxWorkgroup(cols!),
    inPlace: false,
    parts: bias ? "bias" : "plain",
  });
  out.engine.runtime.dispatch(
    spec,
    bias ? { part, bias, out } : { part, out },
    { rows: rows!, cols: cols!, inv_temp: invTemp, splits, part_stride: rows! * cols! },
    grid1d(rows!),
  );
}
