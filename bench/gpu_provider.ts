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
      subgroupMatrixConfigs: info.subgroupMatrixConfigs,
    }));
  } catch (error) {
    console.log(`asked ${gpu}: ${(error as Error).message}`);
  }
}
