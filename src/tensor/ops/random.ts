/**
 * Random tensors and dropout over kernels/random.ts: counter-based (Philox4x32-10), keyed by a 32-bit
 * seed and the element index, so a draw is reproducible bit for bit and dropout's backward regenerates
 * its mask instead of storing it. Seeds normally come from `engine.nextSeed(base)`.
 *
 * @module
 */
import {
  dropoutAddBackwardKernel,
  RANDOM_DROPOUT_ADD_FORWARD,
  RANDOM_DROPOUT_BACKWARD,
  RANDOM_DROPOUT_BACKWARD_WRITE,
  RANDOM_DROPOUT_FORWARD,
  RANDOM_NORMAL,
  RANDOM_NORMAL_AXPBY,
  RANDOM_NORMAL_AXPBY_PARTS,
  RANDOM_PER_INVOCATION,
  RANDOM_UNIFORM,
} from "../../../kernels/random.ts";
import { scaleSpec } from "../../../kernels/elementwise.ts";
import { type KernelSpec, kernelVariants } from "../../gpu/kernel.ts";
import { type Engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import type { SplitProduct } from "./matmul.ts";
import { gradAddScaled } from "./_shared.ts";

const dropoutAddBackward = kernelVariants(dropoutAddBackwardKernel);

function checkSeed(op: string, seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`Cannot run ${op}: seed is ${seed}, expected an integer in [0, 2^32)`);
  }
}

function gridFor(n: number): [number, number, number] {
  return grid1d(Math.ceil(n / (256 * RANDOM_PER_INVOCATION)));
}

function drawInto(op: string, spec: KernelSpec, out: Tensor, seed: number): void {
  checkSeed(op, seed);
  if (out.dtype !== "f32") {
    throw new TypeError(`Cannot run ${op}: out has dtype ${out.dtype}, expected f32`);
  }
  const n = out.size;
  if (n === 0) return;
  out.engine.runtime.dispatch(spec, { out }, { n, seed }, gridFor(n));
}

/**
 * Fills `out` with uniform draws in [0, 1) (24 random bits each), element i from (seed, i).
 *
 * @example Usage
 * ```ts
 * import { Engine, randomUniformInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const t = engine.empty([4]);
 * randomUniformInto(t, engine.nextSeed(1234));
 * console.log(await t.read());
 * ```
 * @param out f32, any shape; overwritten.
 * @param seed A 32-bit unsigned seed.
 * @throws {RangeError} If `seed` is not an integer in [0, 2^32).
 */
export function randomUniformInto(out: Tensor, seed: number): void {
  drawInto("randomUniformInto", RANDOM_UNIFORM, out, seed);
}

/**
 * A new tensor of uniform draws in [0, 1), element i from (seed, i).
 *
 * @example Usage
 * ```ts
 * import { Engine, randomUniform } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const t = randomUniform(engine, [8], 42); // diffusion times, say
 * console.log(await t.read());
 * ```
 * @param engine The engine that owns the result.
 * @param shape Dimensions.
 * @param seed A 32-bit unsigned seed.
 * @returns f32 of `shape`.
 * @throws {RangeError} If `seed` is not an integer in [0, 2^32).
 */
export function randomUniform(engine: Engine, shape: readonly number[], seed: number): Tensor {
  checkSeed("randomUniform", seed);
  const out = engine.empty(shape, "f32", "randomUniform");
  randomUniformInto(out, seed);
  return out;
}

/**
 * Fills `out` with standard normal draws (Box–Muller), element i from (seed, i).
 *
 * @example Usage
 * ```ts
 * import { Engine, randomNormalInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const z = engine.empty([8, 64, 64]);
 * randomNormalInto(z, engine.nextSeed(7)); // the diffusion noise of one step
 * ```
 * @param out f32, any shape; overwritten.
 * @param seed A 32-bit unsigned seed.
 * @throws {RangeError} If `seed` is not an integer in [0, 2^32).
 */
export function randomNormalInto(out: Tensor, seed: number): void {
  drawInto("randomNormalInto", RANDOM_NORMAL, out, seed);
}

/**
 * A new tensor of standard normal draws (Box–Muller), element i from (seed, i).
 *
 * @example Usage
 * ```ts
 * import { Engine, randomNormal } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const w = randomNormal(engine, [64], 3);
 * console.log(await w.read());
 * ```
 * @param engine The engine that owns the result.
 * @param shape Dimensions.
 * @param seed A 32-bit unsigned seed.
 * @returns f32 of `shape`.
 * @throws {RangeError} If `seed` is not an integer in [0, 2^32).
 */
export function randomNormal(engine: Engine, shape: readonly number[], seed: number): Tensor {
  checkSeed("randomNormal", seed);
  const out = engine.empty(shape, "f32", "randomNormal");
  randomNormalInto(out, seed);
  return out;
}

