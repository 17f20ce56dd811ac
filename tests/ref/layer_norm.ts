/** Float64 reference for kernels/layer_norm.ts: plain loops over rows of C columns. */

/** Per-row statistics: mean and rstd = 1/√(biased var + eps). */
export function layerNormStatsRef(
  x: ArrayLike<number>,
  cols: number,
  eps: number,
): { mean: Float64Array; rstd: Float64Array } {
  const rows = x.length / cols;
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c]!;
    const m = s / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c]! - m) ** 2;
    mean[r] = m;
    rstd[r] = 1 / Math.sqrt(v / cols + eps);
  }
  return { mean, rstd };
}

/**
 * out[r,c] = x̂[r,c]·w(r,c) + b(r,c), where the scale and shift of row r are looked up by `scaleOf`
 * and `shiftOf` (1 and 0 when absent).
 */
export function layerNormRef(
  x: ArrayLike<number>,
  cols: number,
  options: {
    eps?: number;
    scaleOf?: (row: number, col: number) => number;
    shiftOf?: (row: number, col: number) => number;
  } = {},
): Float64Array {
  const { eps = 1e-5, scaleOf = () => 1, shiftOf = () => 0 } = options;
  const { mean, rstd } = layerNormStatsRef(x, cols, eps);
  const out = new Float64Array(x.length);
  for (let r = 0; r < mean.length; r++) {
    for (let c = 0; c < cols; c++) {
      const xh = (x[r * cols + c]! - mean[r]!) * rstd[r]!;
      out[r * cols + c] = xh * scaleOf(r, c) + shiftOf(r, c);
    }
  }
  return out;
}

/**
 * Backward of {@linkcode layerNormRef}: dx, and per row the products dout·x̂ and dout (so that callers
 * sum them over whichever rows share a parameter).
 */
export function layerNormBackwardRef(
  x: ArrayLike<number>,
  dout: ArrayLike<number>,
  cols: number,
  options: { eps?: number; scaleOf?: (row: number, col: number) => number } = {},
): { dx: Float64Array; doutXhat: Float64Array } {
  const { eps = 1e-5, scaleOf = () => 1 } = options;
  const { mean, rstd } = layerNormStatsRef(x, cols, eps);
  const dx = new Float64Array(x.length);
  const doutXhat = new Float64Array(x.length);
  for (let r = 0; r < mean.length; r++) {
    let sg = 0, sgx = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const xh = (x[i]! - mean[r]!) * rstd[r]!;
      const g = dout[i]! * scaleOf(r, c);
      sg += g;
      sgx += g * xh;
      doutXhat[i] = dout[i]! * xh;
    }
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const xh = (x[i]! - mean[r]!) * rstd[r]!;
      const g = dout[i]! * scaleOf(r, c);
      dx[i] = rstd[r]! * (g - sg / cols - xh * sgx / cols);
    }
  }
  return { dx, doutXhat };
}

/** Sums a [rows, cols] array over the rows of each group of `groupRows` → [rows/groupRows, cols]. */
export function sumRowGroupsRef(a: ArrayLike<number>, cols: number, groupRows: number): Float64Array {
  const rows = a.length / cols;
  const out = new Float64Array((rows / groupRows) * cols);
  for (let r = 0; r < rows; r++) {
    const g = Math.floor(r / groupRows);
    for (let c = 0; c < cols; c++) out[g * cols + c]! += a[r * cols + c]!;
  }
  return out;
}
