/**
 * Shared by the matmul tests: a product whose A is given as split-K partial products with a bias and GELU
 * (the FFN's down-projection in sampling), run fused (the kernel sums, biases and activates A as it loads
 * it) and unfused (`matmul_reduce_bias_gelu` writes A, then the product reads it), so that tests can
 * compare the two bit for bit on any engine.
 */
import assert from "node:assert/strict";
import { randn } from "../_check.ts";
import { matmulReduceKernel } from "../../kernels/matmul.ts";
import { type Engine, grid1d } from "../../src/tensor/engine.ts";
import { matmulInto, type MatmulIntoOptions, matmulResidual } from "../../src/tensor/ops/matmul.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

/** A's partial products [splits, M, K] and bias [K], B [N, K] (transposed) and the product's bias [N]. */
export interface SplitProductCase {
  M: number;
  N: number;
  K: number;
  splits: number;
  /** The down-projection's own options (tile, K-splits, accumulate); `transB` and its bias are set. */
  down?: Pick<MatmulIntoOptions, "tile" | "splitK" | "accumulate">;
  /** Through `matmulResidual`: compares the partial products it leaves (or the sums it adds). */
  residual?: boolean;
}

const REDUCE_BIAS_GELU = matmulReduceKernel(false, true, { gelu: true });

/**
 * Runs one case both ways on `engine` and returns both results as read back (the residual stream, then
 * the partial products `matmulResidual` left, if any).
 *
 * @param engine The engine (f32 or mixed precision).
 * @param c The sizes and the down-projection's options.
 * @param seed Seed of the random operands.
 * @returns The fused and the unfused results.
 */
export async function fusedAndUnfused(
  engine: Engine,
  c: SplitProductCase,
  seed: number,
): Promise<{ fused: Float32Array; unfused: Float32Array }> {
  const { M, N, K, splits } = c;
  // Each partial at its own scale, so that adding them in another order rounds differently.
  const part = new Float32Array(splits * M * K);
  for (let s = 0; s < splits; s++) part.set(randn(M * K, seed + s, 0.3 * (s + 1)), s * M * K);
  const aBias = randn(K, seed + 100, 0.5), b = randn(N * K, seed + 101, 0.05), bias = randn(N, seed + 102);
  const prior = randn(M * N, seed + 103);
  return await engine.tidy(async () => {
    const partT = engine.tensor(part, [splits, M, K]), aBiasT = engine.tensor(aBias, [K]);
    const bT = engine.tensor(b, [N, K]), biasT = engine.tensor(bias, [N]);
    const run = async (a: Tensor | { part: Tensor; splits: number; bias: Tensor; activation: "gelu" }) => {
      const out = engine.tensor(prior, [M, N]);
      if (c.residual) {
        const left = matmulResidual(out, a, bT, { transB: true, bias: biasT });
        const sums = await out.read() as Float32Array;
        return left ? Float32Array.from([...sums, ...(await left.part.read() as Float32Array)]) : sums;
      }
      matmulInto(out, a, bT, { ...c.down, transB: true, bias: biasT });
      return await out.read() as Float32Array;
    };
    const fused = await run({ part: partT, splits, bias: aBiasT, activation: "gelu" });
    const hidden = engine.empty([M, K]);
    const n = M * K;
    engine.runtime.dispatch(
      REDUCE_BIAS_GELU,
      { part: partT, bias: aBiasT, out: hidden },
      { n, mn: n, splits, cols: K },
      grid1d(Math.ceil(n / 256)),
    );
    return { fused, unfused: await run(hidden) };
  });
}

/**
 * Asserts that two arrays hold the same f32 values to the bit, naming the first element that differs.
 *
 * @param got The values computed.
 * @param want The values expected.
 * @param name What is compared, for the message.
 */
export function assertSameBits(got: Float32Array, want: Float32Array, name: string): void {
  assert.equal(got.length, want.length, `${name}: length`);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const i = g.findIndex((bits, j) => bits !== w[j]);
  assert.equal(i, -1, `${name}: element ${i} is ${got[i]}, expected ${want[i]}`);
}