/**
 * `alpha·x + beta·ε` with ε the standard normal draws that {@linkcode randomNormal} makes from `seed`, in
 * one kernel: the update of a reverse diffusion step with its fresh noise.
 *
 * @example Usage
 * ```ts
 * import { addScaledNoise, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const estimate = engine.tensor(new Float32Array([1, 2, 3, 4]), [4]);
 * const x = addScaledNoise(estimate, 0.8, 0.6, 7); // √γ·x̂0 + √(1−γ)·ε with γ = 0.64
 * console.log(await x.read());
 * ```
 * @param x f32, any shape.
 * @param alpha Factor of `x`.
 * @param beta Factor of the noise.
 * @param seed A 32-bit unsigned seed.
 * @param into Where to write instead of a new tensor (the shape of `x`, another buffer; not under a
 * tape): the sampler updates its state in place.
 * @returns f32, the shape of `x` (`into` when given).
 * @throws {RangeError} If `seed` is not an integer in [0, 2^32).
 * @throws {TypeError} If `into` does not fit or a tape records.
 */
export function addScaledNoise(x: Tensor, alpha: number, beta: number, seed: number, into?: Tensor): Tensor {
  const engine = x.engine;
  checkSeed("addScaledNoise", seed);
  if (x.dtype !== "f32") {
    throw new TypeError(`Cannot run addScaledNoise: x has dtype ${x.dtype}, expected f32`);
  }
  if (
    into && (into.dtype !== "f32" || into.size !== x.size || into.buffer === x.buffer || engine.recording)
  ) {
    throw new TypeError(
      `Cannot run addScaledNoise into [${into.shape}] ${into.dtype}: expected f32 of ${x.size} elements in ` +
        "another buffer, with no tape recording",
    );
  }
  const out = into ?? engine.empty(x.shape, "f32", "addScaledNoise");
  const n = x.size;
  if (n > 0) {
    engine.runtime.dispatch(RANDOM_NORMAL_AXPBY, { inp: x, out }, { n, seed, alpha, beta }, gridFor(n));
  }
  engine.record({
    name: "addScaledNoise",
    inputs: [x],
    outputs: [out],
    backward: () => {
      if (!x.requiresGrad || n === 0) return;
      const { grad, accumulate } = engine.gradTarget(x);
      engine.runtime.dispatch(
        scaleSpec({ accumulate }),
        { inp: engine.gradOf(out), out: grad },
        { n, factor: alpha },
        grid1d(Math.ceil(n / 256)),
      );
    },
  });
  return out;
}

/**
 * {@linkcode addScaledNoise} of a product left as its split-K partial products (no bias or activation,
 * no batch), in one kernel without a tape: writes the product into `out.sum` (summed in split order, as
 * the reduction pass would) and `alpha·sum + beta·ε` into `out.into`, the values of summing and then
 * `addScaledNoise` to the bit. The sampler's update reads its estimate so, one pass fewer a step.
 *
 * @example Usage
 * ```ts
 * import { addScaledNoiseParts, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const part = engine.tensor(new Float32Array([1, 2, 3, 4]), [2, 1, 2]); // two partials of a [1, 2] product
 * const sum = engine.empty([1, 2]), x = engine.empty([1, 2]);
 * addScaledNoiseParts({ part, splits: 2 }, 0.8, 0.6, 7, { sum, into: x });
 * console.log(await sum.read()); // [4, 6]
 * ```
 * @param parts The partial products [splits, M, N].
 * @param alpha Factor of the sum.
 * @param beta Factor of the noise.
 * @param seed A 32-bit unsigned seed.
 * @param out `sum` and `into`, f32 of M·N elements each, in other buffers than the partials.
 * @throws {RangeError} If `seed` is not an integer in [0, 2^32).
 * @throws {TypeError} If a shape does not fit, the partials carry a bias or an activation, or a tape
 * records.
 */
export function addScaledNoiseParts(
  parts: SplitProduct,
  alpha: number,
  beta: number,
  seed: number,
  out: { sum: Tensor; into: Tensor },
): void {
  const { part, splits } = parts;
  const engine = part.engine;
  checkSeed("addScaledNoiseParts", seed);
  const n = part.size / splits;
  if (
    part.dtype !== "f32" || part.shape[0] !== splits || parts.bias || parts.activation || engine.recording
  ) {
    throw new TypeError(
      `Cannot run addScaledNoiseParts on partial products [${part.shape}] ${part.dtype}: expected f32 ` +
        `[${splits},..] with no bias or activation, and no tape recording`,
    );
  }
  for (const [name, t] of Object.entries(out)) {
    if (t.dtype !== "f32" || t.size !== n || t.buffer === part.buffer) {
      throw new TypeError(
        `Cannot run addScaledNoiseParts: ${name} is [${t.shape}] ${t.dtype}, expected f32 of ${n} elements ` +
          "outside the partials' buffer",
      );
    }
  }
  if (n > 0) {
    engine.runtime.dispatch(
      RANDOM_NORMAL_AXPBY_PARTS,
      { part, sum: out.sum, out: out.into },
      { n, seed, alpha, beta, splits },
      gridFor(n),
    );
  }
}

