/**
 * attention_tiled: the register-tiled attention kernels the launcher uses where the device allows about
 * 20 KiB of workgroup memory — `attention_forward_tiled` (4×4 or 4×2 scores per invocation) and
 * `attention_backward_tiled` (2×2 or 2×1); the same functions as kernels/attention_fallback.ts, see
 * kernels/attention.ts for the math and the layouts.
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

/** Query rows per workgroup in attention_forward_tiled. */
export const ATTENTION_TILED_ROWS = 32;
/**
 * Keys per tile of the tiled forward the launcher uses: 32 ran faster than 64 on an H200 (less
 * workgroup memory, more workgroups resident; bench/RESULTS.md).
 */
export const ATTENTION_FORWARD_KEYS = 32;
/** Keys per block of the tiled backward the launcher uses (less workgroup memory than 32). */
export const ATTENTION_BACKWARD_KEYS = 16;

function checkKeys(keys: number): void {
  if (keys !== 32 && keys !== 64) {
    throw new RangeError(
      `Cannot build attention_forward_tiled with ${keys} keys per tile: expected 32 or 64`,
    );
  }
}

/** vec4 slots of the two shared regions of attention_forward_tiled (Q then P; K then V). */
function tiledRegions(headDim: number, keys: number): { r1: number; r2: number; w1: number } {
  const ks = headDim / 4 + 1, w1 = Math.max(ks, keys / 4 + 1);
  return { r1: ATTENTION_TILED_ROWS * w1, r2: keys * ks, w1 };
}

/**
 * Workgroup memory of {@linkcode attentionForwardTiledSpec} in bytes (27.6 KiB at hd = 64 with 64 keys
 * per tile, 19.1 KiB with 32): the launcher uses the tiled kernel only where the device allows this much.
 *
 * @example Usage
 * ```ts
 * import { attentionForwardTiledBytes } from "./attention.ts";
 * console.log(attentionForwardTiledBytes(64)); // 28288
 * ```
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @param keys Keys per tile, 32 or 64.
 * @returns Bytes of workgroup memory.
 * @throws {RangeError} If the head dim or the key tile is not supported.
 */
export function attentionForwardTiledBytes(headDim: number, keys = 64): number {
  checkHeadDim(headDim);
  checkKeys(keys);
  const { r1, r2 } = tiledRegions(headDim, keys);
  return (r1 + r2 + ATTENTION_TILED_ROWS * 4) * 16 + ATTENTION_TILED_ROWS * 4;
}

/**
 * The register-tiled forward kernel for one head dim, the same function as
 * {@linkcode attentionForwardSpec} (same bindings, uniforms and outputs) computed as two small matrix
 * products per workgroup. Grid: B·H·ceil(L/32) workgroups of 128 invocations, folded with `grid1d`;
 * uniform `qblocks` = ceil(L/32).
 *
 * Per key tile of 64 (or 32): the rotated Q block [32, hd] and K tile [64, hd] go to workgroup memory;
 * invocation (ty, tx) of a 8×16 grid computes the 4×4 scores of rows 4ty…4ty+3 and keys tx, tx+16,
 * tx+32, tx+48 (4 + 4 vec4 reads per 16 vec4 dot products; 4×2 scores with 32 keys per tile); the
 * row maxima are merged through workgroup memory, and
 * the tile's P = exp(s − running max) replaces Q while V replaces K; then invocation (rq, d4) adds
 * P·V into rows 4rq…4rq+3 of column vec4 d4 (4 + 4 vec4 reads per 16 vec4 FMAs), after rescaling by
 * exp(old max − new max). Row sums are kept per invocation and merged once at the end. Masks, lengths,
 * padding rows and lse are exactly as in attention_forward.
 *
 * @example Usage
 * ```ts
 * import { attentionForwardTiledSpec } from "./attention.ts";
 * console.log(attentionForwardTiledSpec(64).name); // "attention_forward_tiled"
 * ```
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @param keys Keys per tile, 32 or 64 (less workgroup memory, more tiles).
 * @param parts Read qkv as split-K partial products, summed on load (see `attentionKernel`).
 * @returns The kernel spec (the same object for the same head dim, key tile and `parts`).
 * @throws {RangeError} If the head dim or the key tile is not supported.
 */
