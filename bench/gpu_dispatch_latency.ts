/**
 * What one dispatch costs on this adapter when the work is tiny: N small dispatches recorded in one
 * compute pass, as a chain (each reads what the previous one wrote, so the GPU must finish one before
 * the next), as "disjoint" (16 pairs of buffers in turn, so a buffer is written again every 16
 * dispatches) and as "fresh" (no buffer written twice). Also lists the adapter's features. Prints, per
 * dispatch, the host time to record and submit and the wall time until the GPU is done; then what the
 * host calls the runtime makes around them cost on this provider (bind group creation, a small
 * `writeBuffer`, an error scope around a submission, waiting for an idle queue, mapping 4 bytes).
 *
 *   deno run -A bench/gpu_dispatch_latency.ts [--n 2000] [--groups 64] [--gpu deno|dawn]
 */
// deno-lint-ignore-file no-console
import { requestGpu } from "../src/gpu/device.ts";
import { benchArgs } from "./_args.ts";
import { median } from "./_timing.ts";

const args = benchArgs("deno", {
  n: { type: "string", default: "2000" },
  groups: { type: "string", default: "64" },
});
const n = Number(args.n), groups = Number(args.groups);
const { adapter, device, description } = await requestGpu({ provider: args.gpu });
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

/** Median microseconds of `reps` awaited calls of `fn`. */
async function medianUs(reps: number, fn: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return Number((1000 * median(times)).toFixed(2));
}

const small = new Float32Array(64);
const readable = device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const oneDispatch = () => {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, chain[0]!);
  pass.dispatchWorkgroups(1);
  pass.end();
  return encoder.finish();
};
console.log(JSON.stringify({
  what: "api_latency_us",
  adapter: description,
  create_bind_group: await medianUs(200, () => bind(buffers[0]!, buffers[1]!)),
  write_buffer_256_bytes: await medianUs(200, () => device.queue.writeBuffer(buffers[0]!, 0, small)),
  submit_one_dispatch: await medianUs(50, () => device.queue.submit([oneDispatch()])),
  error_scopes_around_submit: await medianUs(50, async () => {
    device.pushErrorScope("validation");
    device.queue.submit([oneDispatch()]);
    await device.popErrorScope();
  }),
  work_done_idle_queue: await medianUs(50, () => device.queue.onSubmittedWorkDone()),
  work_done_one_dispatch: await medianUs(50, () => {
    device.queue.submit([oneDispatch()]);
    return device.queue.onSubmittedWorkDone();
  }),
  map_4_bytes: await medianUs(50, async () => {
    await readable.mapAsync(GPUMapMode.READ);
    readable.unmap();
  }),
}));
