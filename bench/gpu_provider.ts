/**
 * Which GPU each provider gives on this machine, with the permissions this process has: run with only
 * `--allow-ffi` to see what Dawn needs, and with more to compare.
 *
 *   deno run --allow-ffi bench/gpu_provider.ts
 */
// deno-lint-ignore-file no-console
import { Engine } from "../src/tensor/engine.ts";

for (const gpu of ["auto", "dawn", "deno"] as const) {
  try {
    const engine = await Engine.create({ gpu });
    const g = engine.runtime.gpu;
    const info = g.adapter.info as unknown as Record<string, unknown>;
    console.log(JSON.stringify({
      asked: gpu,
      provider: g.provider,
      backend: g.backend,
      description: g.description,
      precision: engine.precision,
      features: g.features,
      subgroupSizes: [info.subgroupMinSize, info.subgroupMaxSize],
      maxComputeWorkgroupStorageSize: g.limits.maxComputeWorkgroupStorageSize,
      adapterInfo: Object.fromEntries(
        ["vendor", "architecture", "device", "description"].map((k) => [k, info[k]]),
      ),
      subgroupMatrixConfigs: (info.subgroupMatrixConfigs as Record<string, unknown>[] | undefined)?.map((c) =>
        `${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K}`
      ),
    }));
  } catch (error) {
    console.log(`asked ${gpu}: ${(error as Error).message}`);
  }
}

// Which WGSL forms of the tensor-core kernels Dawn's compiler accepts (majorness as a template argument,
// subgroup_id as a subgroup-uniform index): compile a minimal kernel of each and print the messages.
try {
  const engine = await Engine.create({ gpu: "dawn" });
  const device = engine.runtime.gpu.device;
  const forms: Record<string, string> = {
    "subgroup_id + template majorness":
      `enable f16; enable subgroups; enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> tile: array<f16, 1024>;
@compute @workgroup_size(64) fn main(@builtin(subgroup_id) sg: u32) {
  let m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&tile, sg * 256u, 16u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&tile, sg * 256u, 16u);
  let c = subgroupMatrixMultiplyAccumulate(m, r, subgroup_matrix_result<f32, 16, 16>());
  subgroupMatrixStore<row_major>(&out, sg * 256u, c, 16u);
}`,
    "broadcast index + bool majorness":
      `enable f16; enable subgroups; enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> tile: array<f16, 1024>;
@compute @workgroup_size(64) fn main(@builtin(local_invocation_index) lid: u32) {
  let sg = subgroupBroadcastFirst(lid / 32u);
  let m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&tile, sg * 256u, false, 16u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&tile, sg * 256u, true, 16u);
  let c = subgroupMatrixMultiplyAccumulate(m, r, subgroup_matrix_result<f32, 16, 16>());
  subgroupMatrixStore(&out, sg * 256u, c, false, 16u);
}`,
  };
  for (const [label, code] of Object.entries(forms)) {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code });
    const info = await module.getCompilationInfo();
    device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
    const error = await device.popErrorScope();
    const messages = info.messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
    console.log(JSON.stringify({ form: label, ok: !error, error: error?.message.split("\n")[0], messages }));
  }
} catch (error) {
  console.log(`WGSL forms not checked: ${(error as Error).message}`);
}
