/**
 * difflm: train and sample a continuous diffusion language model on WebGPU, with hand-written WGSL
 * kernels. The pieces compose: a GPU runtime and tensor engine with reverse-mode autograd, the ops the
 * model needs, and (in later modules) NoiseSchedule, Estimator, Diffusion, Sampler and Tokenizer.
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, gelu } from "@difflm/core";
 * const engine = await Engine.create();
 * const y = gelu(engine.tensor(new Float32Array([-1, 0, 1]), [3]));
 * console.log(await y.read());
 * ```
 * @module
 */
export { GpuError, GpuUnavailableError } from "./src/errors.ts";
export { getGpu, type Gpu, type GpuFeatures, type GpuOptions, requestGpu } from "./src/gpu/device.ts";
export type { KernelSpec, UniformType } from "./src/gpu/kernel.ts";
export { type BufferView, GpuRuntime, type KernelTiming, type PoolStats } from "./src/gpu/runtime.ts";
export { Engine, grid1d, type TapeNode } from "./src/tensor/engine.ts";
export { type DType, type HostArray, Tensor } from "./src/tensor/tensor.ts";
export { gelu } from "./src/tensor/ops/gelu.ts";