export function attentionForwardTiledSpec(headDim: number, keys = 64, parts = false): KernelSpec {
  checkHeadDim(headDim);
  checkKeys(keys);
  return tiledForwardVariants({ headDim, keys, parts });
}

const tiledForwardVariants = kernelVariants(
  ({ headDim, keys, parts }: { headDim: number; keys: number; parts: boolean }): KernelSpec => {
    const { w1 } = tiledRegions(headDim, keys);
    const R = [0, 1, 2, 3];
    const J = keys === 64 ? R : [0, 1]; // score columns tx + 16j
    const sum = (f: (j: number) => string, op: string) =>
      J.length === 4 ? `${op}(${op}(${f(0)}, ${f(1)}), ${op}(${f(2)}, ${f(3)}))` : `${op}(${f(0)}, ${f(1)})`;
    const lines: string[] = [];
    const emit = (s: string) => lines.push(s);
    // Scores: rows 4ty+i, keys tx+16j.
    for (const i of R) emit(`    let qp${i} = &r1[ty * 4u + ${i}u];`);
    for (const j of J) emit(`    let kp${j} = &r2[tx + ${16 * j}u];`);
    emit(`    for (var d4 = 0u; d4 < HD4; d4++) {`);
    for (const i of R) emit(`      let q${i} = (*qp${i})[d4];`);
    for (const j of J) emit(`      let k${j} = (*kp${j})[d4];`);
    for (const i of R) for (const j of J) emit(`      s${i}${j} += dot(q${i}, k${j});`);
    emit(`    }`);
    const scores = lines.splice(0).join("\n");
    for (const i of R) {
      emit(`    {`);
      emit(`      let ok = i0 + ty * 4u + ${i}u < len;`);
      for (const j of J) {
        emit(
          `      s${i}${j} = select(select(MASKED, s${i}${j} * SCALE, ok && key${j} < len), EXCLUDED, key${j} >= kend);`,
        );
      }
      emit(`      red[ty * 4u + ${i}u][tx / 4u][tx % 4u] = ${sum((j) => `s${i}${j}`, "max")};`);
      emit(`    }`);
    }
    const maxima = lines.splice(0).join("\n");
    for (const i of R) {
      emit(`    {`);
      emit(`      let r = ty * 4u + ${i}u;`);
      emit(`      let a = max(max(red[r][0], red[r][1]), max(red[r][2], red[r][3]));`);
      emit(`      let mt = max(m${i}, max(max(a.x, a.y), max(a.z, a.w)));`);
      emit(`      let alpha = exp(m${i} - mt);`);
      emit(`      m${i} = mt;`);
      for (const j of J) emit(`      let p${j} = exp(s${i}${j} - mt);`);
      emit(`      l${i} = l${i} * alpha + ${J.length === 4 ? "((p0 + p1) + (p2 + p3))" : "(p0 + p1)"};`);
      for (const j of J) emit(`      r1[r][tx / 4u + ${4 * j}u][tx % 4u] = p${j};`);
      emit(`      if (tx == 0u) { rowa[r] = alpha; }`);
      emit(`    }`);
    }
    const probs = lines.splice(0).join("\n");
    for (const i of R) emit(`      let pp${i} = &r1[rq * 4u + ${i}u];`);
    emit(`      for (var c4 = 0u; c4 < nk4; c4++) {`);
    for (const k of R) emit(`        let v${k} = r2[c4 * 4u + ${k}u][dv];`);
    for (const i of R) {
      emit(`        let p${i} = (*pp${i})[c4];`);
      emit(
        `        o${i} = fma(vec4f(p${i}.x), v0, fma(vec4f(p${i}.y), v1, fma(vec4f(p${i}.z), v2, fma(vec4f(p${i}.w), v3, o${i}))));`,
      );
    }
    emit(`      }`);
    const pv = lines.splice(0).join("\n");
    for (const i of R) {
      emit(`    {`);
      emit(`      let r = rq * 4u + ${i}u;`);
      emit(`      let row = i0 + r;`);
      emit(`      let a = (red[r][0] + red[r][1]) + (red[r][2] + red[r][3]);`);
      emit(`      let l = (a.x + a.y) + (a.z + a.w);`);
      emit(`      if (row < L) {`);
      emit(`        out[(b * L + row) * H * HD4 + h * HD4 + dv] = o${i} / l;`);
      emit(`        if (dv == 0u) { lse[bh * L + row] = rowa[r] + log(l); }`);
      emit(`      }`);
      emit(`    }`);
    }
    const finish = lines.splice(0).join("\n");

    return attentionKernel(
      "attention_forward_tiled",
      FORWARD_IO,
      headDim,
      /* wgsl */ `
const BQ: u32 = ${ATTENTION_TILED_ROWS}u;   // query rows per workgroup
const TK: u32 = ${keys}u;   // keys per tile
const WG: u32 = 128u;
const EXCLUDED: f32 = -3.0e38;    // keys past the loop end (not masked: they take no part at all)

var<workgroup> r1: array<array<vec4f, ${w1}>, BQ>;   // rotated Q block [BQ][HD4], then P [BQ][TK/4]
var<workgroup> r2: array<array<vec4f, KS>, TK>;   // rotated K tile, then V tile [TK][HD4]
var<workgroup> red: array<array<vec4f, 4>, BQ>;   // per row, the 16 column invocations' partial max or sum
var<workgroup> rowa: array<f32, BQ>;         // per row: the tile's rescale factor, at the end the max
${attentionEntry("attention_forward_tiled", 128, "forward")}
  let i0 = qb * BQ;
  let tx = tid % 16u;                  // score columns tx + 16j
  let ty = tid / 16u;                  // score rows 4ty + i
  let rq = tid / HD4;                  // P·V rows 4rq + i ...
  let dv = tid % HD4;                  // ... of output vec4 dv
  let pv = tid < (BQ / 4u) * HD4;
  // All keys when the block holds a padding row (it attends to every key), else only the first len.
  let kend = select(len, L, min(i0 + BQ, L) > len);
  var m0 = EXCLUDED; var m1 = EXCLUDED; var m2 = EXCLUDED; var m3 = EXCLUDED;
  var l0 = 0.0; var l1 = 0.0; var l2 = 0.0; var l3 = 0.0;
  var o0 = vec4f(0.0); var o1 = vec4f(0.0); var o2 = vec4f(0.0); var o3 = vec4f(0.0);
  for (var j0 = 0u; j0 < kend; j0 += TK) {
    workgroupBarrier();
    // Constant trip counts, so that every load of a tile is issued before the first store.
    for (var u = 0u; u < (BQ * HD4 + WG - 1u) / WG; u++) {
      let e = tid + u * WG;
      let r = e / HD4;
      let d4 = e % HD4;
      let i = i0 + r;
      if (e < BQ * HD4) {
        var x = vec4f(0.0);
        if (i < L) { x = rotate(qkv[(b * L + i) * stride + h * HD4 + d4], rope[i * HD4 + d4]); }
        r1[r][d4] = x;
      }
    }
    for (var u = 0u; u < (TK * HD4 + WG - 1u) / WG; u++) {
      let e = tid + u * WG;
      let c = e / HD4;
      let d4 = e % HD4;
      let j = j0 + c;
      if (e < TK * HD4) {
        var x = vec4f(0.0);
        if (j < L) { x = rotate(qkv[(b * L + j) * stride + (H + h) * HD4 + d4], rope[j * HD4 + d4]); }
        r2[c][d4] = x;
      }
    }
    workgroupBarrier();
${R.map((i) => "    " + J.map((j) => `var s${i}${j} = 0.0;`).join(" ")).join("\n")}
${scores}
${J.map((j) => `    let key${j} = j0 + tx + ${16 * j}u;`).join("\n")}
${maxima}
    workgroupBarrier();
    // Every invocation is past its reads of Q and K: P replaces Q, V replaces K.
${probs}
    for (var u = 0u; u < (TK * HD4 + WG - 1u) / WG; u++) {
      let e = tid + u * WG;
      let c = e / HD4;
      let j = j0 + c;
      if (e < TK * HD4) {
        var x = vec4f(0.0);
        if (j < L) { x = qkv[(b * L + j) * stride + (2u * H + h) * HD4 + e % HD4]; }
        r2[c][e % HD4] = x;
      }
    }
    workgroupBarrier();
    if (pv) {
      o0 *= rowa[rq * 4u];
      o1 *= rowa[rq * 4u + 1u];
      o2 *= rowa[rq * 4u + 2u];
      o3 *= rowa[rq * 4u + 3u];
      let nk4 = (min(TK, kend - j0) + 3u) / 4u;
${pv}
    }
  }
  workgroupBarrier();
  for (var i = 0u; i < 4u; i++) {
    let l = select(select(select(l3, l2, i == 2u), l1, i == 1u), l0, i == 0u);
    let m = select(select(select(m3, m2, i == 2u), m1, i == 1u), m0, i == 0u);
    red[ty * 4u + i][tx / 4u][tx % 4u] = l;
    if (tx == 0u) { rowa[ty * 4u + i] = m; }
  }
  workgroupBarrier();
  if (pv) {
${finish}
  }
}
`,
      parts,
    );
  },
);

