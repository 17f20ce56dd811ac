/**
 * Plans one matrix product for the `matmul` ops: which kernel (the f32 tiles of kernels/matmul.ts, the
 * same with f16-rounded operands, or the tensor-core tiles of kernels/matmul_tc.ts), which tile, and how
 * many K-splits. Pure: shapes and device facts in, a kernel spec and grid out.
 *
 * @module
 */
import {
  MATMUL_TILES,
  matmulKernel,
  type MatmulPrologue,
  matmulSharedBytes,
  type MatmulTile,
} from "../../../kernels/matmul.ts";
import {
  TENSOR_CORE_TILES,
  tensorCoreMatmulKernel,
  tensorCoreSharedBytes,
  type TensorCoreTile,
} from "../../../kernels/matmul_tc.ts";
import type { GpuFeatures } from "../../gpu/device.ts";
import { type KernelSpec, kernelVariants } from "../../gpu/kernel.ts";
import type { Precision } from "../engine.ts";

/** The options of a product that shape its plan (a subset of `MatmulIntoOptions`). */
export interface ProductOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: unknown;
  activation?: "gelu";
  pre?: unknown;
  /** The result is multiplied by GELU' of this pre-activation (see `MatmulProduct.geluGrad`). */
  geluGrad?: unknown;
  accumulate?: boolean;
  tile?: "large" | "small" | MatmulTile;
  splitK?: number;
  layout?: "rows" | "flat";
  /** A is computed as it is loaded (from another product's split-K partials; see `MatmulPrologue`). */
  prologue?: MatmulPrologue;
}

/** What the planner needs to know of the device and the call. */
export interface PlanContext {
  precision: Precision;
  features: GpuFeatures;
  limits: GPUSupportedLimits;
  /** The partial products go to the next LayerNorm (see `matmulResidual`). */
  defer: boolean;
}

/**
 * A planned product: the kernel, its grid and its K-splits (chunks of `kChunk`); with `halves` the
 * kernel reads f16 copies of both operands, made by `TO_HALVES` just before it.
 */
export interface ProductPlan {
  spec: KernelSpec;
  grid: [number, number, number];
  splits: number;
  kChunk: number;
  halves: boolean;
}

/** The f32 kernels' specs, memoised by variant (tile and layout included). */
const matmulSpec = kernelVariants(matmulKernel);
/** The tensor-core kernels' specs, memoised by variant. */
const tensorCoreSpec = kernelVariants(tensorCoreMatmulKernel);

/**
 * K-splits for a grid of `groups` workgroups: only when the grid is small (under `fullGrid`) and K
 * long enough, so that about 256 workgroups run, each over at least `minChunk` of K. This covers the
 * weight gradients dW = dyᵀ·x (K = B·L) and the small-batch products of sampling (64 rows, K = 512 or
 * 2048).
 */
function chooseSplits(groups: number, K: number, minChunk = 128, fullGrid = 128): number {
  if (groups >= fullGrid || K < 256) return 1;
  return Math.max(1, Math.min(Math.ceil(256 / groups), Math.floor(K / minChunk), 64));
}

/**
 * Tile and K-splits for a shape. 128×128 tiles were the fastest, or within noise of it, at every model
 * shape on an H200 (bench/RESULTS.md), so they are used whenever they give at least 128 workgroups or
 * K can be split; small problems take 64×64 tiles for more workgroups.
 */
