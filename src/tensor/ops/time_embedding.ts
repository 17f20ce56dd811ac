/**
 * The `timeEmbedding` op: learned sinusoidal features of diffusion time (the seed's
 * LearnedSinusoidalPosEmb), over kernels/time_embedding.ts.
 *
 * @module
 */
import { TIME_EMBEDDING_BACKWARD, TIME_EMBEDDING_FORWARD } from "../../../kernels/time_embedding.ts";
import type { Tensor } from "../tensor.ts";

/**
 * Sinusoidal features [sin(2π·t·w), cos(2π·t·w)] of times `t` with learned frequencies `w`.
 *
 * @example Usage
 * ```ts
 * import { Engine, timeEmbedding } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const t = engine.tensor(new Float32Array([0.5]), [1]);
 * const w = engine.tensor(new Float32Array([1, 0.25]), [2]);
 * console.log(await timeEmbedding(t, w).read()); // [sin π, sin π/4, cos π, cos π/4]
 * ```
 * @param t Times, f32 [B].
 * @param w Frequencies, f32 [F].
 * @returns Features [B, 2F]; gradients flow into `w`.
 */
export function timeEmbedding(t: Tensor, w: Tensor): Tensor {
  if (t.shape.length !== 1 || w.shape.length !== 1) {
    throw new TypeError(
      `Cannot run timeEmbedding: t has shape [${t.shape}] and w [${w.shape}], expected [B] and [F]`,
    );
  }
  const engine = t.engine;
  const [batch] = t.shape as [number];
  const [freqs] = w.shape as [number];
  const out = engine.empty([batch, 2 * freqs], "f32", "time features");
  const uniforms = { batch, freqs };
  engine.runtime.dispatch(TIME_EMBEDDING_FORWARD, { t, w, out }, uniforms, [
    Math.ceil((batch * 2 * freqs) / 64),
  ]);
  engine.record({
    name: "timeEmbedding",
    inputs: [w],
    outputs: [out],
    backward: () => {
      engine.runtime.dispatch(
        TIME_EMBEDDING_BACKWARD,
        { t, w, dout: engine.gradOf(out), dw: engine.gradOf(w) },
        uniforms,
        [Math.ceil(freqs / 64)],
      );
    },
  });
  return out;
}
