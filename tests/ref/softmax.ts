/** Float64 reference for kernels/softmax.ts: softmax over rows of `cols`, with temperature, and its backward. */

/** softmax(x/τ) per row. */
export function softmaxRef(x: ArrayLike<number>, cols: number, temperature = 1): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]! / temperature);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += out[r * cols + c] = Math.exp(x[r * cols + c]! / temperature - m);
    for (let c = 0; c < cols; c++) out[r * cols + c]! /= sum;
  }
  return out;
}

/** dx = y∘(dy − Σ y∘dy) per row. */
export function softmaxBackwardRef(y: ArrayLike<number>, dy: ArrayLike<number>, cols: number): Float64Array {
  const dx = new Float64Array(y.length);
  for (let r = 0; r < y.length / cols; r++) {
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += y[r * cols + c]! * dy[r * cols + c]!;
    for (let c = 0; c < cols; c++) dx[r * cols + c] = y[r * cols + c]! * (dy[r * cols + c]! - dot);
  }
  return dx;
}