function choosePlan(
  batch: number,
  M: number,
  N: number,
  K: number,
  deferred = false,
): { tile: MatmulTile; splits: number; step: number } {
  const { large, small } = MATMUL_TILES;
  const groups = (t: MatmulTile) => batch * Math.ceil(M / t.bm) * Math.ceil(N / t.bn);
  // Partials that the next LayerNorm sums cost no reduction pass, so a split pays from a larger grid:
  // the 128 large tiles of the 512-column residual products at 4096 rows (batch-64 sampling) are one
  // wave with one workgroup per compute unit; split in two, 200-step sampling at batch 64 ran 1934 →
  // 1770 ms on an H200. (Splitting grids under 256 everywhere also split the 252 tiles of the head at
  // batch 8, whose extra reduction pass cost more than it gained: 356 → 362 ms.)
  const splitsFor = (t: MatmulTile) => chooseSplits(groups(t), K, 128, deferred ? 192 : 128);
  // Fewer rows than a large tile (sampling one sequence: 64 rows) would leave half of each tile idle.
  const fits = M >= large.bm;
  // A grid of few large tiles over a short K (the attention output at 512 rows: 16 tiles, K = 512) ran
  // 0.136 → 0.084 ms on small tiles' four times more workgroups (H200). The K-splits and their chunk
  // boundaries (`step`) stay the large tile's, so the sums, and their rounding, do not change.
  if (fits && groups(large) < 32 && K <= 512 && splitsFor(large) > 1) {
    return { tile: small, splits: splitsFor(large), step: large.bk };
  }
  if (fits && (groups(large) >= 128 || splitsFor(large) > 1)) {
    return { tile: large, splits: splitsFor(large), step: large.bk };
  }
  // Fewer rows than a large tile (sampling one sequence): chunks down to 64 of K, so each workgroup
  // waits on half as many loads; batch-1 sampling 181 → 161 ms for 200 steps on an H200.
  return {
    tile: small,
    splits: fits ? splitsFor(small) : chooseSplits(groups(small), K, 64),
    step: small.bk,
  };
}

/**
 * How tensor-core products are planned (`mixed` precision on a device with subgroup matrices). The
 * default is the plan measured so far; benchmarks set the others to compare them in one process
 * (`bench/gpu_train_step.ts --tc`, `bench/gpu_matmul_tc.ts`).
 */
export interface TensorCorePolicy {
  /**
   * `"f32"`: every product stages its f32 operands as f16 in workgroup memory. `"f16"`: products on
   * large tiles first copy both operands to f16 (`TO_HALVES`, each copy reused until its source is
   * written, see `_halves.ts`) and load half the bytes.
   */
  readonly operands: "f32" | "f16";
  /**
   * Long reductions (K ≥ 4096 and at least 128 rows: the weight gradients, K = B·L) take large tiles,
   * K split to about one wave of them, instead of 64×64 tiles.
   */
  readonly splitLongK: boolean;
  /**
   * The tile of large-grid products: `large` (128×128, the default), `wide` (128×256) or `tall` (256×128),
   * see `TENSOR_CORE_TILES`.
   */
  readonly gridTile?: "large" | "wide" | "tall";
  /**
   * Large-grid tiles take two workgroup-memory stages with the K loop unrolled by two steps
   * (`TensorCoreTile.unrolled`) instead of their one stage. Meant for the 128×128 tile (41 – 44 KiB of
   * workgroup memory with two stages); `wide` and `tall` need 61 – 68 KiB, and where the device grants
   * less, products take the f32 kernels.
   */
  readonly twoStages?: boolean;
  /**
   * The tile of products whose grid of large tiles would not fill the card: `small` (64×64, the default),
   * `medium` (128×64; see `TENSOR_CORE_TILES`) where a grid of medium tiles still fills it (batch-64
   * sampling's 4096 rows; at batch 8, 512 rows, medium tiles took 200-step sampling from 212 to 341 ms on
   * an H100), or `large8` (128×128 on 8 subgroups, two stages) where its grid comes within a few tiles of
   * filling it (batch-64 sampling's 512-column products, 128 tiles: the 4096×512×2048 product alone took
   * 0.100 ms on this tile against 0.133 on the small one, H100, bench/RESULTS.md).
   */
  readonly fewTile?: "small" | "medium" | "large8";
  /** With f16 operands, large products load their fragments straight from storage (no staging). */
  readonly direct: boolean;
  /**
   * Products whose rows M and reduction K are both under this run on the f32 kernels with f16-rounded
   * operands (the same operand rounding, sums in f32) instead of tensor cores: sampling's products
   * (M = batch·length, at most 4096 at batch 64; K at most 2048), while training's (M or K =
   * batch·length = 16384) keep them. For comparison in benchmarks: on an H200, mixed sampling at batch 8
   * took 3.5 ms of GPU time a step, where the whole f32 step took 1.75 ms of wall time (bench/RESULTS.md).
   * 0 or unset: every product on tensor cores.
   */
  readonly f32Below?: number;
  /** Attention runs its f32 kernels instead of the tensor-core ones (kernels/attention_tc.ts). */
  readonly f32Attention?: boolean;
  /**
   * Large-grid products launch their tiles in groups of this many tile rows (`TensorCoreTile.group`)
   * instead of row-major order; 1 or unset: row-major.
   */
  readonly group?: number;
  /**
   * Products with a bias start their accumulators from it (`TensorCoreVariant.biasFirst`), so that a
   * bias-only epilogue stores whole tiles straight from the fragments.
   */
  readonly biasFirst?: boolean;
  /**
   * Epilogues stage a row of a subgroup's fragments per round (`TensorCoreVariant.strips`) where the
   * device grants the workgroup memory it takes.
   */
  readonly strips?: boolean;
}

