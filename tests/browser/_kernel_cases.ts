/**
 * The same kernels on the same inputs, for comparing a browser's WebGPU with Deno's: every op the
 * sampler and the trainer dispatch, at odd sizes, on inputs drawn from a fixed host generator (so Deno
 * and the page build identical inputs). kernel_parity_test.ts runs these in Deno and, through
 * _kernel_page.ts, in Chromium, and compares each output within its tolerance in
 * {@linkcode KERNEL_TOLERANCES}.
 */
import { Xoshiro128 } from "../../src/data/xoshiro128.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { attention } from "../../src/tensor/ops/attention.ts";
import { addScaled, argmax } from "../../src/tensor/ops/elementwise.ts";
import { embedding } from "../../src/tensor/ops/embedding.ts";
import { gelu } from "../../src/tensor/ops/gelu.ts";
import { layerNorm, layerNormFilm } from "../../src/tensor/ops/layer_norm.ts";
import { crossEntropy } from "../../src/tensor/ops/loss.ts";
import { linear, linearConcat, matmul } from "../../src/tensor/ops/matmul.ts";
import { addScaledNoiseParts, randomNormal, randomUniform } from "../../src/tensor/ops/random.ts";
import { softmax, softmaxInto } from "../../src/tensor/ops/softmax.ts";
import { timeEmbedding } from "../../src/tensor/ops/time_embedding.ts";

/**
 * How far a browser's output may be from Deno's, per case, with why. On Chromium 150 (SwiftShader) against
 * Deno 2.9.6 (lavapipe) products, normalisation, gathers and the integer-hashed uniform noise agree to the
 * bit; tanh and exp to a few 1e-7; sin, cos and log are each implementation's own (the largest differences
 * were 1.9e-4 for the time embedding and 6.7e-4 for normal noise), so those get about three times that.
 */
export const KERNEL_TOLERANCES: Readonly<Record<string, { atol: number; rtol: number; why: string }>> = {
  matmul: { atol: 1e-6, rtol: 1e-6, why: "f32 products summed in the same order" },
  "matmul transB": { atol: 1e-6, rtol: 1e-6, why: "as matmul" },
  "linear gelu": { atol: 1e-6, rtol: 1e-6, why: "gelu's tanh is each implementation's own" },
  "linear of three": { atol: 1e-6, rtol: 1e-6, why: "as matmul" },
  gelu: { atol: 1e-6, rtol: 1e-6, why: "tanh" },
  layerNorm: { atol: 1e-6, rtol: 1e-6, why: "one sqrt per row" },
  layerNormFilm: { atol: 1e-6, rtol: 1e-6, why: "as layerNorm" },
  softmax: { atol: 1e-7, rtol: 1e-6, why: "exp" },
  "softmax of partial products": { atol: 1e-7, rtol: 1e-6, why: "as softmax, after sums in a fixed order" },
  attention: { atol: 1e-6, rtol: 1e-5, why: "exp, and the rotary table's sin and cos (built on the host)" },
  timeEmbedding: { atol: 6e-4, rtol: 0, why: "sin and cos of arguments up to ~200 rad" },
  randomUniform: { atol: 0, rtol: 0, why: "integer hashing (Philox) then one scaling" },
  randomNormal: { atol: 2e-3, rtol: 0, why: "Box–Muller's log, sqrt, sin and cos" },
  addScaled: { atol: 1e-6, rtol: 1e-6, why: "one multiply-add" },
  "noisy step of partial products": { atol: 2e-3, rtol: 0, why: "as randomNormal, times 0.6" },
  embedding: { atol: 0, rtol: 0, why: "a gather" },
  crossEntropy: { atol: 1e-6, rtol: 1e-6, why: "exp and log, one tree reduction" },
  argmax: { atol: 0, rtol: 0, why: "indices; ties keep the lowest" },
};

/** The sampler's softmax of the head's partial products [splits, rows, cols] and bias. */
function softmaxOfParts(part: Tensor, bias: Tensor): Tensor {
  const out = part.engine.empty(part.shape.slice(1));
  softmaxInto(out, { part, splits: part.shape[0]!, bias });
  return out;
}

/** The sampler's update of the estimate's partial products [splits, n]: the noisy step, its sum dropped. */
function noisyStepOfParts(part: Tensor): Tensor {
  const engine = part.engine, n = part.size / part.shape[0]!;
  const sum = engine.empty([n]), out = engine.empty([n]);
  addScaledNoiseParts({ part, splits: part.shape[0]! }, 0.8, 0.6, 13, { sum, into: out });
  sum.dispose();
  return out;
}

/**
 * Runs every case on `engine` and reads the outputs back.
 *
 * @param engine The engine (Deno's or a page's).
 * @returns Each case's output, by the names of {@linkcode KERNEL_TOLERANCES}.
 */
export async function runKernelCases(engine: Engine): Promise<Record<string, number[]>> {
  const random = new Xoshiro128(2024);
  const host = (n: number, lo = -1, hi = 1) =>
    Float32Array.from({ length: n }, () => lo + (hi - lo) * random.float());
  const f32 = (shape: number[], lo?: number, hi?: number) =>
    engine.tensor(host(shape.reduce((a, b) => a * b, 1), lo, hi), shape);
  const i32 = (values: number[], shape: number[]) => engine.tensor(new Int32Array(values), shape, "i32");
  const outputs: [string, Tensor][] = engine.noGrad(() => {
    const a = f32([37, 53]), b = f32([53, 29]), bt = f32([29, 53]);
    const x = f32([3, 7, 24], -2, 2);
    const logits = f32([6, 13], -3, 3);
    return [
      ["matmul", matmul(a, b)],
      ["matmul transB", matmul(a, bt, { transB: true })],
      ["linear gelu", linear(f32([11, 24]), f32([40, 24]), f32([40]), { activation: "gelu" })],
      ["linear of three", linearConcat([f32([11, 7]), f32([11, 7]), f32([11, 7])], f32([40, 21]), f32([40]))],
      ["gelu", gelu(f32([1001], -5, 5))],
      ["layerNorm", layerNorm(f32([7, 61], -3, 3), { weight: f32([61]), bias: f32([61]) })],
      ["layerNormFilm", layerNormFilm(x, f32([3, 4 * 24]), { gammaSlice: 1, betaSlice: 3 })],
      ["softmax", softmax(f32([9, 77], -6, 6))],
      ["softmax of partial products", softmaxOfParts(f32([3, 9, 77], -2, 2), f32([77]))],
      ["attention", attention(f32([2, 9, 3 * 16]), i32([9, 6], [2]), { heads: 2 })],
      ["timeEmbedding", timeEmbedding(f32([5], 0, 1), f32([64], -30, 30))],
      ["randomUniform", randomUniform(engine, [1003], 11)],
      ["randomNormal", randomNormal(engine, [1003], 12)],
      ["addScaled", addScaled(f32([301]), f32([301]), 0.7, -1.3)],
      ["noisy step of partial products", noisyStepOfParts(f32([3, 1003]))],
      ["embedding", embedding(f32([13, 10]), i32([3, 0, 12, 7, 7, 1, 5, 9, 2, 11, 4, 6, 8, 10], [2, 7]))],
      ["crossEntropy", crossEntropy(logits, i32([0, 12, 5, 5, 3, 7], [6]), f32([6], 0, 1))],
      ["argmax", argmax(f32([5, 31]))],
    ];
  });
  const results: Record<string, number[]> = {};
  for (const [name, tensor] of outputs) {
    results[name] = Array.from(await tensor.read());
    tensor.dispose();
  }
  return results;
}
