/**
 * attention_fallback: the attention kernels for devices that cannot give the tiled kernels about 20 KiB
 * of workgroup memory — `attention_forward` (4 invocations per query row, each with its own online
 * softmax) and `attention_backward` (one workgroup per (b, h)); see kernels/attention.ts for the math,
 * the layouts and their parallelism.
 *
 * @module
 */
import { type KernelSpec, kernelVariants } from "../src/gpu/kernel.ts";
import {
  attentionEntry,
  attentionKernel,
  BACKWARD_BLOCKS,
  BACKWARD_IO,
  checkHeadDim,
  FORWARD_IO,
  keyValueLoad,
} from "./_attention.ts";

/** Query rows per workgroup in attention_forward. */
export const ATTENTION_FORWARD_ROWS = 32;

/**
 * The forward kernel for one head dim: out [B, L, D] and lse [B, H, L] from qkv [B, L, 3D], lengths [B]
 * (i32) and the RoPE table [L, hd/4] (vec4). Grid: B·H·ceil(L/32) workgroups, folded with `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { attentionForwardSpec } from "./attention_fallback.ts";
 * console.log(attentionForwardSpec(64).name); // "attention_forward"
 * ```
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @param parts Read qkv as split-K partial products, summed on load (see `attentionKernel`).
 * @returns The kernel spec (the same object for the same head dim and `parts`).
 * @throws {RangeError} If the head dim is not supported.
 */
export function attentionForwardSpec(headDim: number, parts = false): KernelSpec {
  checkHeadDim(headDim);
  return forwardVariants({ headDim, parts });
}

const forwardVariants = kernelVariants(
  ({ headDim, parts }: { headDim: number; parts: boolean }): KernelSpec => {
    return attentionKernel(
      "attention_forward",
      FORWARD_IO,
      headDim,
      /* wgsl */ `
const TQ: u32 = ${ATTENTION_FORWARD_ROWS}u;   // query rows per workgroup
const LANES: u32 = 4u;                // invocations per query row; lane c takes keys j = c (mod 4)
const TK: u32 = 16u;                  // keys per workgroup tile
const KPL: u32 = TK / LANES;          // keys per lane per tile
const WG: u32 = TQ * LANES;
const EXCLUDED: f32 = -3.0e38;        // keys past the loop end (not masked: they take no part at all)

// K tile at [0, TK·KS), V tile at [TK·KS, 2·TK·KS); reused at the end to merge the lanes' outputs.
var<workgroup> tile: array<vec4f, 2u * TK * KS>;
var<workgroup> stats: array<vec2f, WG>;
${attentionEntry("attention_forward", ATTENTION_FORWARD_ROWS * 4, "forward")}
  let row = tid / LANES;
  let lane = tid % LANES;
  let i = qb * TQ + row;

  var q: array<vec4f, HD4>;
  var o: array<vec4f, HD4>;
  let qbase = (b * L + min(i, L - 1u)) * stride + h * HD4;
  for (var d4 = 0u; d4 < HD4; d4++) {
    q[d4] = select(vec4f(0.0), rotate(qkv[qbase + d4], rope[min(i, L - 1u) * HD4 + d4]), i < L);
    o[d4] = vec4f(0.0);
  }
  let row_ok = i < len;
  // All keys when the block holds a padding row (it attends to every key), else only the first len.
  let kend = select(len, L, min(qb * TQ + TQ, L) > len);
  var m = EXCLUDED;
  var l = 0.0;
  for (var j0 = 0u; j0 < kend; j0 += TK) {
    workgroupBarrier();
    for (var e = tid; e < TK * HD4; e += WG) {
      let r = e / HD4;
      let d4 = e % HD4;
      let j = j0 + r;
      ${keyValueLoad("      ")}
      tile[r * KS + d4] = kx;
      tile[TK * KS + r * KS + d4] = vx;
    }
    workgroupBarrier();
    var s: array<f32, KPL>;
    var mt = m;
    for (var t = 0u; t < KPL; t++) {
      let r = lane + t * LANES;
      let j = j0 + r;
      var acc = 0.0;
      for (var d4 = 0u; d4 < HD4; d4++) {
        acc += dot(q[d4], tile[r * KS + d4]);
      }
      var sc = select(MASKED, acc * SCALE, row_ok && j < len);
      if (j >= kend) { sc = EXCLUDED; }
      s[t] = sc;
      mt = max(mt, sc);
    }
    let alpha = exp(m - mt);
    m = mt;
    l *= alpha;
    for (var d4 = 0u; d4 < HD4; d4++) { o[d4] *= alpha; }
    for (var t = 0u; t < KPL; t++) {
      let r = lane + t * LANES;
      if (j0 + r < kend) {
        let p = exp(s[t] - m);
        l += p;
        for (var d4 = 0u; d4 < HD4; d4++) {
          o[d4] += p * tile[TK * KS + r * KS + d4];
        }
      }
    }
  }

  // Merge the LANES online-softmax states of each row: weights exp(m_c − max)/total.
  workgroupBarrier();
  stats[tid] = vec2f(m, l);
  workgroupBarrier();
  let first = row * LANES;
  var mx = stats[first].x;
  for (var c = 1u; c < LANES; c++) { mx = max(mx, stats[first + c].x); }
  var total = 0.0;
  for (var c = 0u; c < LANES; c++) { total += stats[first + c].y * exp(stats[first + c].x - mx); }
  let w = exp(m - mx) / total;
  for (var c = 0u; c < LANES; c++) {
    if (lane == c) {
      for (var d4 = 0u; d4 < HD4; d4++) {
        let v = o[d4] * w;
        tile[row * HD4 + d4] = select(v, tile[row * HD4 + d4] + v, c > 0u);
      }
    }
    workgroupBarrier();
  }
  for (var e = tid; e < TQ * HD4; e += WG) {
    let ii = qb * TQ + e / HD4;
    if (ii < L) { out[(b * L + ii) * H * HD4 + h * HD4 + e % HD4] = tile[e]; }
  }
  if (lane == 0u && i < L) { lse[bh * L + i] = mx + log(total); }
}
`,
      parts,
    );
  },
);

