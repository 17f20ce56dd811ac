/**
 * Float64 reference for kernels/attention.ts: bench/seed_torch.py's `MultiHeadAttention` (before w_o)
 * restated in plain loops — RoPE on q and k (interleaved pairs on the first `rotaryDim` dims, angles
 * formed in float32 as PyTorch forms them), scores q·kᵀ/√hd, mask (i < len) & (j < len) filled with
 * −1e9, softmax, ·v — and its backward (masked scores get no gradient).
 */

/** Sizes of one reference call; `rotaryDim` is the effective one (≤ hd, even). */
export interface AttentionDims {
  B: number;
  L: number;
  H: number;
  hd: number;
  rotaryDim: number;
  theta: number;
}

/** One test case: sizes, the rotary dims asked for (the op's default when omitted) and each sequence's length. */
export interface AttentionCase {
  B: number;
  L: number;
  H: number;
  hd: number;
  rotaryDim?: number;
  lengths: number[];
}

/** The reference sizes of a case, with the op's defaults: 32 rotary dims (at most hd), theta 10000. */
export function caseDims(c: AttentionCase): AttentionDims {
  return { B: c.B, L: c.L, H: c.H, hd: c.hd, rotaryDim: Math.min(c.rotaryDim ?? 32, c.hd), theta: 10000 };
}

/** cos/sin of the RoPE angle of (pos, pair): angles in float32 as torch forms them, cos/sin in float64. */
function angles(d: AttentionDims): { cos: Float64Array; sin: Float64Array } {
  const f = Math.fround;
  const half = d.rotaryDim / 2;
  const cos = new Float64Array(d.L * half);
  const sin = new Float64Array(d.L * half);
  for (let p = 0; p < half; p++) {
    const freq = f(1 / f(d.theta ** f((2 * p) / d.rotaryDim)));
    for (let pos = 0; pos < d.L; pos++) {
      const a = f(pos * freq);
      cos[pos * half + p] = Math.cos(a);
      sin[pos * half + p] = Math.sin(a);
    }
  }
  return { cos, sin };
}

interface Head {
  q: Float64Array[];
  k: Float64Array[];
  v: Float64Array[];
  len: number;
}

/** Rotated q, k and plain v of head h of example b, each L rows of hd. */
function head(
  qkv: ArrayLike<number>,
  lengths: ArrayLike<number>,
  d: AttentionDims,
  b: number,
  h: number,
): Head {
  const D = d.H * d.hd;
  const { cos, sin } = angles(d);
  const half = d.rotaryDim / 2;
  const take = (part: number, i: number, rotate: boolean) => {
    const x = new Float64Array(d.hd);
    for (let c = 0; c < d.hd; c++) x[c] = qkv[(b * d.L + i) * 3 * D + part * D + h * d.hd + c]!;
    if (!rotate) return x;
    const y = Float64Array.from(x);
    for (let p = 0; p < half; p++) {
      const c = cos[i * half + p]!, s = sin[i * half + p]!;
      y[2 * p] = x[2 * p]! * c - x[2 * p + 1]! * s;
      y[2 * p + 1] = x[2 * p + 1]! * c + x[2 * p]! * s;
    }
    return y;
  };
  const rows = (part: number, rotate: boolean) =>
    Array.from({ length: d.L }, (_, i) => take(part, i, rotate));
  return { q: rows(0, true), k: rows(1, true), v: rows(2, false), len: Math.min(lengths[b]!, d.L) };
}

/** P [L][L] of one head: masked scores −1e9, softmax per row. */
function probs(x: Head, d: AttentionDims): Float64Array[] {
  const scale = 1 / Math.sqrt(d.hd);
  return x.q.map((qi, i) => {
    const s = new Float64Array(d.L);
    for (let j = 0; j < d.L; j++) {
      let acc = 0;
      for (let c = 0; c < d.hd; c++) acc += qi[c]! * x.k[j]![c]!;
      s[j] = i < x.len && j < x.len ? acc * scale : -1e9;
    }
    const m = Math.max(...s);
    let sum = 0;
    for (let j = 0; j < d.L; j++) sum += s[j] = Math.exp(s[j]! - m);
    return s.map((e) => e / sum);
  });
}

