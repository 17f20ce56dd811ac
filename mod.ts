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
export {
  getGpu,
  type Gpu,
  type GpuFeatures,
  type GpuOptions,
  type GpuProvider,
  requestGpu,
} from "./src/gpu/device.ts";
export type { KernelSpec, UniformType } from "./src/gpu/kernel.ts";
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
export { type ArenaName, gaussian, type Initializer, ParameterStore } from "./src/tensor/parameters.ts";
export {
  type AdamwArenas,
  type AdamwOptions,
  adamwUpdate,
  type ArenaChunkOptions,
  emaUpdate,
  gradNormInto,
  scaleInto,
} from "./src/tensor/ops/adamw.ts";
export { learningRate, type LearningRateOptions } from "./src/train/lr_schedule.ts";
export { decodeSafetensors, encodeSafetensors, type HostTensor } from "./src/train/safetensors.ts";
export { lossCurvesSvg, type LossPoint } from "./src/train/loss_plot.ts";
export { pathExists, readFileNamed, readJsonNamed, writeFileAtomic } from "./src/train/files.ts";
export { Xoshiro128, type Xoshiro128State } from "./src/data/xoshiro128.ts";
export { epochPermutation, permutation, shuffle } from "./src/data/shuffle.ts";
export { CorpusIndex, type CorpusIndexBuildOptions, type CorpusSplit } from "./src/data/corpus_index.ts";
export {
  type Batch,
  type BatchTokenizer,
  collateIds,
  type CollateIdsOptions,
  Collator,
  type CollatorOptions,
} from "./src/data/collate.ts";
export { BatchStream, type BatchStreamOptions, type BatchStreamState } from "./src/data/batches.ts";
export {
  builtinCorpus,
  type BuiltinCorpusOptions,
  generateSentences,
  grammarError,
  type GrammarRule,
  grammarVocabulary,
  grammarWordLists,
  isGrammatical,
} from "./src/data/grammar.ts";
export { NoiseSchedule, type NoiseScheduleOptions } from "./src/diffusion/noise_schedule.ts";
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
  trainConfig,
} from "./src/diffusion/config.ts";
export {
  biasGradInto,
  linear,
  matmul,
  matmulInto,
  type MatmulIntoOptions,
  matmulResidual,
  type MatmulShape,
  matmulShape,
  type SplitProduct,
} from "./src/tensor/ops/matmul.ts";
export {
  attention,
  attentionBackward,
  attentionForward,
  type AttentionOptions,
} from "./src/tensor/ops/attention.ts";
export { softmax, softmaxInto, type SoftmaxIntoOptions } from "./src/tensor/ops/softmax.ts";
export {
  addScaledNoise,
  dropout,
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
export { Estimator, type ForwardOptions } from "./src/diffusion/estimator.ts";
export { Diffusion, type LossInputs, type LossOutputs } from "./src/diffusion/diffusion.ts";
export {
  type GenerateRequest,
  type GenerateResult,
  MAX_SAMPLE_LENGTH,
  MAX_SAMPLES,
  MAX_SAMPLING_STEPS,
  reverseStep,
  type SampleDecoder,
  Sampler,
  type SamplerOptions,
  type SamplingMethod,
} from "./src/diffusion/sampler.ts";
export { type HostBatch, HostRandom, type StepMetrics, Trainer } from "./src/train/trainer.ts";
export {
  appendLog,
  type Checkpoint,
  CheckpointWriter,
  loadCheckpoint,
  loadRun,
  readCheckpointManifest,
  readLog,
  restoreCheckpoint,
  RUN_FILES,
  runFiles,
  truncateLog,
} from "./src/train/checkpoint.ts";
export { LOCK_FILE, RunLock } from "./src/train/run_lock.ts";
export {
  type CheckpointFile,
  checkpointFilePath,
  type CheckpointManifest,
  CHECKPOINTS_FOLDER,
  decodeCheckpointManifest,
  decodeRunConfig,
  decodeRunState,
  loadMoments,
  loadStateDict,
  MANIFEST_FILE,
  modelFromBytes,
  modelFromStateDict,
  modelStateDict,
  momentsStateDict,
  type RunConfig,
  type RunState,
  samplingWeightsFile,
} from "./src/train/state_dict.ts";
export {
  BUILTIN_CORPUS,
  CHANGEABLE_TRAIN_KEYS,
  type ChangeableTrainKey,
  CPU_DEMONSTRATION,
  MAX_SKIPPED_IN_A_ROW,
  type RunChanges,
  type TrainingProgress,
  TrainingRun,
  type TrainingRunConfig,
  type TrainingRunOptions,
  type TrainOptions,
  type TrainResult,
} from "./src/train/run.ts";
export {
  type ByteBuffer,
  type DecodeOptions,
  type EncodeOptions,
  type Encoding,
  firstInvalidUtf8,
  type ModelPiece,
  type ModelProto,
  ModelType,
  Mt19937,
  nmtNfkcCharsmap,
  Normalizer,
  NORMALIZER_SPEC_DEFAULTS,
  type NormalizerSpec,
  parseModelProto,
  PieceType,
  type RandomSource,
  readLines,
  type ReadLinesOptions,
  serializeModelProto,
  type SpecialIds,
  SpmModelSyntaxError,
  type TextLine,
  Tokenizer,
  type TokenizerModelType,
  TRAINER_SPEC_DEFAULTS,
  type TrainerSpec,
  trainTokenizer,
  type TrainTokenizerOptions,
  uniformDouble,
  validateModelProto,
} from "./src/tokenizer/mod.ts";
export { type MatmulTile } from "./kernels/matmul.ts";
