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
 * attention_forward_tiled and attention_backward_tiled compute the same functions with register tiles
 * (4×4 and 2×2 scores per invocation; see their builders) and are what the launcher uses where the
 * device allows about 20 KiB of workgroup memory; the two kernels above are the fallback.
 *
 * Reference: tests/ref/attention.ts (float64).
 *
 * @module
 */
import type { KernelSpec } from "../src/gpu/kernel.ts";

/** Query rows per workgroup in attention_forward. */
export const ATTENTION_FORWARD_ROWS = 32;
/** Head dims the kernels accept: multiples of 4 from 4 to this. */
export const ATTENTION_MAX_HEAD_DIM = 64;

const ROTATE = /* wgsl */ `
// Rotates the two interleaved pairs of a vec4 by the angles whose (cos, sin) are in cs: x' = R·x.
fn rotate(x: vec4f, cs: vec4f) -> vec4f {
  return vec4f(x.x * cs.x - x.y * cs.y, x.y * cs.x + x.x * cs.y, x.z * cs.z - x.w * cs.w, x.w * cs.z + x.z * cs.w);
}
// The transpose: rotation by the opposite angles (gradient of rotate with respect to x).
fn rotate_t(g: vec4f, cs: vec4f) -> vec4f {
  return vec4f(g.x * cs.x + g.y * cs.y, g.y * cs.x - g.x * cs.y, g.z * cs.z + g.w * cs.w, g.w * cs.z - g.z * cs.w);
}
`;

function checkHeadDim(headDim: number): void {
  if (!Number.isInteger(headDim) || headDim % 4 !== 0 || headDim < 4 || headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(
      `Cannot build attention kernel for head dim ${headDim}: expected a multiple of 4 in [4, ${ATTENTION_MAX_HEAD_DIM}]`,
    );
  }
}

function headConstants(headDim: number): string {
  return `const HD4: u32 = ${headDim / 4}u;        // vec4 per head row
const KS: u32 = HD4 + 1u;              // padded vec4 stride of rows in workgroup tiles (no bank conflicts)
const SCALE: f32 = ${1 / Math.sqrt(headDim)};   // 1/sqrt(hd)
const MASKED: f32 = -1e9;              // PyTorch masked_fill value, not -inf: padding rows become uniform`;
}

const forwardCache = new Map<number, KernelSpec>();
const backwardCache = new Map<number, KernelSpec>();

/**
 * The forward kernel for one head dim: out [B, L, D] and lse [B, H, L] from qkv [B, L, 3D], lengths [B]
 * (i32) and the RoPE table [L, hd/4] (vec4). Grid: B·H·ceil(L/32) workgroups, folded with `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { attentionForwardSpec } from "./attention.ts";
 * console.log(attentionForwardSpec(64).name); // "attention_forward"
 * ```
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @returns The kernel spec (the same object for the same head dim).
 * @throws {RangeError} If the head dim is not supported.
 */
