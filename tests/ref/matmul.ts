/** Float64 reference for kernels/matmul.ts: plain loops over the stored layouts. */
import { erf, geluGradRef } from "./gelu.ts";

/** Sizes and options of one reference product. */
export interface MatmulRefOptions {
  /** Batch entries (A, B and C each hold `batch` matrices back to back). */
  batch?: number;
  /** Rows of C. */
  M: number;
  /** Columns of C. */
  N: number;
  /** The reduced dimension. */
  K: number;
  /** A stored [K, M]. */
  transA?: boolean;
  /** B stored [N, K]. */
  transB?: boolean;
  /** Per-column bias (N). */
  bias?: ArrayLike<number>;
  /** Apply GELU (erf form) after the bias. */
  gelu?: boolean;
  /** Multiply the product by GELU' of these pre-activations (M·N per batch entry), GELU's backward. */
  geluGrad?: ArrayLike<number>;
  /** Added to the result (C += …). */
  initial?: ArrayLike<number>;
}

/** The sizes and layouts of a product, without its epilogue. */
export type MatmulSizes = Pick<MatmulRefOptions, "batch" | "M" | "N" | "K" | "transA" | "transB">;

/** C = initial + act(op(A)·op(B) + bias) (· GELU'(geluGrad)); also returns the pre-activation. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  o: MatmulRefOptions,
): { out: Float64Array; pre: Float64Array } {
  const { batch = 1, M, N, K, transA = false, transB = false } = o;
  const out = new Float64Array(batch * M * N);
  const pre = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = z * M * K, bo = z * K * N, co = z * M * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ao + (transA ? k * M + m : m * K + k)]!;
          const bv = b[bo + (transB ? n * K + k : k * N + n)]!;
          s += av * bv;
        }
        if (o.bias) s += o.bias[n]!;
        pre[co + m * N + n] = s;
        let v = o.gelu ? 0.5 * s * (1 + erf(s / Math.SQRT2)) : s;
        if (o.geluGrad) v *= geluGradRef(o.geluGrad[co + m * N + n]!);
        if (o.initial) v += o.initial[co + m * N + n]!;
        out[co + m * N + n] = v;
      }
    }
  }
  return { out, pre };
}

/** Column sums of a [rows, cols] matrix. */
export function columnSumRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c]! += x[r * cols + c]!;
  return out;
}