/**
 * The backward kernel for one head dim: dqkv [B, L, 3D] += the gradients of q, k, v (through RoPE) from
 * dout [B, L, D], given qkv, lengths, the RoPE table, the forward's out and lse; `dsum` [B, H, L] is
 * scratch (D_i = dout_i·out_i). Grid: B·H workgroups, folded with `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { attentionBackwardSpec } from "./attention_fallback.ts";
 * console.log(attentionBackwardSpec(64).writes); // ["dqkv", "dsum"]
 * ```
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @returns The kernel spec (the same object for the same head dim).
 * @throws {RangeError} If the head dim is not supported.
 */
export function attentionBackwardSpec(headDim: number): KernelSpec {
  checkHeadDim(headDim);
  return backwardVariants(headDim);
}

const backwardVariants = kernelVariants((headDim: number): KernelSpec => {
  return attentionKernel(
    "attention_backward",
    BACKWARD_IO,
    headDim,
    /* wgsl */ `
const TK: u32 = 16u;                  // keys per block (dk, dv in registers)
const TQ: u32 = 8u;                   // query rows per inner block
const WG: u32 = TQ * TK;              // one (row, key) score per invocation
const NKV: u32 = (TK * HD4 + WG - 1u) / WG;   // dk, dv vec4 per invocation
const NQ: u32 = (TQ * HD4 + WG - 1u) / WG;    // dq vec4 per invocation

var<workgroup> kt: array<vec4f, TK * KS>;   // rotated k of the key block
var<workgroup> vt: array<vec4f, TK * KS>;
var<workgroup> qt: array<vec4f, TQ * KS>;   // rotated q of the query block
var<workgroup> gt: array<vec4f, TQ * KS>;   // dout of the query block
var<workgroup> pt: array<f32, WG>;          // P[row][key]
var<workgroup> st: array<f32, WG>;          // dS[row][key] / sqrt(hd)
var<workgroup> rs: array<vec2f, TQ>;        // (lse, D) per row
${attentionEntry("attention_backward", 8 * 16, "backward")}

${BACKWARD_BLOCKS}
    for (var e = tid; e < TK * HD4; e += WG) {
      let c = e / HD4;
      let d4 = e % HD4;
      let j = j0 + c;
      ${keyValueLoad("      ")}
      kt[c * KS + d4] = kx;
      vt[c * KS + d4] = vx;
    }
    var dk: array<vec4f, NKV>;
    var dv: array<vec4f, NKV>;
    for (var u = 0u; u < NKV; u++) {
      dk[u] = vec4f(0.0);
      dv[u] = vec4f(0.0);
    }
    for (var i0 = i_start; i0 < L; i0 += TQ) {
      workgroupBarrier();
      for (var e = tid; e < TQ * HD4; e += WG) {
        let r = e / HD4;
        let d4 = e % HD4;
        let i = i0 + r;
        var qx = vec4f(0.0);
        var gx = vec4f(0.0);
        if (i < L) {
          qx = rotate(qkv[(b * L + i) * stride + h * HD4 + d4], rope[i * HD4 + d4]);
          gx = dout[(b * L + i) * ostride + h * HD4 + d4];
        }
        qt[r * KS + d4] = qx;
        gt[r * KS + d4] = gx;
      }
      if (tid < TQ) {
        let i = i0 + tid;
        rs[tid] = select(vec2f(0.0), vec2f(lse[g * L + min(i, L - 1u)], dsum[g * L + min(i, L - 1u)]), i < L);
      }
      // Fetch this invocation's dq elements early; the same invocation adds to them for every key block.
      var dq: array<vec4f, NQ>;
      for (var u = 0u; u < NQ; u++) {
        let e = tid + u * WG;
        let i = i0 + e / HD4;
        dq[u] = vec4f(0.0);
        if (keys_valid && e < TQ * HD4 && i < len) {
          dq[u] = dqkv[(b * L + i) * stride + h * HD4 + e % HD4];
        }
      }
      workgroupBarrier();
      {
        let r = tid / TK;
        let c = tid % TK;
        let i = i0 + r;
        let j = j0 + c;
        var sdot = 0.0;
        var pdot = 0.0;
        for (var d4 = 0u; d4 < HD4; d4++) {
          sdot += dot(qt[r * KS + d4], kt[c * KS + d4]);
          pdot += dot(gt[r * KS + d4], vt[c * KS + d4]);
        }
        var p = 0.0;
        var ds = 0.0;
        if (i < L && j < L) {
          if (i >= len) {
            p = inv_l;                     // padding row: uniform over all L keys, no gradient to s
          } else if (j < len) {
            p = exp(sdot * SCALE - rs[r].x);
            ds = p * (pdot - rs[r].y) * SCALE;
          }
        }
        pt[tid] = p;
        st[tid] = ds;
      }
      workgroupBarrier();
      for (var u = 0u; u < NKV; u++) {
        let e = tid + u * WG;
        if (e < TK * HD4) {
          let c = e / HD4;
          let d4 = e % HD4;
          var av = dv[u];
          var ak = dk[u];
          for (var r = 0u; r < TQ; r++) {
            av += pt[r * TK + c] * gt[r * KS + d4];
            ak += st[r * TK + c] * qt[r * KS + d4];
          }
          dv[u] = av;
          dk[u] = ak;
        }
      }
      if (keys_valid) {
        for (var u = 0u; u < NQ; u++) {
          let e = tid + u * WG;
          let r = e / HD4;
          let d4 = e % HD4;
          let i = i0 + r;
          if (e < TQ * HD4 && i < len) {
            var a = vec4f(0.0);
            for (var c = 0u; c < TK; c++) { a += st[r * TK + c] * kt[c * KS + d4]; }
            dqkv[(b * L + i) * stride + h * HD4 + d4] = dq[u] + rotate_t(a, rope[i * HD4 + d4]);
          }
        }
      }
    }
    for (var u = 0u; u < NKV; u++) {
      let e = tid + u * WG;
      let c = e / HD4;
      let d4 = e % HD4;
      let j = j0 + c;
      if (e < TK * HD4 && j < L) {
        let base = (b * L + j) * stride + h * HD4 + d4;
        if (keys_valid) { dqkv[base + H * HD4] += rotate_t(dk[u], rope[j * HD4 + d4]); }
        dqkv[base + 2u * H * HD4] += dv[u];
      }
    }
  }
}
`,
  );
});
