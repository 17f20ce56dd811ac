/** Float64 reference for kernels/elementwise.ts: plain loops. */

/** a op b with b repeated over a's leading dimensions (b.length divides a.length). */
export function binaryRef(op: "add" | "mul", a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (v, i) => op === "add" ? v + b[i % b.length]! : v * b[i % b.length]!);
}

/** Column sums of a [rows, cols] array (optionally of the product with `y`). */
export function sumRowsRef(x: ArrayLike<number>, cols: number, y?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(cols);
  for (let i = 0; i < x.length; i++) out[i % cols]! += x[i]! * (y ? y[i]! : 1);
  return out;
}

/** alpha[r]·a + beta[r]·b with r the index along the first dimension. */
export function mixRowsRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  alpha: ArrayLike<number>,
  beta: ArrayLike<number>,
): Float64Array {
  const rowSize = a.length / alpha.length;
  return Float64Array.from(a, (v, i) => {
    const r = Math.floor(i / rowSize);
    return alpha[r]! * v + beta[r]! * b[i]!;
  });
}

/** Rows of `cols` elements where the mask is set (unset with `invert`) become `value`. */
export function maskedFillRef(
  x: ArrayLike<number>,
  mask: ArrayLike<number>,
  cols: number,
  value: number,
  invert = false,
): Float64Array {
  return Float64Array.from(x, (v, i) => ((mask[Math.floor(i / cols)]! !== 0) !== invert ? value : v));
}

/** Concatenation along the last dimension of [rows, widths[k]] arrays. */
export function concatRef(parts: ArrayLike<number>[], widths: number[], rows: number): Float64Array {
  const total = widths.reduce((s, w) => s + w, 0);
  const out = new Float64Array(rows * total);
  let off = 0;
  for (const [k, part] of parts.entries()) {
    const w = widths[k]!;
    for (let r = 0; r < rows; r++) for (let j = 0; j < w; j++) out[r * total + off + j] = part[r * w + j]!;
    off += w;
  }
  return out;
}

/** Columns off … off+width−1 of a [rows, total] array. */
export function columnsRef(x: ArrayLike<number>, total: number, off: number, width: number): Float64Array {
  const rows = x.length / total;
  const out = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) for (let j = 0; j < width; j++) out[r * width + j] = x[r * total + off + j]!;
  return out;
}

/** Σx, Σ|x| and Σx² in float64. */
export function sumsRef(x: ArrayLike<number>): { sum: number; abs: number; squares: number } {
  let sum = 0, abs = 0, squares = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    sum += v;
    abs += Math.abs(v);
    squares += v * v;
  }
  return { sum, abs, squares };
}

/** Index of the first maximum of each row of `cols` elements. */
export function argmaxRef(x: ArrayLike<number>, cols: number): Int32Array {
  const rows = x.length / cols;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (x[r * cols + c]! > x[r * cols + best]!) best = c;
    out[r] = best;
  }
  return out;
}
