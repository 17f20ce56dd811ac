/**
 * Peak multiply-add rate of this adapter from WGSL: every invocation runs 16 independent chains of
 * `fma` on vec4 registers, in f32, in f16 (where `shader-f16` exists), and in f16 with each chain's
 * value converted to f32 and added to an f32 sum every `flush` steps (what a product with f16
 * arithmetic and f32 accumulation would pay). Prints TFLOP/s (2 per multiply-add), the median of 5 runs.
 *
 *   deno run -A bench/gpu_fma_rate.ts [--iters 4096] [--groups 8192] [--flush 16] [--gpu deno|dawn]
 */
// deno-lint-ignore-file no-console
import { parseArgs } from "node:util";
import type { GpuProvider } from "../src/gpu/device.ts";
import { requestGpu } from "../src/gpu/device.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    gpu: { type: "string", default: "deno" },
    iters: { type: "string", default: "4096" },
    groups: { type: "string", default: "8192" },
    flush: { type: "string", default: "16" },
  },
});
const iters = Number(args.iters), groups = Number(args.groups), flush = Number(args.flush);
const { device, description } = await requestGpu({ provider: args.gpu as GpuProvider });
const f16 = device.features.has("shader-f16");
const CHAINS = 16;

function kernel(type: "f32" | "f16" | "f16-flush"): string {
  const t = type === "f32" ? "f32" : "f16";
  const lines = [type === "f32" ? "" : "enable f16;"];
  lines.push("@group(0) @binding(0) var<storage, read_write> out: array<f32>;");
  lines.push("struct Params { iters: u32, scale: f32 }");
  lines.push("@group(0) @binding(1) var<uniform> params: Params;");
  lines.push("@compute @workgroup_size(256)");
  lines.push("fn main(@builtin(global_invocation_id) gid: vec3u) {");
  lines.push(`  let m = vec4<${t}>(${t}(params.scale));`);
  lines.push(`  let seed = ${t}(f32(gid.x & 7u) * 0.001);`);
  for (let c = 0; c < CHAINS; c++) lines.push(`  var a${c} = vec4<${t}>(seed + ${t}(${c}.0 * 0.01));`);
  if (type === "f16-flush") {
    for (let c = 0; c < CHAINS; c++) lines.push(`  var s${c} = vec4f(0.0);`);
  }
  const inner = type === "f16-flush" ? flush : 1;
  lines.push(`  for (var i = 0u; i < params.iters; i += ${inner}u) {`);
  for (let k = 0; k < inner; k++) {
    for (let c = 0; c < CHAINS; c++) lines.push(`    a${c} = fma(a${c}, m, m);`);
  }
  if (type === "f16-flush") {
    for (let c = 0; c < CHAINS; c++) lines.push(`    s${c} += vec4f(a${c}); a${c} = vec4h(0.0);`);
  }
  lines.push("  }");
  const sum = Array.from({ length: CHAINS }, (_, c) => (type === "f16-flush" ? `s${c}` : `vec4f(a${c})`));
  lines.push(`  let total = ${sum.join(" + ")};`);
  lines.push("  out[gid.x] = total.x + total.y + total.z + total.w;");
  lines.push("}");
  return lines.join("\n");
}

const out = device.createBuffer({ size: groups * 256 * 4, usage: GPUBufferUsage.STORAGE });
const uniform = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const params = new ArrayBuffer(16);
new Uint32Array(params, 0, 1)[0] = iters;
new Float32Array(params, 4, 1)[0] = 0.999;
device.queue.writeBuffer(uniform, 0, params);

const types = (["f32", "f16", "f16-flush"] as const).filter((t) => t === "f32" || f16);
console.log(JSON.stringify({ adapter: description, f16, iters, groups, flush }));
for (const type of types) {
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module: device.createShaderModule({ code: kernel(type) }), entryPoint: "main" },
  });
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: out } }, { binding: 1, resource: { buffer: uniform } }],
  });
  const run = async () => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(groups);
    pass.end();
    const start = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - start;
  };
  await run();
  const times: number[] = [];
  for (let r = 0; r < 5; r++) times.push(await run());
  times.sort((a, b) => a - b);
  const ms = times[2]!;
  const flops = groups * 256 * iters * CHAINS * 4 * 2;
  console.log(JSON.stringify({ type, ms: +ms.toFixed(2), tflops: +(flops / ms / 1e9).toFixed(1) }));
}