const BWD_ROWS = 16;

function checkBackwardKeys(keys: number): void {
  if (keys !== 16 && keys !== 32) {
    throw new RangeError(
      `Cannot build attention_backward_tiled with ${keys} keys per block: expected 16 or 32`,
    );
  }
}

/**
 * Workgroup memory of {@linkcode attentionBackwardTiledSpec} in bytes (30.1 KiB at hd = 64 with 32 keys
 * per block, 19.4 KiB with 16): the launcher uses the tiled kernel only where the device allows this
 * much.
 *
 * @example Usage
 * ```ts
 * import { attentionBackwardTiledBytes } from "./attention.ts";
 * console.log(attentionBackwardTiledBytes(64)); // 30848
 * ```
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @param keys Keys per block, 16 or 32.
 * @returns Bytes of workgroup memory.
 * @throws {RangeError} If the head dim or the key block is not supported.
 */
export function attentionBackwardTiledBytes(headDim: number, keys = 32): number {
  checkHeadDim(headDim);
  checkBackwardKeys(keys);
  const ks = headDim / 4 + 1, vw = keys / 8, ps = keys / vw + 1;
  return (2 * keys * ks + 2 * BWD_ROWS * ks) * 16 + 2 * BWD_ROWS * ps * vw * 4 + BWD_ROWS * 8;
}

