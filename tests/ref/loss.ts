/** Float64 reference for kernels/loss.ts: cross-entropy with its gradient, and masked MSE. */

/** Per-row cross-entropy outputs and the gradient w.r.t. the logits. */
export interface CrossEntropyRef {
  /** [N]: w_i·(logsumexp − logit[target]), 0 for ignored rows. */
  loss: Float64Array;
  /** [N]: w_i·[argmax = target] (first maximum wins). */
  correct: Float64Array;
  /** [N·V]: w_i·gradScale·(softmax − onehot), 0 for ignored rows. */
  grad: Float64Array;
}

/** Cross-entropy over `rows` rows of `cols` logits; rows with w = 0 or target ∉ [0, cols) are ignored. */
export function crossEntropyRef(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  weights: ArrayLike<number>,
  rows: number,
  cols: number,
  gradScale = 1,
): CrossEntropyRef {
  const loss = new Float64Array(rows);
  const correct = new Float64Array(rows);
  const grad = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const w = weights[i]!;
    const t = targets[i]!;
    if (w === 0 || t < 0 || t >= cols) continue;
    let m = -Infinity;
    let arg = -1;
    for (let j = 0; j < cols; j++) {
      const x = logits[i * cols + j]!;
      if (x > m) {
        m = x;
        arg = j;
      }
    }
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(logits[i * cols + j]! - m);
    const lse = m + Math.log(s);
    loss[i] = w * (lse - logits[i * cols + t]!);
    correct[i] = arg === t ? w : 0;
    for (let j = 0; j < cols; j++) {
      const p = Math.exp(logits[i * cols + j]! - lse);
      grad[i * cols + j] = w * gradScale * (p - (j === t ? 1 : 0));
    }
  }
  return { loss, correct, grad };
}

/** Masked MSE value Σ_i w_i·mean_e (est − target)² and its gradient w.r.t. est (upstream gradient 1). */
export function maskedMseRef(
  est: ArrayLike<number>,
  target: ArrayLike<number>,
  weights: ArrayLike<number>,
  rows: number,
  cols: number,
): { value: number; grad: Float64Array } {
  let value = 0;
  const grad = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const w = weights[i]!;
    if (w === 0) continue;
    for (let e = 0; e < cols; e++) {
      const d = est[i * cols + e]! - target[i * cols + e]!;
      value += (w * d * d) / cols;
      grad[i * cols + e] = (2 * w * d) / cols;
    }
  }
  return { value, grad };
}
