/**
 * `cli.ts info`: the adapter, its backend, features and limits.
 *
 * @module
 */
import { requestGpu } from "../gpu/device.ts";

/**
 * Describes the WebGPU adapter and device difflm would use, as printable lines.
 *
 * @example Usage
 * ```ts
 * import { describeGpu } from "./info.ts";
 * console.log((await describeGpu()).join("\n"));
 * ```
 * @returns Lines: adapter, backend, features, limits.
 */
export async function describeGpu(): Promise<string[]> {
  const gpu = await requestGpu();
  const info = gpu.adapter.info;
  const lines = [
    `adapter: ${gpu.description}`,
    `vendor: ${info.vendor || "?"}  architecture: ${info.architecture || "?"}  fallback (software): ${
      (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false
    }`,
    `backend: ${gpu.backend}`,
    `difflm features: shader-f16 ${gpu.features.f16 ? "yes" : "no"}, timestamp-query ${
      gpu.features.timestamps ? "yes" : "no"
    }, subgroups ${gpu.features.subgroups ? "yes" : "no"}`,
    `adapter features: ${[...gpu.adapter.features].sort().join(" ")}`,
    "limits:",
  ];
  const limits = gpu.device.limits as unknown as Record<string, number>;
  const names: string[] = [];
  for (const name in limits) names.push(name);
  for (const name of names.sort()) lines.push(`  ${name}: ${limits[name]}`);
  gpu.device.destroy();
  return lines;
}
