/**
 * Device acquisition: one shared adapter and device for the process, with the adapter's maximum limits
 * and the useful optional features requested. Knows nothing about tensors or models.
 *
 * Vocabulary: a *provider* is the WebGPU implementation the device comes from: `deno` is the runtime's
 * own `navigator.gpu` (Deno's wgpu, or a browser's), the default and the only one on CPU adapters;
 * `dawn` is Google's Dawn loaded from the npm package `webgpu` (a Node-API addon, so `--allow-ffi`),
 * which on NVIDIA offers subgroup matrices (tensor cores) that wgpu refuses. Dawn is imported only when
 * asked for, so nobody who does not ask downloads or loads it.
 *
 * @module
 */
import { GpuError, GpuUnavailableError } from "../errors.ts";
import { routeAddonImmediatesOnTimers } from "./dawn_events.ts";
import { debugLevel, hostOs, isDeno, permissionGranted, readEnv } from "../host.ts";

/** Optional WebGPU features difflm uses when the adapter grants them. */
export interface GpuFeatures {
  /** `shader-f16`: f16 storage and arithmetic in WGSL. */
  readonly f16: boolean;
  /** `timestamp-query`: per-pass GPU timings. */
  readonly timestamps: boolean;
  /** `subgroups`: subgroup reductions in WGSL. */
  readonly subgroups: boolean;
  /**
   * `chromium-experimental-subgroup-matrix` with an f16 × f16 → f32 configuration of 16×16×16: tensor
   * cores from WGSL (Dawn only).
   */
  readonly subgroupMatrix: boolean;
}

/**
 * Which WebGPU implementation to take the device from: `deno` (the runtime's `navigator.gpu`), `dawn`
 * (npm:webgpu, for tensor cores) or `auto` (Dawn where it loads and offers f16 subgroup matrices, else the
 * runtime's own; Dawn is not even loaded when the runtime's adapter is a CPU one).
 */
export type GpuProvider = "auto" | "deno" | "dawn";

/** The npm package that provides Dawn; kept in a variable so that module graphs never include it. */
export const DAWN_PACKAGE = "npm:webgpu@0.6.2";

/**
 * The flags Dawn's instance is created with. Experimental APIs (subgroup matrices) and f16 on NVIDIA's
 * Vulkan driver on; the rounding of timestamp queries (a browser's guard against timing attacks) off, so
 * profiles resolve short kernels; shader robustness (Dawn clamping or predicating every buffer and
 * workgroup-memory access) off, because every difflm kernel checks its own bounds and the clamps cost
 * 12% of a training step and 14 – 25% of sampling (bench/RESULTS.md). With `debug` robustness stays on,
 * so that a kernel reading out of bounds gets clamped values instead of undefined ones. `extra` toggles
 * (DIFFLM_DAWN_TOGGLES) are added to the enabled ones.
 *
 * @example Usage
 * ```ts
 * import { dawnFlags } from "./device.ts";
 * console.log(dawnFlags([], false)[0]?.includes("disable_robustness")); // true
 * ```
 * @param extra Further toggles to enable.
 * @param debug Whether DIFFLM_DEBUG is set.
 * @returns The flags for `create` of npm:webgpu.
 */
export function dawnFlags(extra: readonly string[], debug: boolean): string[] {
  const enabled = ["allow_unsafe_apis", "vulkan_enable_f16_on_nvidia"];
  if (!debug) enabled.push("disable_robustness");
  return [
    `enable-dawn-features=${[...enabled, ...extra].join(",")}`,
    "disable-dawn-features=timestamp_quantization",
  ];
}

/** Options for {@linkcode requestGpu}. */
export interface GpuOptions {
  /**
   * Adapter preference passed to `navigator.gpu.requestAdapter`.
   * @default {"high-performance"}
   */
  powerPreference?: GPUPowerPreference;
  /**
   * The WebGPU implementation to use (see {@linkcode GpuProvider}).
   * @default {"deno"}
   */
  provider?: GpuProvider;
}

/**
 * The adapter and device difflm runs on, with what they grant.
 *
 * @example Usage
 * ```ts
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
  /** The WebGPU implementation the device came from: `deno` (the runtime's own) or `dawn`. */
  readonly provider: "deno" | "dawn";
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
  const os = hostOs();
  if (os === "darwin") return "metal";
  if (os === "windows") return "dx12";
  if (os !== undefined) return "vulkan";
  return "unknown";
}

/** The part of `navigator.gpu` difflm uses; Dawn's `create()` returns the same shape. */
interface GpuEntry {
  requestAdapter(options?: GPURequestAdapterOptions): Promise<GPUAdapter | null>;
}

