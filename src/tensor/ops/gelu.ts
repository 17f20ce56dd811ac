/**
 * The `gelu` op: launcher and autograd node over kernels/gelu.ts.
 *
 * @module
 */
import { GELU_BACKWARD, GELU_BACKWARD_WRITE, GELU_FORWARD } from "../../../kernels/gelu.ts";
import { grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";

/**
 * GELU (erf form, as PyTorch's default), elementwise.
 *
 * @example Usage
 * ```ts
 * import { Engine, gelu } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const y = gelu(engine.tensor(new Float32Array([-1, 0, 1]), [3]));
 * console.log(await y.read()); // ≈ [-0.1587, 0, 0.8413]
 * ```
 * @param x Any shape.
 * @returns GELU(x), same shape.
 */
export function gelu(x: Tensor): Tensor {
  const engine = x.engine;
  const out = engine.empty(x.shape, "f32", "gelu");
  const n = x.size;
  const grid = grid1d(Math.ceil(n / 256));
  engine.runtime.dispatch(GELU_FORWARD, { inp: x, out }, { n }, grid);
  engine.record({
    name: "gelu",
    inputs: [x],
    outputs: [out],
    backward: () => {
      if (!x.requiresGrad) return;
      const { grad, accumulate } = engine.gradTarget(x);
      engine.runtime.dispatch(
        accumulate ? GELU_BACKWARD : GELU_BACKWARD_WRITE,
        { inp: x, dout: engine.gradOf(out), dinp: grad },
        { n },
        grid,
      );
    },
  });
  return out;
}
