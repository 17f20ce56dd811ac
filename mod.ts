/**
 * difflm trains and samples a continuous diffusion language model on WebGPU, with hand-written WGSL
 * kernels. This entry holds what a program needs to train a model, resume it and sample from it: a
 * `TrainingRun` (a run directory trained with progress reports and an abort signal, resumed, sampled),
 * the pieces of the model (`NoiseSchedule`, `Estimator`, `Diffusion`), the `Sampler`, the `Tokenizer`,
 * the `Trainer`, the `Engine` that owns the GPU, the configs and presets, checkpoints, the built-in
 * corpus and its grammar, and the errors to catch.
 * The tokenizer alone is `@difflm/core/tokenizer`; the GPU runtime, tensors and ops for writing kernels
 * are `@difflm/core/kernels`; the command line is `@difflm/core/cli`.
 *
 * @example Train a small run and sample from it
 * ```ts
 * import { TrainingRun } from "@difflm/core";
 *
 * const model = { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 }; // small enough for a CPU adapter
 * const config = { model, train: { batch: 8 }, steps: 4, samples: 0 };
 * using run = await TrainingRun.create(await Deno.makeTempDir(), config);
 * console.log(await run.train()); // { step: 4, epoch: 0, stopped: "finished", skipped: 0 }
 * using sampler = run.sampler({ steps: 10 });
 * console.log((await sampler.generate({ count: 2 })).texts);
 * ```
 * @module
 */
export { NoiseSchedule, type NoiseScheduleOptions } from "./src/diffusion/noise_schedule.ts";
export { Estimator, type EstimatorInputs, type ForwardOptions } from "./src/diffusion/estimator.ts";
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
export type { LossScaleOptions, LossScaleState } from "./src/train/loss_scale.ts";
export { Engine, type EngineOptions, type Precision } from "./src/tensor/engine.ts";
export type { GpuProvider } from "./src/gpu/device.ts";
export {
  type BuiltinCorpusConfig,
  DEFAULT_MODEL,
  DEFAULT_TRAIN,
  type ModelConfig,
  modelConfig,
  type PresetName,
  PRESETS,
  type RunCadence,
  type RunSettings,
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
export {
  CHANGEABLE_TRAIN_KEYS,
  type ChangeableTrainKey,
  type RunChanges,
  type TrainingProgress,
  TrainingRun,
  type TrainingRunConfig,
  type TrainingRunOptions,
  type TrainOptions,
  type TrainResult,
} from "./src/train/run.ts";
export { CorpusIndex, type CorpusIndexBuildOptions, type CorpusSplit } from "./src/data/corpus_index.ts";
export { GpuError, GpuUnavailableError } from "./src/errors.ts";