/**
 * The register-tiled backward kernel for one head dim, the same function as
 * {@linkcode attentionBackwardSpec} (same bindings, uniforms and accumulation into dqkv). Grid: B·H
 * workgroups of 128 invocations, folded with `grid1d`.
 *
 * After D_i = dout_i·out_i (into `dsum`), for each block of 32 keys (rotated K and V in workgroup
 * memory; dk and dv of 4 keys × one vec4 column per invocation in registers; 16 keys and 2 keys per
 * invocation with `keys` = 16) a loop over blocks of 16 query rows (rotated Q and dout in workgroup
 * memory) has invocation (ty, tx) compute the 2×2 scores and dP = dout·vᵀ of rows ty, ty+8 and keys tx,
 * tx+16 (8 vec4 reads per 8 vec4 dot products; 2×1 with 16 keys), then
 * P = exp(s − lse) and dS = P∘(dP − D)/√hd into workgroup memory; then dv += Pᵀ·dout and dk += dSᵀ·q
 * (4 vec4 reads per 8 vec4 FMAs) and dq += dS·k for 2 rows × one vec4 column (6 reads per 8 FMAs), added
 * into dqkv (each dq element always belongs to the same invocation, so its read-modify-write needs no
 * atomics). Masks, padding rows and RoPE's transpose are exactly as in attention_backward.
 *
 * @example Usage
 * ```ts
 * import { attentionBackwardTiledSpec } from "./attention.ts";
 * console.log(attentionBackwardTiledSpec(64).name); // "attention_backward_tiled"
 * ```
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @param keys Keys per block, 16 or 32 (less workgroup memory, more blocks).
 * @returns The kernel spec (the same object for the same head dim and key block).
 * @throws {RangeError} If the head dim or the key block is not supported.
 */
export function attentionBackwardTiledSpec(headDim: number, keys = 32): KernelSpec {
  checkHeadDim(headDim);
  checkBackwardKeys(keys);
  return tiledBackwardVariants({ headDim, keys });
}

