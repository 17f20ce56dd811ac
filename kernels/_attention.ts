/**
 * Shared pieces of the attention kernels (kernels/attention_fallback.ts, kernels/attention_tiled.ts): the
 * RoPE rotation in WGSL, the head-dim check and the per-head constants.
 *
 * @module
 */
import { defineKernel, type KernelSpec, type StorageElement, type UniformType } from "../src/gpu/kernel.ts";
import { partialSumsWgsl } from "./matmul.ts";

/** Bindings, uniforms and element types of every attention kernel of one pass. */
export interface AttentionIo {
  /** Storage buffers read. */
  readonly reads: readonly string[];
  /** Storage buffers written. */
  readonly writes: readonly string[];
  /** Uniform fields. */
  readonly uniforms: Readonly<Record<string, UniformType>>;
  /** Element types other than f32. */
  readonly elements: Readonly<Record<string, StorageElement>>;
}

/**
 * The forward kernels' interface: out [B, L, D] and lse [B, H, L] from qkv [B, L, 3D], lengths [B] and
 * the RoPE table [L, hd/4]; the fallback and the tiled kernel are interchangeable.
 */
export const FORWARD_IO: AttentionIo = {
  reads: ["qkv", "lengths", "rope"],
  writes: ["out", "lse"],
  uniforms: { batch: "u32", seq: "u32", heads: "u32", qblocks: "u32" },
  elements: { qkv: "vec4f", lengths: "i32", rope: "vec4f", out: "vec4f" },
};

/**
 * The backward kernels' interface: dqkv [B, L, 3D] += the gradients from dout [B, L, D], given qkv,
 * lengths, the RoPE table, the forward's out and lse; dsum [B, H, L] is scratch.
 */
export const BACKWARD_IO: AttentionIo = {
  reads: ["qkv", "lengths", "rope", "out", "dout", "lse"],
  writes: ["dqkv", "dsum"],
  uniforms: { batch: "u32", seq: "u32", heads: "u32" },
  elements: { qkv: "vec4f", lengths: "i32", rope: "vec4f", out: "vec4f", dout: "vec4f", dqkv: "vec4f" },
};

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

/**
 * The opening of every attention kernel: the entry point (invocation `tid`), the sequence length `L`,
 * the heads `H`, the workgroup's (b, h) — for the forward kernels also its block of query rows `qb` and
 * `bh` = b·H + h — the valid length `len` of sequence b, and `stride`, the vec4 per row of qkv. The
 * backward kernels also get `ostride` (vec4 per row of out) and `inv_l` = 1/L.
 *
 * @param name The entry point.
 * @param size Invocations per workgroup.
 * @param pass `forward`: one workgroup per (b, h, block of query rows); `backward`: one per (b, h).
 * @param builtins More entry-point parameters (the tensor-core kernels' subgroup builtins).
 * @returns WGSL up to the kernel's own statements.
 */
export function attentionEntry(
  name: string,
  size: number,
  pass: "forward" | "backward",
  builtins = "",
): string {
  const work = pass === "forward"
    ? `if (g >= params.batch * H * params.qblocks) { return; }
  let qb = g % params.qblocks;
  let bh = g / params.qblocks;
  let b = bh / H;
  let h = bh % H;`
    : `if (g >= params.batch * H) { return; }
  let b = g / H;
  let h = g % H;`;
  return `@compute @workgroup_size(${size})
fn ${name}(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,${builtins ? `\n  ${builtins}` : ""}
) {
  let L = params.seq;
  let H = params.heads;
  let g = wid.x + wid.y * nwg.x;
  ${work}
  let len = min(u32(max(lengths[b], 0)), L);
  let stride = 3u * H * HD4;           // vec4 per row of qkv${
    pass === "backward" ? "\n  let ostride = H * HD4;\n  let inv_l = 1.0 / f32(L);" : ""
  }`;
}

