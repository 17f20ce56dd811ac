/**
 * Device acquisition: one shared adapter and device for the process, with the adapter's maximum limits
 * and the useful optional features requested. Knows nothing about tensors or models.
 *
 * @module
 */
import { GpuError, GpuUnavailableError } from "../errors.ts";

/** Optional WebGPU features difflm uses when the adapter grants them. */
export interface GpuFeatures {
  /** `shader-f16`: f16 storage and arithmetic in WGSL. */
  readonly f16: boolean;
  /** `timestamp-query`: per-pass GPU timings. */
  readonly timestamps: boolean;
  /** `subgroups`: subgroup reductions in WGSL. */
  readonly subgroups: boolean;
}

/** Options for {@linkcode requestGpu}. */
export interface GpuOptions {
  /**
   * Adapter preference passed to `navigator.gpu.requestAdapter`.
   * @default {"high-performance"}
   */
  powerPreference?: GPUPowerPreference;
}

/**
 * The adapter and device difflm runs on, with what they grant.
 *
 * @example Usage
 * ```ts ignore
 * import { requestGpu } from "@difflm/core/kernels";
 * const gpu = await requestGpu();
 * console.log(gpu.description, gpu.features.f16);
 * ```
 */
export interface Gpu {
  /** The adapter the device came from. */
  readonly adapter: GPUAdapter;
  /** The device every kernel runs on. */
  readonly device: GPUDevice;
  /** The adapter's description (e.g. `NVIDIA H100 80GB HBM3` or `llvmpipe (LLVM 15.0.6, 256 bits)`). */
  readonly description: string;
  /** Best guess of the backend: `vulkan`, `gl`, `metal`, `dx12` or `unknown`. */
  readonly backend: string;
  /** True for a software adapter that runs on the CPU (lavapipe, llvmpipe, WARP). */
  readonly fallback: boolean;
  /** Optional features granted. */
  readonly features: GpuFeatures;
  /** Limits granted to the device. */
  readonly limits: GPUSupportedLimits;
  /** Set once the device is lost; every later dispatch raises a {@linkcode GpuError}. */
  readonly lost: { reason: string; message: string } | null;
}

const LIMITS_WANTED = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxUniformBufferBindingSize",
  "maxDynamicUniformBuffersPerPipelineLayout",
  "maxBindingsPerBindGroup",
] as const;

const NO_ADAPTER = "Cannot find a WebGPU adapter: install a GPU driver with Vulkan support, " +
  "or Mesa's software renderer (Debian/Ubuntu: apt-get install mesa-vulkan-drivers, which provides lavapipe; " +
  "libgl1-mesa-dri provides llvmpipe through GL)";

function guessBackend(adapter: GPUAdapter): string {
  const env = readEnv("DENO_WEBGPU_BACKEND")?.toLowerCase() ?? "";
  if (env === "gl" || env === "gles") return "gl";
  if (env === "vulkan" || env === "vk") return "vulkan";
  // wgpu's GL backend reports an unbounded bindings-per-group limit and ETC2 texture compression; NVIDIA's
  // Vulkan adapter reports the same limit but not ETC2.
  if (
    adapter.limits.maxBindingsPerBindGroup === 4294967295 && adapter.features.has("texture-compression-etc2")
  ) {
    return "gl";
  }
  if (typeof Deno !== "undefined" && Deno.build.os === "darwin") return "metal";
  if (typeof Deno !== "undefined" && Deno.build.os === "windows") return "dx12";
  if (typeof Deno !== "undefined") return "vulkan";
  return "unknown";
}

/** Reads an environment variable if the runtime allows it, without prompting. */
export function readEnv(name: string): string | undefined {
  try {
    if (typeof Deno === "undefined") return undefined;
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Requests an adapter and a device with the adapter's maximum limits and the optional features difflm
 * uses (`shader-f16`, `timestamp-query`, `subgroups`) where granted. Most code calls
 * {@linkcode getGpu} instead, which shares one device per process.
 *
 * @example Usage
 * ```ts ignore
 * import { requestGpu } from "@difflm/core/kernels";
 * const gpu = await requestGpu();
 * console.log(gpu.limits.maxStorageBufferBindingSize);
 * ```
 * @param options Adapter preference.
 * @returns The adapter, device and what they grant.
 * @throws {GpuUnavailableError} If WebGPU is missing or no adapter is found.
 */
export async function requestGpu(options: GpuOptions = {}): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new GpuUnavailableError("Cannot find WebGPU: this runtime has no navigator.gpu");
  }
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) throw new GpuUnavailableError(NO_ADAPTER);
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS_WANTED) {
    const value = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof value === "number") requiredLimits[name] = value;
  }
  const wanted: GPUFeatureName[] = [];
  if (adapter.features.has("shader-f16")) wanted.push("shader-f16");
  if (adapter.features.has("timestamp-query")) wanted.push("timestamp-query");
  let device: GPUDevice | undefined;
  let subgroups = false;
  // Some adapters grant subgroups without listing them (PLATFORM.md §2): try, and fall back.
  for (const extra of [["subgroups" as GPUFeatureName], []]) {
    try {
      device = await adapter.requestDevice({ requiredLimits, requiredFeatures: [...wanted, ...extra] });
      subgroups = extra.length > 0;
      break;
    } catch {
      // try without the extra feature
    }
  }
  if (!device) {
    throw new GpuUnavailableError(`Cannot create a WebGPU device on "${adapter.info.description}"`);
  }
  const gpu: {
    adapter: GPUAdapter;
    device: GPUDevice;
    description: string;
    backend: string;
    fallback: boolean;
    features: GpuFeatures;
    limits: GPUSupportedLimits;
    lost: { reason: string; message: string } | null;
  } = {
    adapter,
    device,
    description: adapter.info.description || adapter.info.device || adapter.info.vendor || "unknown adapter",
    backend: guessBackend(adapter),
    fallback: adapter.info.isFallbackAdapter === true,
    features: {
      f16: device.features.has("shader-f16"),
      timestamps: device.features.has("timestamp-query"),
      subgroups,
    },
    limits: device.limits,
    lost: null,
  };
  device.lost.then((info) => {
    gpu.lost = { reason: String(info.reason), message: info.message };
    if (info.reason !== "destroyed") {
      console.error(`difflm: the GPU device was lost (${info.reason}): ${info.message}`);
    }
  });
  device.addEventListener("uncapturederror", (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    console.error(`difflm: uncaptured GPU error: ${error.message}`);
  });
  return gpu;
}

let shared: Promise<Gpu> | undefined;

/**
 * The process-wide GPU, requested on first use and shared by every model, tensor and kernel.
 *
 * @example Usage
 * ```ts ignore
 * import { getGpu } from "@difflm/core/kernels";
 * const gpu = await getGpu();
 * console.log(gpu.backend, gpu.features);
 * ```
 * @returns The shared GPU.
 * @throws {GpuUnavailableError} If no adapter is found.
 */
export function getGpu(): Promise<Gpu> {
  if (!shared) {
    shared = requestGpu();
    shared.catch(() => shared = undefined);
  }
  return shared;
}

/** Throws if the device was lost, naming what was about to run. */
export function assertAlive(gpu: Gpu, what: string): void {
  if (gpu.lost) throw new GpuError("device-lost", what, `${gpu.lost.reason}: ${gpu.lost.message}`);
}