export function attentionForwardSpec(headDim: number): KernelSpec {
  checkHeadDim(headDim);
  let spec = forwardCache.get(headDim);
  if (spec) return spec;
  spec = {
    name: "attention_forward",
    reads: ["qkv", "lengths", "rope"],
    writes: ["out", "lse"],
    uniforms: { batch: "u32", seq: "u32", heads: "u32", qblocks: "u32" },
    code: /* wgsl */ `
${headConstants(headDim)}
const TQ: u32 = ${ATTENTION_FORWARD_ROWS}u;   // query rows per workgroup
const LANES: u32 = 4u;                // invocations per query row; lane c takes keys j = c (mod 4)
const TK: u32 = 16u;                  // keys per workgroup tile
const KPL: u32 = TK / LANES;          // keys per lane per tile
const WG: u32 = TQ * LANES;
const EXCLUDED: f32 = -3.0e38;        // keys past the loop end (not masked: they take no part at all)

struct Params { batch: u32, seq: u32, heads: u32, qblocks: u32 }
@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;
@group(0) @binding(1) var<storage, read> lengths: array<i32>;
@group(0) @binding(2) var<storage, read> rope: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// K tile at [0, TK·KS), V tile at [TK·KS, 2·TK·KS); reused at the end to merge the lanes' outputs.
var<workgroup> tile: array<vec4f, 2u * TK * KS>;
var<workgroup> stats: array<vec2f, WG>;
${ROTATE}
@compute @workgroup_size(${ATTENTION_FORWARD_ROWS * 4})
fn attention_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let L = params.seq;
  let H = params.heads;
  let g = wid.x + wid.y * nwg.x;
  if (g >= params.batch * H * params.qblocks) { return; }
  let qb = g % params.qblocks;
  let bh = g / params.qblocks;
  let b = bh / H;
  let h = bh % H;
  let len = min(u32(max(lengths[b], 0)), L);
  let stride = 3u * H * HD4;           // vec4 per row of qkv
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
      var kx = vec4f(0.0);
      var vx = vec4f(0.0);
      if (j < L) {
        let base = (b * L + j) * stride + h * HD4 + d4;
        kx = rotate(qkv[base + H * HD4], rope[j * HD4 + d4]);
        vx = qkv[base + 2u * H * HD4];
      }
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
  };
  forwardCache.set(headDim, spec);
  return spec;
}

/** Query rows per workgroup in attention_forward_tiled. */
export const ATTENTION_TILED_ROWS = 32;
/**
 * Keys per tile of the tiled forward the launcher uses: 32 ran faster than 64 on an H200 (less
 * workgroup memory, more workgroups resident; bench/RESULTS.md).
 */
export const ATTENTION_FORWARD_KEYS = 32;
/** Keys per block of the tiled backward the launcher uses (less workgroup memory than 32). */
export const ATTENTION_BACKWARD_KEYS = 16;
const tiledCache = new Map<string, KernelSpec>();

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
 * @returns The kernel spec (the same object for the same head dim and key tile).
 * @throws {RangeError} If the head dim or the key tile is not supported.
 */
export function attentionForwardTiledSpec(headDim: number, keys = 64): KernelSpec {
  checkHeadDim(headDim);
  checkKeys(keys);
  const cacheKey = `${headDim}|${keys}`;
  let spec = tiledCache.get(cacheKey);
  if (spec) return spec;
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

  spec = {
    name: "attention_forward_tiled",
    reads: ["qkv", "lengths", "rope"],
    writes: ["out", "lse"],
    uniforms: { batch: "u32", seq: "u32", heads: "u32", qblocks: "u32" },
    code: /* wgsl */ `
${headConstants(headDim)}
const BQ: u32 = ${ATTENTION_TILED_ROWS}u;   // query rows per workgroup
const TK: u32 = ${keys}u;   // keys per tile
const WG: u32 = 128u;
const EXCLUDED: f32 = -3.0e38;    // keys past the loop end (not masked: they take no part at all)

struct Params { batch: u32, seq: u32, heads: u32, qblocks: u32 }
@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;
@group(0) @binding(1) var<storage, read> lengths: array<i32>;
@group(0) @binding(2) var<storage, read> rope: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> r1: array<array<vec4f, ${w1}>, BQ>;   // rotated Q block [BQ][HD4], then P [BQ][TK/4]
var<workgroup> r2: array<array<vec4f, KS>, TK>;   // rotated K tile, then V tile [TK][HD4]
var<workgroup> red: array<array<vec4f, 4>, BQ>;   // per row, the 16 column invocations' partial max or sum
var<workgroup> rowa: array<f32, BQ>;         // per row: the tile's rescale factor, at the end the max
${ROTATE}
@compute @workgroup_size(128)
fn attention_forward_tiled(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let L = params.seq;
  let H = params.heads;
  let g = wid.x + wid.y * nwg.x;
  if (g >= params.batch * H * params.qblocks) { return; }
  let qb = g % params.qblocks;
  let bh = g / params.qblocks;
  let b = bh / H;
  let h = bh % H;
  let len = min(u32(max(lengths[b], 0)), L);
  let stride = 3u * H * HD4;           // vec4 per row of qkv
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
  };
  tiledCache.set(cacheKey, spec);
  return spec;
}

/**
 * The backward kernel for one head dim: dqkv [B, L, 3D] += the gradients of q, k, v (through RoPE) from
 * dout [B, L, D], given qkv, lengths, the RoPE table, the forward's out and lse; `dsum` [B, H, L] is
 * scratch (D_i = dout_i·out_i). Grid: B·H workgroups, folded with `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { attentionBackwardSpec } from "./attention.ts";
 * console.log(attentionBackwardSpec(64).writes); // ["dqkv", "dsum"]
 * ```
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @returns The kernel spec (the same object for the same head dim).
 * @throws {RangeError} If the head dim is not supported.
 */
export function attentionBackwardSpec(headDim: number): KernelSpec {
  checkHeadDim(headDim);
  let spec = backwardCache.get(headDim);
  if (spec) return spec;
  spec = {
    name: "attention_backward",
    reads: ["qkv", "lengths", "rope", "out", "dout", "lse"],
    writes: ["dqkv", "dsum"],
    uniforms: { batch: "u32", seq: "u32", heads: "u32" },
    code: /* wgsl */ `
${headConstants(headDim)}
const TK: u32 = 16u;                  // keys per block (dk, dv in registers)
const TQ: u32 = 8u;                   // query rows per inner block
const WG: u32 = TQ * TK;              // one (row, key) score per invocation
const NKV: u32 = (TK * HD4 + WG - 1u) / WG;   // dk, dv vec4 per invocation
const NQ: u32 = (TQ * HD4 + WG - 1u) / WG;    // dq vec4 per invocation

struct Params { batch: u32, seq: u32, heads: u32 }
@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;
@group(0) @binding(1) var<storage, read> lengths: array<i32>;
@group(0) @binding(2) var<storage, read> rope: array<vec4f>;
@group(0) @binding(3) var<storage, read> out: array<vec4f>;
@group(0) @binding(4) var<storage, read> dout: array<vec4f>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read_write> dqkv: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dsum: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

var<workgroup> kt: array<vec4f, TK * KS>;   // rotated k of the key block
var<workgroup> vt: array<vec4f, TK * KS>;
var<workgroup> qt: array<vec4f, TQ * KS>;   // rotated q of the query block
var<workgroup> gt: array<vec4f, TQ * KS>;   // dout of the query block
var<workgroup> pt: array<f32, WG>;          // P[row][key]
var<workgroup> st: array<f32, WG>;          // dS[row][key] / sqrt(hd)
var<workgroup> rs: array<vec2f, TQ>;        // (lse, D) per row
${ROTATE}
@compute @workgroup_size(${8 * 16})
fn attention_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let L = params.seq;
  let H = params.heads;
  let g = wid.x + wid.y * nwg.x;
  if (g >= params.batch * H) { return; }
  let b = g / H;
  let h = g % H;
  let len = min(u32(max(lengths[b], 0)), L);
  let stride = 3u * H * HD4;
  let ostride = H * HD4;
  let inv_l = 1.0 / f32(L);

  for (var i = tid; i < L; i += WG) {
    var acc = 0.0;
    let base = (b * L + i) * ostride + h * HD4;
    for (var d4 = 0u; d4 < HD4; d4++) { acc += dot(dout[base + d4], out[base + d4]); }
    dsum[g * L + i] = acc;
  }
  storageBarrier();

  for (var j0 = 0u; j0 < L; j0 += TK) {
    // A block of padding keys only receives dv from padding rows (P = 1/L there).
    let i_start = select(0u, (len / TQ) * TQ, j0 >= len);
    let keys_valid = j0 < len;
    workgroupBarrier();
    for (var e = tid; e < TK * HD4; e += WG) {
      let c = e / HD4;
      let d4 = e % HD4;
      let j = j0 + c;
      var kx = vec4f(0.0);
      var vx = vec4f(0.0);
      if (j < L) {
        let base = (b * L + j) * stride + h * HD4 + d4;
        kx = rotate(qkv[base + H * HD4], rope[j * HD4 + d4]);
        vx = qkv[base + 2u * H * HD4];
      }
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
  };
  backwardCache.set(headDim, spec);
  return spec;
}

const BWD_ROWS = 16;
const tiledBackwardCache = new Map<string, KernelSpec>();

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
  const cacheKey = `${headDim}|${keys}`;
  let spec = tiledBackwardCache.get(cacheKey);
  if (spec) return spec;
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

  spec = {
    name: "attention_backward_tiled",
    reads: ["qkv", "lengths", "rope", "out", "dout", "lse"],
    writes: ["dqkv", "dsum"],
    uniforms: { batch: "u32", seq: "u32", heads: "u32" },
    code: /* wgsl */ `
${headConstants(headDim)}
const TK: u32 = ${keys}u;   // keys per block (dk, dv in registers)
const TQ: u32 = ${BWD_ROWS}u;   // query rows per inner block
const WG: u32 = 128u;
const PS: u32 = TK / ${vw}u + 1u;  // padded stride of P and dS rows, in vectors of ${vw} keys

struct Params { batch: u32, seq: u32, heads: u32 }
@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;
@group(0) @binding(1) var<storage, read> lengths: array<i32>;
@group(0) @binding(2) var<storage, read> rope: array<vec4f>;
@group(0) @binding(3) var<storage, read> out: array<vec4f>;
@group(0) @binding(4) var<storage, read> dout: array<vec4f>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read_write> dqkv: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dsum: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

var<workgroup> kt: array<array<vec4f, KS>, TK>;    // rotated k of the key block
var<workgroup> vt: array<array<vec4f, KS>, TK>;
var<workgroup> qt: array<array<vec4f, KS>, TQ>;    // rotated q of the query block
var<workgroup> gt: array<array<vec4f, KS>, TQ>;    // dout of the query block
var<workgroup> pt: array<array<${VT}, PS>, TQ>;   // P[row][key]
var<workgroup> st: array<array<${VT}, PS>, TQ>;   // dS[row][key] / sqrt(hd)
var<workgroup> rs: array<vec2f, TQ>;        // (lse, D) per row
${ROTATE}
@compute @workgroup_size(128)
fn attention_backward_tiled(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let L = params.seq;
  let H = params.heads;
  let g = wid.x + wid.y * nwg.x;
  if (g >= params.batch * H) { return; }
  let b = g / H;
  let h = g % H;
  let len = min(u32(max(lengths[b], 0)), L);
  let stride = 3u * H * HD4;
  let ostride = H * HD4;
  let inv_l = 1.0 / f32(L);
  let tx = tid % 16u;              // score keys tx + 16j
  let ty = tid / 16u;              // score rows ty + 8i
  let kq = tid / HD4;              // dk, dv of keys ${vw}kq…${vw}kq+${vw - 1}; dq of rows 2kq, 2kq+1 ...
  let dc = tid % HD4;              // ... in column vec4 dc
  let item = tid < 8u * HD4;

  for (var i = tid; i < L; i += WG) {
    var acc = 0.0;
    let base = (b * L + i) * ostride + h * HD4;
    for (var d4 = 0u; d4 < HD4; d4++) { acc += dot(dout[base + d4], out[base + d4]); }
    dsum[g * L + i] = acc;
  }
  storageBarrier();

  for (var j0 = 0u; j0 < L; j0 += TK) {
    // A block of padding keys only receives dv from padding rows (P = 1/L there).
    let i_start = select(0u, (len / TQ) * TQ, j0 >= len);
    let keys_valid = j0 < len;
    workgroupBarrier();
    // Constant trip counts, so that every load of a block is issued before the first store.
    for (var u = 0u; u < (TK * HD4 + WG - 1u) / WG; u++) {
      let e = tid + u * WG;
      let c = e / HD4;
      let d4 = e % HD4;
      let j = j0 + c;
      if (e < TK * HD4) {
        var kx = vec4f(0.0);
        var vx = vec4f(0.0);
        if (j < L) {
          let base = (b * L + j) * stride + h * HD4 + d4;
          kx = rotate(qkv[base + H * HD4], rope[j * HD4 + d4]);
          vx = qkv[base + 2u * H * HD4];
        }
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
  };
  tiledBackwardCache.set(cacheKey, spec);
  return spec;
}

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