/**
 * The f16 × f16 → f32 16×16×16 subgroup-matrix configuration the tensor-core kernels are written for,
 * on subgroups of 32 invocations (their lane arithmetic assumes it; where the adapter reports sizes, they
 * must be exactly 32).
 */
function hasF16SubgroupMatrix(adapter: GPUAdapter): boolean {
  if (!adapter.features.has("chromium-experimental-subgroup-matrix" as GPUFeatureName)) return false;
  if (!adapter.features.has("shader-f16")) return false;
  const info = adapter.info as unknown as {
    subgroupMatrixConfigs?: readonly Record<string, unknown>[];
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
  };
  if ((info.subgroupMinSize ?? 32) !== 32 || (info.subgroupMaxSize ?? 32) !== 32) return false;
  const configs = info.subgroupMatrixConfigs ?? [];
  return configs.some((c) =>
    c.M === 16 && c.N === 16 && c.K === 16 && c.componentType === "f16" && c.resultComponentType === "f32"
  );
}

/** Whether this process may load a native addon, asked without prompting. */
function ffiGranted(): boolean {
  return permissionGranted({ name: "ffi" });
}

let dawnEntry: Promise<GpuEntry> | undefined;

/** Imports Dawn once per process; every failure becomes one message that says how to fix it. */
function loadDawn(): Promise<GpuEntry> {
  if (!isDeno()) {
    return Promise.reject(
      new GpuUnavailableError(
        `Cannot use Dawn: ${DAWN_PACKAGE} is a native addon that loads only in Deno; use the provider "deno" (this runtime's own WebGPU)`,
      ),
    );
  }
  if (!ffiGranted()) {
    return Promise.reject(
      new GpuUnavailableError(
        `Cannot use Dawn: loading ${DAWN_PACKAGE} (a native addon) needs the ffi permission; run again with --allow-ffi, or choose --gpu deno`,
      ),
    );
  }
  dawnEntry ??= (async () => {
    // A specifier in a variable stays out of module graphs: `deno install` and bundles never fetch it.
    const specifier = DAWN_PACKAGE;
    let module: { create(flags: string[]): GpuEntry };
    try {
      module = await import(specifier);
    } catch (error) {
      throw new GpuUnavailableError(
        `Cannot load Dawn from ${DAWN_PACKAGE}: ${
          error instanceof Error ? error.message.split("\n")[0] : String(error)
        }; fetch it once with: deno cache --no-lock ${DAWN_PACKAGE}`,
      );
    }
    // dawn.node's promises settle from setImmediate polls, which can stall in Deno (dawn_events.ts).
    routeAddonImmediatesOnTimers();
    // DIFFLM_DAWN_TOGGLES adds Dawn toggles (comma-separated, e.g. skip_validation) for experiments.
    const extra = (readEnv("DIFFLM_DAWN_TOGGLES") ?? "").split(",").filter((t) => t !== "");
    return module.create(dawnFlags(extra, debugLevel() > 0));
  })();
  dawnEntry.catch(() => dawnEntry = undefined);
  return dawnEntry;
}

/**
 * Dawn's high-performance adapter when it offers f16 subgroup matrices, else null (auto selection). Why
 * Dawn was passed over is said on stderr when `DIFFLM_DEBUG` is set.
 */
async function dawnTensorCoreAdapter(powerPreference: GPUPowerPreference): Promise<GPUAdapter | null> {
  const debug = debugLevel() > 0;
  try {
    const adapter = await (await loadDawn()).requestAdapter({ powerPreference });
    if (adapter && hasF16SubgroupMatrix(adapter)) return adapter;
    if (debug) {
      console.error(`difflm: auto: Dawn offers no f16 subgroup matrices here; using the built-in WebGPU`);
    }
  } catch (error) {
    if (debug) console.error(`difflm: auto: ${(error as Error).message}; using the built-in WebGPU`);
  }
  return null;
}

/**
 * Requests an adapter and a device with the adapter's maximum limits and the optional features difflm
 * uses (`shader-f16`, `timestamp-query`, `subgroups`, and on Dawn subgroup matrices) where granted, from
 * the provider asked for. Most code calls {@linkcode getGpu} instead, which shares one device per process.
 *
 * @example Usage
 * ```ts
 * import { requestGpu } from "@difflm/core/kernels";
 * const gpu = await requestGpu({ provider: "auto" });
 * console.log(gpu.provider, gpu.features.subgroupMatrix, gpu.limits.maxStorageBufferBindingSize);
 * ```
 * @param options Adapter preference and provider.
 * @returns The adapter, device and what they grant.
 * @throws {GpuUnavailableError} If WebGPU is missing, no adapter is found, or Dawn was asked for and
 * cannot be used (no ffi permission, package absent, no subgroup matrices); the message says which.
 */
