/**
 * fill: the runtime's zero-fill, constant fill and copy as compute kernels, so that they stay inside the
 * open compute pass (a pass boundary, which `clearBuffer` and `copyBufferToBuffer` force, costs the host
 * far more than a dispatch in wgpu). Also used for constants, ones and the NaN poison that tests write
 * into outputs before a kernel runs.
 * Parallelism: one invocation per 32-bit word, 256 per workgroup, grid folded into 2-D past 65535
 * groups. `start` places the range inside a binding whose offset was rounded down to the device's
 * storage alignment.
 *
 * @module
 */
import type { KernelSpec } from "../src/gpu/kernel.ts";

/** Writes `bits` into words `start .. start + n` of `out`. */
export const FILL: KernelSpec = {
  name: "fill",
  reads: [],
  writes: ["out"],
  uniforms: { n: "u32", start: "u32", bits: "u32" },
  code: /* wgsl */ `
struct Params { n: u32, start: u32, bits: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i < params.n) { out[params.start + i] = params.bits; }
}
`,
};

/** Copies `n` words from `src[srcStart ..]` to `dst[dstStart ..]` (two distinct buffers). */
export const COPY: KernelSpec = {
  name: "copy_words",
  reads: ["src"],
  writes: ["dst"],
  uniforms: { n: "u32", srcStart: "u32", dstStart: "u32" },
  code: /* wgsl */ `
struct Params { n: u32, srcStart: u32, dstStart: u32 }
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn copy_words(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i < params.n) { dst[params.dstStart + i] = src[params.srcStart + i]; }
}
`,
};
