/**
 * fill: writes one 32-bit pattern into every element of a buffer. Used for constants, ones and the NaN
 * poison that tests write into outputs before a kernel runs.
 * Parallelism: one invocation per element, 256 per workgroup, grid folded into 2-D past 65535 groups.
 *
 * @module
 */
import type { KernelSpec } from "../src/gpu/kernel.ts";

/** Fills `out` (n u32 words) with `bits`. */
export const FILL: KernelSpec = {
  name: "fill",
  reads: [],
  writes: ["out"],
  uniforms: { n: "u32", bits: "u32" },
  code: /* wgsl */ `
struct Params { n: u32, bits: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i < params.n) { out[i] = params.bits; }
}
`,
};
