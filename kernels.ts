/**
 * For people who write kernels or new ops: the GPU runtime that compiles, caches and dispatches WGSL
 * kernels described by a `KernelSpec`, the `Engine` with its tensors and reverse-mode autograd tape, the
 * parameter arena, and the ops the model is built from (matmul, attention, layer norm, softmax, losses,
 * randomness, embedding, elementwise, AdamW). A new kernel family lives in `kernels/` as WGSL in a
 * TypeScript string, each entry point declared with `defineKernel` (which writes its bindings from the
 * spec) or, where the text depends on options, a builder made by `kernelVariants`; its op in
 * `src/tensor/ops/` dispatches it through the engine's runtime.
 *
 * @example Run an op and read the result
 * ```ts
 * import { Engine, gelu } from "@difflm/core/kernels";
 *
 * const engine = await Engine.create();
 * const y = gelu(engine.tensor(new Float32Array([-1, 0, 1]), [3]));
 * console.log(await y.read()); // Float32Array [ -0.1588…, 0, 0.8411… ]
 * ```
 * @module
 */
export { GpuError, GpuUnavailableError } from "./src/errors.ts";
export {
  getGpu,
  type Gpu,
  type GpuFeatures,
  type GpuOptions,
  type GpuProvider,
  requestGpu,
} from "./src/gpu/device.ts";
export {
  defineKernel,
  type KernelDefinition,
  type KernelSpec,
  kernelVariants,
  type StorageElement,
  type UniformType,
} from "./src/gpu/kernel.ts";
export {
  type BufferView,
  DispatchRecording,
  GpuRuntime,
  type KernelTiming,
  type PoolStats,
  type RecordedCommand,
} from "./src/gpu/runtime.ts";
export {
  Engine,
  type EngineOptions,
  grid1d,
  mixSeed,
  type Precision,
  type TapeNode,
} from "./src/tensor/engine.ts";
export { type DType, type HostArray, Tensor } from "./src/tensor/tensor.ts";
export { type ArenaName, gaussian, type Initializer, ParameterStore } from "./src/tensor/parameters.ts";
export { gelu } from "./src/tensor/ops/gelu.ts";
export {
  layerNorm,
  layerNormFilm,
  type LayerNormFilmOptions,
  type LayerNormOptions,
} from "./src/tensor/ops/layer_norm.ts";
export {
  add,
  addScaled,
  argmax,
  concat,
  l2Norm,
  maskedFill,
  type MaskedFillOptions,
  mean,
  mixRows,
  mul,
  reshape,
  scale,
  split,
  sum,
  sumOfSquares,
} from "./src/tensor/ops/elementwise.ts";
export { timeEmbedding } from "./src/tensor/ops/time_embedding.ts";
export {
  biasGradInto,
  linear,
  linearConcat,
  linearParts,
  matmul,
  matmulInto,
  type MatmulIntoOptions,
  matmulParts,
  matmulResidual,
  type MatmulShape,
  matmulShape,
  type SplitProduct,
} from "./src/tensor/ops/matmul.ts";
export { type MatmulTile } from "./kernels/matmul.ts";
export {
  attention,
  attentionBackward,
  attentionForward,
  type AttentionOptions,
} from "./src/tensor/ops/attention.ts";
export { softmax, softmaxInto, type SoftmaxIntoOptions } from "./src/tensor/ops/softmax.ts";
export {
  addScaledNoise,
  addScaledNoiseParts,
  dropout,
  dropoutAdd,
  randomNormal,
  randomNormalInto,
  randomUniform,
  randomUniformInto,
} from "./src/tensor/ops/random.ts";
export { embedding } from "./src/tensor/ops/embedding.ts";
export {
  crossEntropy,
  crossEntropyInto,
  type CrossEntropyOptions,
  type CrossEntropyOutputs,
  crossEntropyWithAccuracy,
  maskedMse,
} from "./src/tensor/ops/loss.ts";
export {
  type AdamwArenas,
  type AdamwOptions,
  adamwUpdate,
  type ArenaChunkOptions,
  emaUpdate,
  gradNormInto,
  scaleInto,
} from "./src/tensor/ops/adamw.ts";
