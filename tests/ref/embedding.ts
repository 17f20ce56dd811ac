/** Float64 reference for kernels/embedding.ts: row gather and its scatter-add. */

/** out[t, e] = table[ids[t], e], zero rows for ids outside [0, vocab). */
export function embeddingRef(
  table: ArrayLike<number>,
  ids: ArrayLike<number>,
  vocab: number,
  cols: number,
): Float64Array {
  const out = new Float64Array(ids.length * cols);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    if (id < 0 || id >= vocab) continue;
    for (let e = 0; e < cols; e++) out[t * cols + e] = table[id * cols + e]!;
  }
  return out;
}

/** dtable[v, e] = Σ_{t : ids[t] = v} dout[t, e]; ids outside [0, vocab) are skipped. */
export function embeddingBackwardRef(
  dout: ArrayLike<number>,
  ids: ArrayLike<number>,
  vocab: number,
  cols: number,
): Float64Array {
  const dtable = new Float64Array(vocab * cols);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    if (id < 0 || id >= vocab) continue;
    for (let e = 0; e < cols; e++) dtable[id * cols + e]! += dout[t * cols + e]!;
  }
  return dtable;
}