/**
 * The plan measured so far: f32 operands staged, weight gradients on large tiles split over K. On an
 * H100 the split gradients took a training step from 61.4 to 56.7 ms (bench/RESULTS.md).
 */
export const DEFAULT_TENSOR_CORE_POLICY: TensorCorePolicy = Object.freeze({
  operands: "f32",
  splitLongK: true,
  direct: false,
});

let policy: TensorCorePolicy = DEFAULT_TENSOR_CORE_POLICY;

/**
 * Sets how tensor-core products are planned from now on, in this process (for benchmarks).
 *
 * @param next The policy.
 * @returns The policy it replaces.
 */
export function setTensorCorePolicy(next: TensorCorePolicy): TensorCorePolicy {
  const previous = policy;
  policy = Object.freeze({ ...next });
  return previous;
}

/** The policy in force (see {@linkcode setTensorCorePolicy}). */
export function tensorCorePolicy(): TensorCorePolicy {
  return policy;
}

/** Compute units of an H100 or H200: a grid of at least this many workgroups fills the card once. */
const COMPUTE_UNITS = 132;
/** A grid of at least this many workgroups comes within a few of filling the card once. */
const NEARLY_FULL = 120;

/** The tile of large-grid products under the current policy. */
function largeTile(): TensorCoreTile {
  const tile = TENSOR_CORE_TILES[policy.gridTile ?? "large"];
  return policy.twoStages ? tileVariant(tile, { stages: 2, unrolled: true }) : tile;
}

/**
 * `tile` with `changes` (direct loads, a launch group), one frozen object per resulting tile, so that the
 * same tile always comes back as the same object.
 */
const TILE_VARIANTS = new Map<string, TensorCoreTile>();
function tileVariant(tile: TensorCoreTile, changes: Partial<TensorCoreTile>): TensorCoreTile {
  const key = JSON.stringify({ ...tile, ...changes });
  let variant = TILE_VARIANTS.get(key);
  if (!variant) TILE_VARIANTS.set(key, variant = Object.freeze({ ...tile, ...changes }));
  return variant;
}

/**
 * Tensor-core tile for a shape, and whether its operands are first copied to f16: large tiles when they
 * fill the card's compute units at least once (132 on an H100/H200), or for long reductions under
 * `splitLongK`; else 64×64 tiles on the f32 operands, where two more dispatches per product would not
 * pay. K is split when the grid stays short (see {@linkcode tensorCoreSplits}).
 */
