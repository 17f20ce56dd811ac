/**
 * attention: fused multi-head self-attention with rotary position embedding (RoPE), forward and backward,
 * for qkv laid out as [B, L, 3D] = [q | k | v], each D = H·hd wide with head h in columns h·hd…(h+1)·hd−1.
 *
 * Math (bench/seed_torch.py `MultiHeadAttention`): q, k rotated on their first `rot` dims (interleaved
 * pairs (x[2p], x[2p+1]) turned by pos·θ_p, θ_p = theta^(−2p/rot)); s = q·kᵀ/√hd; where
 * mask = (i < len) & (j < len) is false, s is FILLED with −1e9 (not −inf, as PyTorch's `masked_fill`), so a
 * padding query row (i ≥ len) has all scores equal and attends uniformly to all L keys; P = softmax(s);
 * out = P·v, heads side by side in [B, L, D].
 *
 * RoPE is applied on load from a table [L, hd/4] of vec4 (cos θ₀, sin θ₀, cos θ₁, sin θ₁) for the two pairs
 * of each vec4 of a head, identity (1, 0) past `rot`; {@linkcode ropeTable} builds it on the host in
 * float64 from float32 angles, exactly as PyTorch forms them (float32 freqs, float32 pos·freq).
 *
 * attention_forward — parallelism: one workgroup (128 invocations) per (b, h, block of 32 query rows);
 * 4 invocations per query row, each keeping the rotated q row and its own output accumulator in registers
 * and running its own online softmax over the keys j ≡ lane (mod 4); K and V pass through workgroup
 * memory in tiles of 16 keys (9.5 KiB in all at hd = 64); the 4 partial (max, sum, output) states of a row are
 * merged at the end. Blocks whose rows are all valid stop at key len (the masked keys' weights are
 * exactly 0 in float32: exp(−1e9 − max) underflows). Saved for backward: the row log-sum-exp
 * lse [B, H, L] (64× smaller than P [B, H, L, L], which is 32 MiB per layer at B=256, H=8, L=64; the
 * backward recomputes s at the cost of one extra 64×64×64 product per head, cheaper than writing and
 * reading P).
 *
 * attention_backward — parallelism: one workgroup (128 invocations) per (b, h); first D_i = dout_i·out_i
 * for all rows (written to the scratch `dsum`), then for each block of 16 keys (K, V in workgroup memory,
 * dk and dv in registers) a loop over blocks of 8 query rows recomputes P = exp(s − lse) and
 * dS = P∘(dP − D)/√hd, accumulates dv += Pᵀ·dout and dk += dSᵀ·q, and adds dS·k into the rows' dq (each
 * dq element always belongs to the same invocation, so its read-modify-write needs no atomics). Masked
 * scores get no gradient; padding rows have P = 1/L and dS = 0. The transpose of RoPE (rotation by −θ)
 * is applied to dq and dk before they are added (+=) into dqkv [B, L, 3D]. Workgroup memory 13.8 KiB
 * at hd = 64.
 *
 * attention_forward_tiled and attention_backward_tiled (kernels/attention_tiled.ts) compute the same
 * functions with register tiles (4×4 and 2×2 scores per invocation; see their builders) and are what the
 * launcher uses where the device allows about 20 KiB of workgroup memory; the two kernels above
 * (kernels/attention_fallback.ts) are the fallback. This module re-exports both and builds the RoPE table.
 *
 * Reference: tests/ref/attention.ts (float64).
 *
 * @module
 */
export { ATTENTION_MAX_HEAD_DIM } from "./_attention.ts";
export { ATTENTION_FORWARD_ROWS, attentionBackwardSpec, attentionForwardSpec } from "./attention_fallback.ts";
export {
  ATTENTION_BACKWARD_KEYS,
  ATTENTION_FORWARD_KEYS,
  ATTENTION_TILED_ROWS,
  attentionBackwardTiledBytes,
  attentionBackwardTiledSpec,
  attentionForwardTiledBytes,
  attentionForwardTiledSpec,
} from "./attention_tiled.ts";

/**
 * The RoPE table the kernels read: for each position and each vec4 of a head (two interleaved pairs),
 * (cos a₀, sin a₀, cos a₁, sin a₁) with a_p = pos·θ_p for pairs p < rot/2 and (1, 0) beyond. The
 * frequencies and angles are rounded to float32 as PyTorch forms them (`1/theta**(arange(0,rot,2)/rot)`
 * and `pos·freq` in float32); cos and sin are then exact (float64, rounded once).
 *
 * @example Usage
 * ```ts
 * import { ropeTable } from "./attention.ts";
 * const t = ropeTable({ seq: 2, headDim: 4, rotaryDim: 2, theta: 10000 });
 * console.log(t.length); // 8: 2 positions × 1 vec4
 * ```
 * @param options seq L, headDim hd (multiple of 4), rotaryDim rot (even, ≤ hd), theta.
 * @returns L·hd floats.
 */
export function ropeTable(
  options: { seq: number; headDim: number; rotaryDim: number; theta: number },
): Float32Array<ArrayBuffer> {
  const { seq, headDim, rotaryDim, theta } = options;
  const f = Math.fround;
  const pairs = headDim / 2;
  const freqs = new Float64Array(rotaryDim / 2);
  for (let p = 0; p < rotaryDim / 2; p++) freqs[p] = f(1 / f(theta ** f((2 * p) / rotaryDim)));
  const table = new Float32Array(seq * headDim);
  for (let pos = 0; pos < seq; pos++) {
    for (let p = 0; p < pairs; p++) {
      const a = p < rotaryDim / 2 ? f(pos * freqs[p]!) : 0;
      table[pos * headDim + 2 * p] = Math.cos(a);
      table[pos * headDim + 2 * p + 1] = Math.sin(a);
    }
  }
  return table;
}