export async function requestGpu(options: GpuOptions = {}): Promise<Gpu> {
  const provider = options.provider ?? "deno";
  if (provider !== "auto" && provider !== "deno" && provider !== "dawn") {
    throw new RangeError(`Cannot request a GPU: provider "${provider}" is not one of auto, deno, dawn`);
  }
  const powerPreference = options.powerPreference ?? "high-performance";
  if (provider === "dawn") {
    const adapter = await (await loadDawn()).requestAdapter({ powerPreference });
    if (!adapter) {
      throw new GpuUnavailableError(
        `Cannot use Dawn: ${DAWN_PACKAGE} found no GPU adapter (it needs a Vulkan, Metal or D3D12 driver); choose --gpu deno`,
      );
    }
    if (!hasF16SubgroupMatrix(adapter)) {
      throw new GpuUnavailableError(
        `Cannot use Dawn: "${
          adapter.info.description || adapter.info.device
        }" offers no f16 subgroup matrices ` +
          `(tensor cores); choose --gpu deno`,
      );
    }
    return openDevice(adapter, "dawn");
  }
  const native = typeof navigator !== "undefined" && "gpu" in navigator ? navigator.gpu : undefined;
  const adapter = native ? await native.requestAdapter({ powerPreference }) : null;
  // Auto: a CPU adapter means no GPU for Dawn to find either, so Dawn is not even loaded there.
  if (provider === "auto" && adapter?.info.isFallbackAdapter !== true && ffiGranted()) {
    const dawn = await dawnTensorCoreAdapter(powerPreference);
    if (dawn) return openDevice(dawn, "dawn");
  }
  if (!native) throw new GpuUnavailableError("Cannot find WebGPU: this runtime has no navigator.gpu");
  if (!adapter) throw new GpuUnavailableError(NO_ADAPTER);
  return openDevice(adapter, "deno");
}

async function openDevice(adapter: GPUAdapter, provider: "deno" | "dawn"): Promise<Gpu> {
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS_WANTED) {
    const value = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof value === "number") requiredLimits[name] = value;
  }
  const wanted: GPUFeatureName[] = [];
  if (adapter.features.has("shader-f16")) wanted.push("shader-f16");
  if (adapter.features.has("timestamp-query")) wanted.push("timestamp-query");
  const subgroupMatrix = provider === "dawn" && hasF16SubgroupMatrix(adapter);
  if (subgroupMatrix) wanted.push("chromium-experimental-subgroup-matrix" as GPUFeatureName);
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
    provider: "deno" | "dawn";
    fallback: boolean;
    features: GpuFeatures;
    limits: GPUSupportedLimits;
    lost: { reason: string; message: string } | null;
  } = {
    adapter,
    device,
    // Dawn puts the driver version in `description` and the card's name in `device`.
    description: (provider === "dawn" ? adapter.info.device : adapter.info.description) ||
      adapter.info.description || adapter.info.device || adapter.info.vendor || "unknown adapter",
    backend: provider === "dawn" ? dawnBackend() : guessBackend(adapter),
    provider,
    fallback: adapter.info.isFallbackAdapter === true,
    features: {
      f16: device.features.has("shader-f16"),
      timestamps: device.features.has("timestamp-query"),
      subgroups,
      subgroupMatrix: subgroupMatrix &&
        device.features.has("chromium-experimental-subgroup-matrix" as GPUFeatureName),
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

/** Dawn's backend on this operating system (its adapter info does not name it). */
function dawnBackend(): string {
  const os = hostOs();
  return os === "darwin" ? "metal" : os === "windows" ? "d3d12" : "vulkan";
}

let shared: Promise<Gpu> | undefined;
let sharedProvider: GpuProvider | undefined;

/**
 * The process-wide GPU, requested on first use and shared by every model, tensor and kernel; asking for
 * another provider than the last call requests a new one.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * const gpu = await getGpu();
 * console.log(gpu.backend, gpu.features);
 * ```
 * @param options Adapter preference and provider (see {@linkcode requestGpu}).
 * @returns The shared GPU.
 * @throws {GpuUnavailableError} If no adapter is found or the provider asked for cannot be used.
 */
export function getGpu(options: GpuOptions = {}): Promise<Gpu> {
  const provider = options.provider ?? "deno";
  if (!shared || sharedProvider !== provider) {
    sharedProvider = provider;
    const request = requestGpu(options);
    shared = request;
    request.catch(() => {
      if (shared === request) shared = undefined;
    });
  }
  return shared;
}

/** Throws if the device was lost, naming what was about to run. */
export function assertAlive(gpu: Gpu, what: string): void {
  if (gpu.lost) throw new GpuError("device-lost", what, `${gpu.lost.reason}: ${gpu.lost.message}`);
}