function chooseTensorCoreTile(
  shape: { batch: number; M: number; N: number; K: number },
  prologue: boolean,
): { tile: TensorCoreTile; halves: boolean } {
  const { batch, M, N, K } = shape;
  const large = largeTile();
  const many = batch * Math.ceil(M / large.bm) * Math.ceil(N / large.bn) >= COMPUTE_UNITS ||
    (policy.splitLongK && K >= 4096 && M >= 128);
  if (!many) return { tile: fewTile(shape), halves: false };
  // A prologue computes A from f32 partials as it loads them: there is no f16 copy of A to make.
  const halves = policy.operands === "f16" && !prologue;
  // Direct loads need whole 16×16 fragments and K chunks of whole steps.
  const direct = halves && policy.direct && M % 16 === 0 && N % 16 === 0 && K % large.bk === 0;
  const group = policy.group ?? 1;
  const tile = direct ? tileVariant(large, { direct: true }) : large;
  return { tile: group > 1 ? tileVariant(tile, { group }) : tile, halves };
}

/**
 * The tile of a product whose large-tile grid would not fill the card, under the current policy: the
 * medium tile only where its own grid does, the 8-subgroup 128×128 tile only where its grid reaches
 * `NEARLY_FULL` (the same grid as the large tile's, one workgroup per compute unit or so).
 */
function fewTile(shape: { batch: number; M: number; N: number }): TensorCoreTile {
  const { small, medium, large8 } = TENSOR_CORE_TILES;
  const { batch, M, N } = shape;
  const grid = (t: TensorCoreTile) => batch * Math.ceil(M / t.bm) * Math.ceil(N / t.bn);
  if (policy.fewTile === "medium" && M >= medium.bm && grid(medium) >= COMPUTE_UNITS) return medium;
  if (policy.fewTile === "large8" && M >= large8.bm && grid(large8) >= NEARLY_FULL) return large8;
  return small;
}

/**
 * K-splits of a tensor-core product. Small and medium tiles as the f32 kernels; the 8-subgroup tile
 * none; large tiles under `splitLongK` up to about one wave (one large tile per compute unit), each chunk
 * at least 512 long.
 */
function tensorCoreSplits(tile: TensorCoreTile, groups: number, K: number): number {
  const { small, medium, large8 } = TENSOR_CORE_TILES;
  // The 8-subgroup tile comes only with a grid that nearly fills the card: one wave, K whole (as timed).
  if (tile === large8) return 1;
  const few = tile === small || tile === medium;
  if (few || !policy.splitLongK) return chooseSplits(groups, K, 128, COMPUTE_UNITS);
  return groups >= NEARLY_FULL
    ? 1
    : Math.max(1, Math.min(Math.ceil(COMPUTE_UNITS / groups), Math.floor(K / 512)));
}

/**
 * The epilogue options of the policy (`biasFirst`, `strips`) that apply to a product and whose
 * workgroup memory the device grants, each alone and then both.
 */
function epilogueStaging(
  tile: TensorCoreTile,
  variant: { transA: boolean; transB: boolean; bias: boolean },
  context: PlanContext,
): { biasFirst?: true; strips?: true } {
  const fits = (options: { biasFirst?: true; strips?: true }) =>
    tensorCoreSharedBytes(tile, { ...variant, ...options }) <= context.limits.maxComputeWorkgroupStorageSize;
  const biasFirst = policy.biasFirst && variant.bias && fits({ biasFirst: true })
    ? { biasFirst: true as const }
    : {};
  const strips = policy.strips && fits({ ...biasFirst, strips: true }) ? { strips: true as const } : {};
  return { ...biasFirst, ...strips };
}

/**
 * Whether a product runs on tensor cores: `mixed` precision on a device with f16 subgroup matrices, and
 * not a product the policy leaves to the f32 kernels (`f32Below`).
 */
function usesTensorCores(
  shape: { M: number; K: number },
  options: ProductOptions,
  context: PlanContext,
): boolean {
  return context.precision === "mixed" && context.features.subgroupMatrix && options.tile === undefined &&
    Math.max(shape.M, shape.K) >= (policy.f32Below ?? 0) &&
    tensorCoreSharedBytes(largeTile(), { transA: options.transA, transB: options.transB }) <=
      context.limits.maxComputeWorkgroupStorageSize;
}