const tiledBackwardVariants = kernelVariants(
  ({ headDim, keys }: { headDim: number; keys: number }): KernelSpec => {
    // VW keys per invocation in the dk/dv phase and per vector of P and dS (4 with 32 keys, 2 with 16).
    const vw = keys / 8, VT = `vec${vw}f`;
    const R2 = [0, 1], C = ["x", "y", "z", "w"];
    const J = keys === 32 ? R2 : [0];
    const KV = vw === 4 ? [0, 1, 2, 3] : [0, 1];
    const lines: string[] = [];
    const emit = (s: string) => lines.push(s);
    // Scores and dP: rows ty + 8i, keys tx + 16j.
    for (const i of R2) for (const j of J) emit(`      var s${i}${j} = 0.0; var dp${i}${j} = 0.0;`);
    for (const i of R2) emit(`      let qp${i} = &qt[ty + ${8 * i}u]; let gp${i} = &gt[ty + ${8 * i}u];`);
    for (const j of J) emit(`      let kp${j} = &kt[tx + ${16 * j}u]; let vp${j} = &vt[tx + ${16 * j}u];`);
    emit(`      for (var d4 = 0u; d4 < HD4; d4++) {`);
    for (const i of R2) emit(`        let q${i} = (*qp${i})[d4]; let g${i} = (*gp${i})[d4];`);
    for (const j of J) emit(`        let k${j} = (*kp${j})[d4]; let v${j} = (*vp${j})[d4];`);
    for (const i of R2) {
      for (const j of J) emit(`        s${i}${j} += dot(q${i}, k${j}); dp${i}${j} += dot(g${i}, v${j});`);
    }
    emit(`      }`);
    for (const i of R2) {
      emit(`      {`);
      emit(`        let r = ty + ${8 * i}u;`);
      emit(`        let i = i0 + r;`);
      emit(`        let st_row = rs[r];`);
      for (const j of J) {
        emit(`        {`);
        emit(`          let j = j0 + tx + ${16 * j}u;`);
        emit(`          var p = 0.0;`);
        emit(`          var ds = 0.0;`);
        emit(`          if (i < L && j < L) {`);
        emit(`            if (i >= len) {`);
        emit(
          `              p = inv_l;                     // padding row: uniform over all L keys, no gradient to s`,
        );
        emit(`            } else if (j < len) {`);
        emit(`              p = exp(s${i}${j} * SCALE - st_row.x);`);
        emit(`              ds = p * (dp${i}${j} - st_row.y) * SCALE;`);
        emit(`            }`);
        emit(`          }`);
        emit(`          pt[r][(tx + ${16 * j}u) / ${vw}u][tx % ${vw}u] = p;`);
        emit(`          st[r][(tx + ${16 * j}u) / ${vw}u][tx % ${vw}u] = ds;`);
        emit(`        }`);
      }
      emit(`      }`);
    }
    const scores = lines.splice(0).join("\n");
    emit(`        for (var r = 0u; r < TQ; r++) {`);
    emit(`          let p4 = pt[r][kq];`);
    emit(`          let s4 = st[r][kq];`);
    emit(`          let gg = gt[r][dc];`);
    emit(`          let qq = qt[r][dc];`);
    for (const k of KV) {
      emit(`          dv${k} = fma(vec4f(p4.${C[k]}), gg, dv${k});`);
      emit(`          dk${k} = fma(vec4f(s4.${C[k]}), qq, dk${k});`);
    }
    emit(`        }`);
    const kv = lines.splice(0).join("\n");
    emit(`          var a0 = vec4f(0.0);`);
    emit(`          var a1 = vec4f(0.0);`);
    for (const i of R2) emit(`          let sp${i} = &st[kq * 2u + ${i}u];`);
    emit(`          for (var c4 = 0u; c4 < TK / ${vw}u; c4++) {`);
    for (const k of KV) emit(`            let k${k} = kt[c4 * ${vw}u + ${k}u][dc];`);
    for (const i of R2) {
      emit(`            let x${i} = (*sp${i})[c4];`);
      let e = `a${i}`;
      for (const k of [...KV].reverse()) e = `fma(vec4f(x${i}.${C[k]}), k${k}, ${e})`;
      emit(`            a${i} = ${e};`);
    }
    emit(`          }`);
    for (const i of R2) {
      emit(`          {`);
      emit(`            let i = dqi + ${i}u;`);
      emit(`            if (i < len) {`);
      emit(
        `              dqkv[(b * L + i) * stride + h * HD4 + dc] = dqa${i} + rotate_t(a${i}, rope[i * HD4 + dc]);`,
      );
      emit(`            }`);
      emit(`          }`);
    }
    const dq = lines.splice(0).join("\n");
    for (const k of KV) {
      emit(`      {`);
      emit(`        let j = j0 + kq * ${vw}u + ${k}u;`);
      emit(`        if (j < L) {`);
      emit(`          let base = (b * L + j) * stride + h * HD4 + dc;`);
      emit(`          if (keys_valid) { dqkv[base + H * HD4] += rotate_t(dk${k}, rope[j * HD4 + dc]); }`);
      emit(`          dqkv[base + 2u * H * HD4] += dv${k};`);
      emit(`        }`);
      emit(`      }`);
    }
    const store = lines.splice(0).join("\n");

    return attentionKernel(
      "attention_backward_tiled",
      BACKWARD_IO,
      headDim,
      /* wgsl */ `
const TK: u32 = ${keys}u;   // keys per block (dk, dv in registers)
const TQ: u32 = ${BWD_ROWS}u;   // query rows per inner block
const WG: u32 = 128u;
const PS: u32 = TK / ${vw}u + 1u;  // padded stride of P and dS rows, in vectors of ${vw} keys

var<workgroup> kt: array<array<vec4f, KS>, TK>;    // rotated k of the key block
var<workgroup> vt: array<array<vec4f, KS>, TK>;
var<workgroup> qt: array<array<vec4f, KS>, TQ>;    // rotated q of the query block
var<workgroup> gt: array<array<vec4f, KS>, TQ>;    // dout of the query block
var<workgroup> pt: array<array<${VT}, PS>, TQ>;   // P[row][key]
var<workgroup> st: array<array<${VT}, PS>, TQ>;   // dS[row][key] / sqrt(hd)
var<workgroup> rs: array<vec2f, TQ>;        // (lse, D) per row
${attentionEntry("attention_backward_tiled", 128, "backward")}
  let tx = tid % 16u;              // score keys tx + 16j
  let ty = tid / 16u;              // score rows ty + 8i
  let kq = tid / HD4;              // dk, dv of keys ${vw}kq…${vw}kq+${vw - 1}; dq of rows 2kq, 2kq+1 ...
  let dc = tid % HD4;              // ... in column vec4 dc
  let item = tid < 8u * HD4;

${BACKWARD_BLOCKS}
    // Constant trip counts, so that every load of a block is issued before the first store.
    for (var u = 0u; u < (TK * HD4 + WG - 1u) / WG; u++) {
      let e = tid + u * WG;
      let c = e / HD4;
      let d4 = e % HD4;
      let j = j0 + c;
      if (e < TK * HD4) {
        ${keyValueLoad("        ")}
        kt[c][d4] = kx;
        vt[c][d4] = vx;
      }
    }
${KV.map((k) => `    var dv${k} = vec4f(0.0); var dk${k} = vec4f(0.0);`).join("\n")}
    for (var i0 = i_start; i0 < L; i0 += TQ) {
      workgroupBarrier();
      // This invocation's dq rows, fetched early; the same invocation adds to them for every key block.
      var dqa0 = vec4f(0.0);
      var dqa1 = vec4f(0.0);
      let dqi = i0 + kq * 2u;
      if (item && keys_valid) {
        if (dqi < len) { dqa0 = dqkv[(b * L + dqi) * stride + h * HD4 + dc]; }
        if (dqi + 1u < len) { dqa1 = dqkv[(b * L + dqi + 1u) * stride + h * HD4 + dc]; }
      }
      for (var u = 0u; u < (TQ * HD4 + WG - 1u) / WG; u++) {
        let e = tid + u * WG;
        let r = e / HD4;
        let d4 = e % HD4;
        let i = i0 + r;
        if (e < TQ * HD4) {
          var qx = vec4f(0.0);
          var gx = vec4f(0.0);
          if (i < L) {
            qx = rotate(qkv[(b * L + i) * stride + h * HD4 + d4], rope[i * HD4 + d4]);
            gx = dout[(b * L + i) * ostride + h * HD4 + d4];
          }
          qt[r][d4] = qx;
          gt[r][d4] = gx;
        }
      }
      if (tid < TQ) {
        let i = i0 + tid;
        rs[tid] = select(vec2f(0.0), vec2f(lse[g * L + min(i, L - 1u)], dsum[g * L + min(i, L - 1u)]), i < L);
      }
      workgroupBarrier();
${scores}
      workgroupBarrier();
      if (item) {
${kv}
        if (keys_valid) {
${dq}
        }
      }
    }
    if (item) {
${store}
    }
  }
}
`,
    );
  },
);