/**
 * WGSL that sets `kx` (rotated k) and `vx` (v) to column vec4 `d4` of key `j` of head h in sequence b,
 * zeros past L.
 *
 * @param indent The indentation of the statements (the first line's is the caller's).
 * @returns The statements.
 */
export function keyValueLoad(indent: string): string {
  return `var kx = vec4f(0.0);
${indent}var vx = vec4f(0.0);
${indent}if (j < L) {
${indent}  let base = (b * L + j) * stride + h * HD4 + d4;
${indent}  kx = rotate(qkv[base + H * HD4], rope[j * HD4 + d4]);
${indent}  vx = qkv[base + 2u * H * HD4];
${indent}}`;
}

/**
 * The start of both backward kernels: D_i = dout_i·out_i for every row into the scratch `dsum`, then
 * the loop over blocks of TK keys opened, with `i_start` (the first query row that can reach the block)
 * and `keys_valid`; the kernel's statements for the block follow, then the loop's closing brace.
 */
export const BACKWARD_BLOCKS: string = `  for (var i = tid; i < L; i += WG) {
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
    workgroupBarrier();`;

/**
 * An attention kernel: the pass's interface, the per-head constants ({@linkcode headConstants}) and
 * `rotate`/`rotate_t` ({@linkcode ROTATE}) ahead of the kernel's own WGSL.
 *
 * With `parts`, the forward variant named `<name>_parts` that reads qkv as `params.parts` split-K partial
 * products of the qkv projection, `params.part_stride` vec4 apart, summed on load in split order as
 * `matmul_reduce` sums them (so the result is the same to the bit, and the reduction pass is saved).
 *
 * @param name The entry point.
 * @param io {@linkcode FORWARD_IO} or {@linkcode BACKWARD_IO}.
 * @param headDim hd.
 * @param body The kernel's constants, workgroup memory and entry point.
 * @param parts Read qkv as summed partial products.
 * @param enables WGSL `enable` directives, which must open the module.
 * @returns The kernel spec.
 */
export function attentionKernel(
  name: string,
  io: AttentionIo,
  headDim: number,
  body: string,
  parts = false,
  enables = "",
): KernelSpec {
  const prelude = `\n${headConstants(headDim)}\n${ROTATE}`;
  const spec = parts
    ? defineKernel({
      name: `${name}_parts`,
      ...io,
      uniforms: { ...io.uniforms, parts: "u32", part_stride: "u32" },
      body: prelude + QKV_PARTS + summedQkvLoads(body).replace(`fn ${name}(`, `fn ${name}_parts(`),
    })
    : defineKernel({ name, ...io, body: prelude + body });
  return enables ? { ...spec, code: `${enables}\n${spec.code}` } : spec;
}

/** `qkv_at(i)`: element i of qkv as the sum of its partial products. */
const QKV_PARTS = /* wgsl */ `
fn qkv_at(i: u32) -> vec4f {
  var x = vec4f(0.0);
  ${partialSumsWgsl([{ name: "x", at: (k) => `qkv[i + (${k}) * params.part_stride]` }], "params.parts")}
  return x;
}
`;

/** Rewrites every `qkv[index]` of `code` as `qkv_at(index)`. */
function summedQkvLoads(code: string): string {
  let out = "";
  let at = 0;
  // Each search resumes after the last rewritten load, whose text is already copied into out.
  for (let start = code.indexOf("qkv["); start >= 0; start = code.indexOf("qkv[", Math.max(at, start + 1))) {
    if (/\w/.test(code[start - 1] ?? "")) continue; // another name ending in qkv
    let depth = 0, end = start + 3;
    for (; end < code.length; end++) {
      if (code[end] === "[") depth++;
      else if (code[end] === "]" && --depth === 0) break;
    }
    out += `${code.slice(at, start)}qkv_at(${code.slice(start + 4, end)})`;
    at = end + 1;
  }
  return out + code.slice(at);
}
