/**
 * difflm trains and samples a continuous diffusion language model on WebGPU, with hand-written WGSL
 * kernels. This entry holds what a program needs to train a model, resume it and sample from it: the
 * pieces of the model (`NoiseSchedule`, `Estimator`, `Diffusion`), the `Sampler`, the `Tokenizer`, the
 * `Trainer`, the `Engine` that owns the GPU, the configs and presets, checkpoints and the errors to catch.
 * The tokenizer alone is `@difflm/core/tokenizer`; the GPU runtime, tensors and ops for writing kernels
 * are `@difflm/core/kernels`; the command line is `@difflm/core/cli`.
 *
 * @example Sample from a new model
 * ```ts
 * import { Diffusion, Engine, Sampler } from "@difflm/core";
 *
 * const engine = await Engine.create();
 * const model = Diffusion.create(engine, { vocabSize: 50, embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 });
 * const { ids } = await new Sampler(model, { steps: 4, length: 8 }).generate({ count: 2 });
 * console.log(ids.length); // 2
 * ```
 * @module
 */
export { NoiseSchedule, type NoiseScheduleOptions } from "./src/diffusion/noise_schedule.ts";
export { Estimator, type ForwardOptions } from "./src/diffusion/estimator.ts";
export { Diffusion, type LossInputs, type LossOutputs } from "./src/diffusion/diffusion.ts";
export {
  type GenerateRequest,
  type GenerateResult,
  type SampleDecoder,
  Sampler,
  type SamplerOptions,
  type SamplingMethod,
} from "./src/diffusion/sampler.ts";
export {
  type EncodeOptions,
  SpmModelSyntaxError,
  Tokenizer,
  trainTokenizer,
  type TrainTokenizerOptions,
} from "./src/tokenizer/mod.ts";
export { type HostBatch, HostRandom, type StepMetrics, Trainer } from "./src/train/trainer.ts";
export { Engine, type EngineOptions, type Precision } from "./src/tensor/engine.ts";
export type { GpuProvider } from "./src/gpu/device.ts";
export {
  DEFAULT_MODEL,
  DEFAULT_TRAIN,
  type ModelConfig,
  modelConfig,
  PRESETS,
  type TrainConfig,
} from "./src/diffusion/config.ts";
export {
  type Checkpoint,
  CheckpointWriter,
  loadCheckpoint,
  loadRun,
  restoreCheckpoint,
} from "./src/train/checkpoint.ts";
export {
  type CheckpointFile,
  type CheckpointManifest,
  modelFromBytes,
  type RunConfig,
  type RunState,
} from "./src/train/state_dict.ts";
export type { HostTensor } from "./src/train/safetensors.ts";
export {
  builtinCorpus,
  type BuiltinCorpusOptions,
  generateSentences,
  grammarError,
  type GrammarRule,
  isGrammatical,
} from "./src/data/grammar.ts";
export { GpuError, GpuUnavailableError } from "./src/errors.ts";
