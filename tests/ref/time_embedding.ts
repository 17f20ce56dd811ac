/** Float64 reference for kernels/time_embedding.ts. */

/** [sin(2π t w), cos(2π t w)] per batch row. */
export function timeEmbeddingRef(t: ArrayLike<number>, w: ArrayLike<number>): Float64Array {
  const F = w.length;
  const out = new Float64Array(t.length * 2 * F);
  for (let b = 0; b < t.length; b++) {
    for (let k = 0; k < F; k++) {
      const f = 2 * Math.PI * t[b]! * w[k]!;
      out[b * 2 * F + k] = Math.sin(f);
      out[b * 2 * F + F + k] = Math.cos(f);
    }
  }
  return out;
}

/** dw = Σ_b 2π t_b (dsin·cos f − dcos·sin f). */
export function timeEmbeddingBackwardRef(
  t: ArrayLike<number>,
  w: ArrayLike<number>,
  dout: ArrayLike<number>,
): Float64Array {
  const F = w.length;
  const dw = new Float64Array(F);
  for (let b = 0; b < t.length; b++) {
    for (let k = 0; k < F; k++) {
      const s = 2 * Math.PI * t[b]!;
      const f = s * w[k]!;
      dw[k]! += s * (dout[b * 2 * F + k]! * Math.cos(f) - dout[b * 2 * F + F + k]! * Math.sin(f));
    }
  }
  return dw;
}
