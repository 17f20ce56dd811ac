/**
 * time_embedding: learned sinusoidal features of diffusion time, f = 2π·t·w, out = [sin f, cos f],
 * forward and backward (into the frequencies w; t gets no gradient).
 * Parallelism: forward one invocation per output element (B·2F); backward one invocation per
 * frequency, summing over the batch in a fixed order (deterministic, no atomics).
 * Reference: tests/ref/time_embedding.ts (float64).
 *
 * @module
 */
import { defineKernel, type KernelSpec } from "../src/gpu/kernel.ts";

/** out [B, 2F] = [sin(2π t_b w_f), cos(2π t_b w_f)] for t [B], w [F]. */
export const TIME_EMBEDDING_FORWARD: KernelSpec = defineKernel({
  name: "time_embedding_forward",
  reads: ["t", "w"],
  writes: ["out"],
  uniforms: { batch: "u32", freqs: "u32" },
  body: /* wgsl */ `
@compute @workgroup_size(64)
fn time_embedding_forward(@builtin(global_invocation_id) gid: vec3u) {
  let width = 2u * params.freqs;
  if (gid.x >= params.batch * width) { return; }
  let b = gid.x / width;
  let j = gid.x % width;
  let f = 6.283185307179586 * t[b] * w[j % params.freqs];
  out[gid.x] = select(cos(f), sin(f), j < params.freqs);
}
`,
});

/** dw [F] += Σ_b 2π t_b (dout_sin·cos f − dout_cos·sin f). */
export const TIME_EMBEDDING_BACKWARD: KernelSpec = defineKernel({
  name: "time_embedding_backward",
  reads: ["t", "w", "dout"],
  writes: ["dw"],
  uniforms: { batch: "u32", freqs: "u32" },
  body: /* wgsl */ `
@compute @workgroup_size(64)
fn time_embedding_backward(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= params.freqs) { return; }
  let width = 2u * params.freqs;
  var acc = 0.0;
  for (var b = 0u; b < params.batch; b++) {
    let scale = 6.283185307179586 * t[b];
    let f = scale * w[k];
    acc += scale * (dout[b * width + k] * cos(f) - dout[b * width + params.freqs + k] * sin(f));
  }
  dw[k] += acc;
}
`,
});