/**
 * Inverted dropout: each element is zeroed with probability `p` and the survivors are scaled by
 * 1/(1 − p); the mask comes from (seed, index), so backward regenerates it (nothing is saved). `p = 0`
 * is a copy; `p = 1` gives zeros.
 *
 * @example Usage
 * ```ts
 * import { dropout, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3, 4]), [4]);
 * console.log(await dropout(x, 0.5, engine.nextSeed(0)).read()); // e.g. [2, 0, 6, 0]
 * ```
 * @param x f32, any shape.
 * @param p Drop probability in [0, 1].
 * @param seed A 32-bit unsigned seed; use a fresh one per call.
 * @returns f32, the shape of `x`.
 * @throws {RangeError} If `p` is outside [0, 1] or `seed` is not an integer in [0, 2^32).
 */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  const engine = x.engine;
  const uniforms = dropoutUniforms("dropout", x, p, seed);
  const out = engine.empty(x.shape, "f32", "dropout");
  const n = x.size;
  if (n > 0) {
    if (p === 0) engine.runtime.copy(x, out);
    else engine.runtime.dispatch(RANDOM_DROPOUT_FORWARD, { inp: x, out }, uniforms, gridFor(n));
  }
  engine.record({
    name: "dropout",
    inputs: [x],
    outputs: [out],
    backward: () => {
      if (x.requiresGrad && n > 0) dropoutBackward(engine.gradOf(out), x, uniforms);
    },
  });
  return out;
}

/**
 * `residual + dropout(x, p, seed)` in one pass: the same mask and values as {@linkcode dropout} followed by
 * an add, without the intermediate tensor (a transformer's residual connection in training).
 *
 * @example Usage
 * ```ts
 * import { dropoutAdd, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const residual = engine.tensor(new Float32Array([1, 1, 1, 1]), [4]);
 * const x = engine.tensor(new Float32Array([1, 2, 3, 4]), [4]);
 * console.log(await dropoutAdd(residual, x, 0.5, engine.nextSeed(0)).read()); // e.g. [3, 1, 7, 1]
 * ```
 * @param residual f32, the shape of `x`.
 * @param x f32, any shape.
 * @param p Drop probability in [0, 1].
 * @param seed A 32-bit unsigned seed; use a fresh one per call.
 * @returns f32, the shape of `x`.
 * @throws {RangeError} If `p` is outside [0, 1] or `seed` is not an integer in [0, 2^32).
 * @throws {TypeError} If the shapes differ or a dtype is not f32.
 */
export function dropoutAdd(residual: Tensor, x: Tensor, p: number, seed: number): Tensor {
  const engine = x.engine;
  const uniforms = dropoutUniforms("dropoutAdd", x, p, seed);
  if (residual.dtype !== "f32" || residual.shape.join() !== x.shape.join()) {
    throw new TypeError(
      `Cannot run dropoutAdd: residual is ${residual.dtype} [${residual.shape}], expected f32 [${x.shape}]`,
    );
  }
  const out = engine.empty(x.shape, "f32", "dropoutAdd");
  const n = x.size;
  if (n > 0) {
    engine.runtime.dispatch(RANDOM_DROPOUT_ADD_FORWARD, { inp: x, res: residual, out }, uniforms, gridFor(n));
  }
  engine.record({
    name: "dropoutAdd",
    inputs: [residual, x],
    outputs: [out],
    backward: () => {
      if (n === 0 || !(residual.requiresGrad || x.requiresGrad)) return;
      const dout = engine.gradOf(out);
      // Both gradients in one pass over dout, unless one tensor is both inputs (one binding each).
      if (residual.requiresGrad && x.requiresGrad && residual !== x) {
        const res = engine.gradTarget(residual), inp = engine.gradTarget(x);
        const spec = dropoutAddBackward({ res: res.accumulate, inp: inp.accumulate });
        engine.runtime.dispatch(spec, { dout, dres: res.grad, dinp: inp.grad }, uniforms, gridFor(n));
        return;
      }
      if (residual.requiresGrad) gradAddScaled(engine, dout, residual, n, 1);
      if (x.requiresGrad) dropoutBackward(dout, x, uniforms);
    },
  });
  return out;
}

/** Checks dropout's arguments; the uniforms of its kernels (threshold/2^24 is the drop probability used). */
function dropoutUniforms(op: string, x: Tensor, p: number, seed: number) {
  checkSeed(op, seed);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`Cannot run ${op}: p is ${p}, expected a value in [0, 1]`);
  if (x.dtype !== "f32") throw new TypeError(`Cannot run ${op}: x has dtype ${x.dtype}, expected f32`);
  return { n: x.size, seed, threshold: Math.round(p * 16777216), scale: p < 1 ? 1 / (1 - p) : 0 };
}

/** grad(x) (+)= mask·dout·scale, the mask regenerated from the seed; a gradient not written yet is not zeroed first. */
function dropoutBackward(dout: Tensor, x: Tensor, uniforms: ReturnType<typeof dropoutUniforms>): void {
  const { grad, accumulate } = x.engine.gradTarget(x);
  const spec = accumulate ? RANDOM_DROPOUT_BACKWARD : RANDOM_DROPOUT_BACKWARD_WRITE;
  x.engine.runtime.dispatch(spec, { dout, dinp: grad }, uniforms, gridFor(uniforms.n));
}
