/**
 * What one dispatch costs on this adapter when the work is tiny: N small dispatches recorded in one
 * compute pass, as a chain (each reads what the previous one wrote, so the GPU must finish one before
 * the next), as "disjoint" (16 pairs of buffers in turn, so a buffer is written again every 16
 * dispatches) and as "fresh" (no buffer written twice). Also lists the adapter's features. Prints, per
 * dispatch, the host time to record and submit and the wall time until the GPU is done.
 *
 *   deno run -A bench/gpu_dispatch_latency.ts [--n 2000] [--groups 64] [--gpu deno|dawn]
 */
// deno-lint-ignore-file no-console
import { parseArgs } from "node:util";
import type { GpuProvider } from "../src/gpu/device.ts";
import { requestGpu } from "../src/gpu/device.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    gpu: { type: "string", default: "deno" },
    n: { type: "string", default: "2000" },
    groups: { type: "string", default: "64" },
  },
});
const n = Number(args.n), groups = Number(args.groups);
const { adapter, device, description } = await requestGpu({ provider: args.gpu as GpuProvider });
console.log(
  JSON.stringify({ what: "adapter_features", adapter: description, features: [...adapter.features] }),
);
const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  dst[gid.x] = src[gid.x] * 0.5 + 1.0;
}`;
const pipeline = device.createComputePipeline({
  layout: "auto",
  compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
});
const size = groups * 64 * 4;
const buffers = Array.from(
  { length: 34 + n },
  () => device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST }),
);
const bind = (src: GPUBuffer, dst: GPUBuffer) =>
  device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }],
  });
// chain: 0→1, 1→0, … ; disjoint: 2k→2k+1 over 16 pairs, so a buffer is reused only every 16 dispatches.
const chain = [bind(buffers[0]!, buffers[1]!), bind(buffers[1]!, buffers[0]!)];
const disjoint = Array.from({ length: 16 }, (_, k) => bind(buffers[2 + 2 * k]!, buffers[3 + 2 * k]!));
// fresh: every dispatch writes a buffer no other dispatch touches, so none waits for another's output
// (wgpu may still place a barrier before a buffer's first write).
const fresh = Array.from({ length: n }, (_, k) => bind(buffers[0]!, buffers[34 + k]!));

async function run(groupsOf: GPUBindGroup[]): Promise<{ host: number; total: number }> {
  await device.queue.onSubmittedWorkDone();
  const start = performance.now();
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  for (let i = 0; i < n; i++) {
    pass.setBindGroup(0, groupsOf[i % groupsOf.length]!);
    pass.dispatchWorkgroups(groups);
  }
  pass.end();
  device.queue.submit([encoder.finish()]);
  const host = performance.now() - start;
  await device.queue.onSubmittedWorkDone();
  return { host, total: performance.now() - start };
}

for (const [what, groupsOf] of [["chain", chain], ["disjoint", disjoint], ["fresh", fresh]] as const) {
  await run(groupsOf);
  const rounds = [await run(groupsOf), await run(groupsOf), await run(groupsOf)];
  rounds.sort((a, b) => a.total - b.total);
  const { host, total } = rounds[1]!;
  console.log(JSON.stringify({
    what: `dispatch_${what}`,
    adapter: description,
    dispatches: n,
    workgroups: groups,
    host_us_per_dispatch: Number((1000 * host / n).toFixed(2)),
    total_us_per_dispatch: Number((1000 * total / n).toFixed(2)),
  }));
}