/**
 * Forward: out [B, L, D] from qkv [B, L, 3D] and lengths [B].
 *
 * @returns out, row-major, float64.
 */
export function attentionRef(
  qkv: ArrayLike<number>,
  lengths: ArrayLike<number>,
  d: AttentionDims,
): Float64Array {
  const D = d.H * d.hd;
  const out = new Float64Array(d.B * d.L * D);
  for (let b = 0; b < d.B; b++) {
    for (let h = 0; h < d.H; h++) {
      const x = head(qkv, lengths, d, b, h);
      const p = probs(x, d);
      for (let i = 0; i < d.L; i++) {
        for (let c = 0; c < d.hd; c++) {
          let acc = 0;
          for (let j = 0; j < d.L; j++) acc += p[i]![j]! * x.v[j]![c]!;
          out[(b * d.L + i) * D + h * d.hd + c] = acc;
        }
      }
    }
  }
  return out;
}

/**
 * Backward: dqkv [B, L, 3D] from dout [B, L, D] (gradients through ·v, softmax, the −1e9 fill, the
 * scaling and RoPE's rotation).
 *
 * @returns dqkv, row-major, float64.
 */
export function attentionBackwardRef(
  qkv: ArrayLike<number>,
  lengths: ArrayLike<number>,
  dout: ArrayLike<number>,
  d: AttentionDims,
): Float64Array {
  const D = d.H * d.hd;
  const scale = 1 / Math.sqrt(d.hd);
  const { cos, sin } = angles(d);
  const half = d.rotaryDim / 2;
  const dqkv = new Float64Array(d.B * d.L * 3 * D);
  for (let b = 0; b < d.B; b++) {
    for (let h = 0; h < d.H; h++) {
      const x = head(qkv, lengths, d, b, h);
      const p = probs(x, d);
      const g = Array.from({ length: d.L }, (_, i) => {
        const row = new Float64Array(d.hd);
        for (let c = 0; c < d.hd; c++) row[c] = dout[(b * d.L + i) * D + h * d.hd + c]!;
        return row;
      });
      const dq = Array.from({ length: d.L }, () => new Float64Array(d.hd));
      const dk = Array.from({ length: d.L }, () => new Float64Array(d.hd));
      const dv = Array.from({ length: d.L }, () => new Float64Array(d.hd));
      for (let i = 0; i < d.L; i++) {
        const dp = new Float64Array(d.L);
        let rowDot = 0;
        for (let j = 0; j < d.L; j++) {
          for (let c = 0; c < d.hd; c++) {
            dp[j] = dp[j]! + g[i]![c]! * x.v[j]![c]!;
            dv[j]![c] = dv[j]![c]! + p[i]![j]! * g[i]![c]!;
          }
          rowDot += p[i]![j]! * dp[j]!;
        }
        for (let j = 0; j < d.L; j++) {
          if (!(i < x.len && j < x.len)) continue; // masked_fill: no gradient to the score
          const ds = p[i]![j]! * (dp[j]! - rowDot) * scale;
          for (let c = 0; c < d.hd; c++) {
            dq[i]![c] = dq[i]![c]! + ds * x.k[j]![c]!;
            dk[j]![c] = dk[j]![c]! + ds * x.q[i]![c]!;
          }
        }
      }
      const unrotate = (y: Float64Array, pos: number) => {
        const z = Float64Array.from(y);
        for (let q = 0; q < half; q++) {
          const c = cos[pos * half + q]!, s = sin[pos * half + q]!;
          z[2 * q] = y[2 * q]! * c + y[2 * q + 1]! * s;
          z[2 * q + 1] = y[2 * q + 1]! * c - y[2 * q]! * s;
        }
        return z;
      };
      for (let i = 0; i < d.L; i++) {
        const parts = [unrotate(dq[i]!, i), unrotate(dk[i]!, i), dv[i]!];
        for (const [part, row] of parts.entries()) {
          for (let c = 0; c < d.hd; c++) dqkv[(b * d.L + i) * 3 * D + part * D + h * d.hd + c] = row[c]!;
        }
      }
    }
  }
  return dqkv;
}