/** Splits bounded by the binding size of the partials, K's steps and the grid's z limit. */
function boundSplits(
  wanted: number,
  shape: { batch: number; M: number; N: number; K: number },
  step: number,
  limits: GPUSupportedLimits,
): { splits: number; kChunk: number } {
  const { batch, M, N, K } = shape;
  const maxSplits = Math.floor(limits.maxStorageBufferBindingSize / Math.max(1, batch * M * N * 4));
  let splits = Math.max(1, Math.min(wanted, maxSplits, Math.ceil(K / step), Math.floor(65535 / batch)));
  // K chunks are multiples of `step`; a chunk need not be a multiple of the tile's K step (loads stop at
  // the chunk's end).
  const kChunk = splits > 1 ? Math.ceil(K / splits / step) * step : Math.max(K, 1);
  if (splits > 1) splits = Math.ceil(K / kChunk);
  return { splits, kChunk };
}

/**
 * Plans a product of `shape` (A [M,K] or [K,M], B [K,N] or [N,K], batched) with `options`.
 *
 * @param shape Batch and matrix sizes.
 * @param options Transposes, epilogue, and pinned tile or splits.
 * @param context Precision, device features and limits.
 * @returns The kernel, grid and K-splits.
 */
export function planProduct(
  shape: { batch: number; M: number; N: number; K: number },
  options: ProductOptions,
  context: PlanContext,
): ProductPlan {
  const { batch, M, N, K } = shape;
  const transA = !!options.transA, transB = !!options.transB;
  const gelu = options.activation === "gelu";
  // vec4 storage needs every contiguous dimension (and so every batch stride) to be a multiple of 4.
  const vec4 = K % 4 === 0 && N % 4 === 0 && (!transA || M % 4 === 0);
  const epilogue = (splits: number) => ({
    transA,
    transB,
    bias: !!options.bias && splits === 1,
    gelu: gelu && splits === 1,
    pre: gelu && !!options.pre && splits === 1,
    geluGrad: !!options.geluGrad && splits === 1,
    accumulate: !!options.accumulate && splits === 1,
    vec4,
    ...(options.prologue ? { prologue: options.prologue } : {}),
  });
  if (usesTensorCores(shape, options, context)) {
    const { tile, halves } = chooseTensorCoreTile(shape, !!options.prologue);
    const groups = batch * Math.ceil(M / tile.bm) * Math.ceil(N / tile.bn);
    const { splits, kChunk } = boundSplits(
      options.splitK ?? tensorCoreSplits(tile, groups, K),
      shape,
      tile.bk,
      context.limits,
    );
    const fused = epilogue(splits);
    const spec = tensorCoreSpec({ ...fused, tile, halves, ...epilogueStaging(tile, fused, context) });
    const grid: [number, number, number] = [Math.ceil(N / tile.bn), Math.ceil(M / tile.bm), batch * splits];
    return { spec, grid, splits, kChunk, halves };
  }
  const plan = choosePlan(batch, M, N, K, context.defer);
  const tile = typeof options.tile === "string" ? MATMUL_TILES[options.tile] : options.tile ?? plan.tile;
  const groupsX = Math.ceil(N / tile.bn), groupsY = Math.ceil(M / tile.bm);
  const wanted = options.splitK ?? (options.tile ? chooseSplits(batch * groupsX * groupsY, K) : plan.splits);
  const { splits, kChunk } = boundSplits(wanted, shape, options.tile ? tile.bk : plan.step, context.limits);
  const layout = options.layout ??
    (matmulSharedBytes(tile, "rows") <= context.limits.maxComputeWorkgroupStorageSize ? "rows" : "flat");
  const spec = matmulSpec({
    ...epilogue(splits),
    layout,
    tile,
    f16Operands: context.precision === "mixed",
  });
  return { spec, grid: [groupsX, groupsY, batch * splits], splits, kChunk, halves: false };
}
