/**
 * Shared pieces of the attention kernels (kernels/attention_fallback.ts, kernels/attention_tiled.ts): the
 * RoPE rotation in WGSL, the head-dim check and the per-head constants.
 *
 * @module
 */

/** Head dims the kernels accept: multiples of 4 from 4 to this. */
export const ATTENTION_MAX_HEAD_DIM = 64;

/** WGSL `rotate` (RoPE on a vec4 of two pairs) and its transpose `rotate_t`. */
export const ROTATE: string = /* wgsl */ `
// Rotates the two interleaved pairs of a vec4 by the angles whose (cos, sin) are in cs: x' = R·x.
fn rotate(x: vec4f, cs: vec4f) -> vec4f {
  return vec4f(x.x * cs.x - x.y * cs.y, x.y * cs.x + x.x * cs.y, x.z * cs.z - x.w * cs.w, x.w * cs.z + x.z * cs.w);
}
// The transpose: rotation by the opposite angles (gradient of rotate with respect to x).
fn rotate_t(g: vec4f, cs: vec4f) -> vec4f {
  return vec4f(g.x * cs.x + g.y * cs.y, g.y * cs.x - g.x * cs.y, g.z * cs.z + g.w * cs.w, g.w * cs.z - g.z * cs.w);
}
`;

/** Throws a RangeError unless the head dim is a multiple of 4 in [4, ATTENTION_MAX_HEAD_DIM]. */
export function checkHeadDim(headDim: number): void {
  if (!Number.isInteger(headDim) || headDim % 4 !== 0 || headDim < 4 || headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(
      `Cannot build attention kernel for head dim ${headDim}: expected a multiple of 4 in [4, ${ATTENTION_MAX_HEAD_DIM}]`,
    );
  }
}

/** The WGSL constants every attention kernel uses: HD4, KS, SCALE and MASKED. */
export function headConstants(headDim: number): string {
  return `const HD4: u32 = ${headDim / 4}u;        // vec4 per head row
const KS: u32 = HD4 + 1u;              // padded vec4 stride of rows in workgroup tiles (no bank conflicts)
const SCALE: f32 = ${1 / Math.sqrt(headDim)};   // 1/sqrt(hd)
const MASKED: f32 = -1e9;              // PyTorch masked_fill value, not -inf: padding rows become uniform`;
}
