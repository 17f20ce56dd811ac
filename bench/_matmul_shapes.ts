/** The matrix products of the model (B·L = 256·64 = 16384 rows; D = 512, FFN 2048, V = 8000), for the matmul benchmarks. */
/** One product: C is M×N, K reduced; A [M,K] or [K,M] (transA), B [K,N] or [N,K] (transB). */
export interface MatmulShape {
  name: string;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
}

/** The model's products (forward NT, backward NN and TN) and a square reference. */
export const MATMUL_SHAPES: MatmulShape[] = [
  { name: "square", M: 4096, N: 4096, K: 4096 },
  { name: "attn qkv/out fwd (NT)", M: 16384, N: 512, K: 512, transB: true },
  { name: "ffn up fwd (NT)", M: 16384, N: 2048, K: 512, transB: true },
  { name: "ffn down fwd (NT)", M: 16384, N: 512, K: 2048, transB: true },
  { name: "lm_head fwd (NT)", M: 16384, N: 8000, K: 512, transB: true },
  { name: "ffn down dx (NN)", M: 16384, N: 2048, K: 512 },
  { name: "ffn up dx (NN)", M: 16384, N: 512, K: 2048 },
  { name: "dW 512x512 (TN)", M: 512, N: 512, K: 16384, transA: true },
  { name: "dW ffn up (TN)", M: 2048, N: 512, K: 16384, transA: true },
  { name: "dW lm_head (TN)", M: 8000, N: 512, K: 16384, transA: true },
  // Sampling one sequence: 64 rows.
  { name: "b1 qkv (NT)", M: 64, N: 1536, K: 512, transB: true },
  { name: "b1 attn out (NT)", M: 64, N: 512, K: 512, transB: true },
  { name: "b1 ffn up (NT)", M: 64, N: 2048, K: 512, transB: true },
  { name: "b1 ffn down (NT)", M: 64, N: 512, K: 2048, transB: true },
  // Sampling 8 sequences: 512 rows.
  { name: "b8 qkv (NT)", M: 512, N: 1536, K: 512, transB: true },
  { name: "b8 attn out (NT)", M: 512, N: 512, K: 512, transB: true },
  { name: "b8 ffn up (NT)", M: 512, N: 2048, K: 512, transB: true },
  { name: "b8 ffn down (NT)", M: 512, N: 512, K: 2048, transB: true },
  // Sampling 64 sequences: 4096 rows.
  { name: "b64 qkv (NT)", M: 4096, N: 1536, K: 512, transB: true },
  { name: "b64 attn out (NT)", M: 4096, N: 512, K: 512, transB: true },
  { name: "b64 ffn up (NT)", M: 4096, N: 2048, K: 512, transB: true },
  { name: "b64 ffn down (NT)", M: 4096, N: 512, K: 2048, transB: true },
];

/** The f32 values rounded to f16 (what tensor cores multiply), kept as f32. */
export const toF16 = (x: Float32Array): Float32Array => Float32Array.from(new Float16Array(x));

/** C[m, n] in float64 from A and B in their stored layouts, and the sum of its terms' magnitudes. */
export function refEntry(
  a: Float32Array,
  b: Float32Array,
  s: MatmulShape,
  m: number,
  n: number,
): { sum: number; terms: number } {
  let sum = 0, terms = 0;
  for (let k = 0; k < s.K; k++) {
    const product = a[s.transA ? k * s.M + m : m * s.K + k]! * b[s.transB ? n * s.K + k : k * s.N + n]!;
    sum += product;
    terms += Math.abs(product);
  }
  return { sum, terms };
}

/**
 * The worst error an f32 sum of exact products may show, in units of √K·2⁻²⁴·Σ|terms| (the bound of the
 * tests, tests/kernels/matmul_mixed_test.ts): tensor cores' f32 accumulation does not round to nearest, so
 * its error grows with K faster than a SIMT kernel's.
 */
export const SAMPLED_ERROR_BOUND = 8;

/**
 * The worst error, over 32 entries of C's first 64 rows (`top`, read back), against float64 of the
 * operands `a` and `b`, in units of √K·2⁻²⁴·Σ|terms| (compare with {@linkcode SAMPLED_ERROR_BOUND}); entry 0
 * is the last column (the partial tile at N's edge). Infinity where an entry is not finite.
 */
export function sampledError(top: Float32Array, a: Float32Array, b: Float32Array, s: MatmulShape): number {
  let worst = 0;
  for (let j = 0; j < 32; j++) {
    const m = (j * 37) % Math.min(64, s.M), n = j === 0 ? s.N - 1 : (j * 7919) % s.N;
    const v = top[m * s.N + n]!;
    const { sum, terms } = refEntry(a, b, s, m, n);
    const unit = Math.sqrt(s.K) * 2 ** -24 * terms + 1e-30;
    worst = Math.max(worst, Number.isFinite(v) ? Math.abs(v - sum) / unit : Infinity);
  }
  return worst;
}

/** "ok" for an error of {@linkcode sampledError} within {@linkcode SAMPLED_ERROR_BOUND}, else "BAD" and the error. */
export function sampledVerdict(error: number): string {
  return error < SAMPLED_ERROR_BOUND ? "ok" : `BAD ${error.toExponential(1)}`;
}
