/**
 * The `matmul` family of ops over kernels/matmul.ts: `matmulInto` (a kernel-level launcher without
 * autograd, for hand-fused loops), `matmul` (C = op(A)·op(B) with autograd) and `linear` (PyTorch's
 * `x·Wᵀ + b`, optionally followed by a fused GELU, with autograd).
 *
 * Shapes: A is [M, K] (or [K, M] with `transA`), B is [K, N] (or [N, K] with `transB`). When both have
 * rank ≥ 3 the leading dimensions are a batch (they must match). When B has rank 2, the leading
 * dimensions of A merge into its first matrix dimension (A [B, L, K] is [B·L, K]).
 * Nothing here does math beyond shapes and grid sizes.
 *
 * @module
 */
import { GELU_BACKWARD_WRITE } from "../../../kernels/gelu.ts";
import {
  BIAS_GRAD_ROWS,
  biasGradKernel,
  matmulReduceKernel,
  type MatmulTile,
} from "../../../kernels/matmul.ts";
import { halvesOf } from "./_halves.ts";
import { planProduct } from "./_matmul_plan.ts";
import { kernelVariants } from "../../gpu/kernel.ts";
import { type Engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";

/** Options of {@linkcode matmulInto}. */
export interface MatmulIntoOptions {
  /** A is stored [K, M]: the product uses Aᵀ. */
  transA?: boolean;
  /** B is stored [N, K]: the product uses Bᵀ. */
  transB?: boolean;
  /** Added to every row of the result: N elements. */
  bias?: Tensor;
  /** Applied after the bias. */
  activation?: "gelu";
  /** With `activation`: receives the pre-activation (same shape as `out`), for backward. */
  pre?: Tensor;
  /**
   * GELU's backward folded into the product: the result is multiplied elementwise by GELU'(geluGrad)
   * before it is written or added, `geluGrad` being a saved pre-activation (same shape as `out`). Not
   * with `bias` or `activation`.
   */
  geluGrad?: Tensor;
  /** `out += result` instead of `out = result` (gradient accumulation). */
  accumulate?: boolean;
  /** Tile configuration; chosen from the shape when omitted (benchmarks and tests pin it). */
  tile?: "large" | "small" | MatmulTile;
  /**
   * Number of K chunks computed in parallel and then summed (only without bias and activation); chosen
   * from the shape when omitted, 1 turns splitting off.
   */
  splitK?: number;
  /**
   * Workgroup tile layout (benchmarks and tests pin it); `rows` when the device's workgroup memory
   * allows it, else `flat`.
   */
  layout?: "rows" | "flat";
}

/** The sizes of one product, as {@linkcode matmulShape} reads them. */
export interface MatmulShape {
  /** Batch entries (1 without a batch). */
  batch: number;
  /** Rows of the result. */
  M: number;
  /** Columns of the result. */
  N: number;
  /** The reduced dimension. */
  K: number;
  /** Shape of the result. */
  outShape: number[];
}

const prod = (dims: readonly number[]) => dims.reduce((x, y) => x * y, 1);
const fmt = (shape: readonly number[]) => `[${shape.join(",")}]`;

/**
 * Reads M, N, K and the batch from the operand shapes (see the module doc for the rules).
 *
 * @example Usage
 * ```ts
 * import { matmulShape } from "./matmul.ts";
 * console.log(matmulShape([4, 16, 32], [64, 32], { transB: true }));
 * // { batch: 1, M: 64, N: 64, K: 32, outShape: [4, 16, 64] }
 * ```
 * @param a Shape of A.
 * @param b Shape of B.
 * @param options Transposes.
 * @param op Op name for error messages.
 * @returns The sizes and the result's shape.
 * @throws {TypeError} If the shapes do not fit.
 */
export function matmulShape(
  a: readonly number[],
  b: readonly number[],
  options: { transA?: boolean; transB?: boolean } = {},
  op = "matmul",
): MatmulShape {
  const { transA = false, transB = false } = options;
  if (a.length < 2) {
    throw new TypeError(`Cannot run ${op}: a has shape ${fmt(a)}, expected [..,${transA ? "K,M" : "M,K"}]`);
  }
  if (b.length < 2) {
    throw new TypeError(`Cannot run ${op}: b has shape ${fmt(b)}, expected [..,${transB ? "N,K" : "K,N"}]`);
  }
  let batch = 1, aRows: number, aCols: number;
  if (a.length >= 3 && b.length >= 3) {
    const la = a.slice(0, -2), lb = b.slice(0, -2);
    if (la.length !== lb.length || la.some((d, i) => d !== lb[i])) {
      throw new TypeError(
        `Cannot run ${op}: a has shape ${fmt(a)} and b has shape ${
          fmt(b)
        }, expected the same batch dimensions`,
      );
    }
    batch = prod(la);
    aRows = a.at(-2)!;
    aCols = a.at(-1)!;
  } else if (b.length === 2) {
    aRows = prod(a.slice(0, -1));
    aCols = a.at(-1)!;
  } else {
    throw new TypeError(
      `Cannot run ${op}: a has shape ${fmt(a)} and b has shape ${
        fmt(b)
      }, expected b of rank 2 or both batched`,
    );
  }
  const M = transA ? aCols : aRows;
  const K = transA ? aRows : aCols;
  const [bRows, bCols] = [b.at(-2)!, b.at(-1)!];
  const Kb = transB ? bCols : bRows;
  const N = transB ? bRows : bCols;
  if (K !== Kb) {
    const want = transB ? `N,${K}` : `${K},N`;
    throw new TypeError(
      `Cannot run ${op}: b has shape ${fmt(b)}, expected [..,${want}] to match a ${fmt(a)}`,
    );
  }
  // Batched: [..batch, M, N]; B shared and A untransposed: A's leading dimensions, then N.
  const outShape = batch > 1 || b.length > 2
    ? [...a.slice(0, -2), M, N]
    : transA
    ? [M, N]
    : [...a.slice(0, -1), N];
  return { batch, M, N, K, outShape };
}

interface Launch {
  /** A, or with `aParts` the partial products A is the sum of. */
  a: Tensor;
  /** A is `a`'s partial products summed, plus this bias, through GELU, as the kernel loads them. */
  aParts?: { splits: number; bias: Tensor };
  /** A is the concatenation of `a` and these two along K, read in place as the kernel loads it. */
  aConcat?: readonly [Tensor, Tensor];
  b: Tensor;
  out: Tensor;
  batch: number;
  M: number;
  N: number;
  K: number;
  options: MatmulIntoOptions;
}

/**
 * A product left as its split-K partial sums: its value is Σ_s part[s] (+ bias) (then GELU), summed in
 * split order, then the bias, then the activation, as the reduction pass would. Made by
 * {@linkcode matmulResidual} (LayerNorm's `residual` option adds it into its input) and
 * {@linkcode linearParts} (`attention` takes it as qkv; with bias and GELU, {@linkcode matmulInto} and
 * {@linkcode matmulResidual} take it as A).
 */
export interface SplitProduct {
  /** The partial products, [splits, M, N]. */
  readonly part: Tensor;
  /** Number of partial products (at least 2). */
  readonly splits: number;
  /** Bias [N] added after the partial sums. */
  readonly bias?: Tensor;
  /** Applied after the bias. */
  readonly activation?: "gelu";
}

/**
 * What a product split over K becomes: summed by the reduction pass (`sum`), or left as its partial
 * products, its K-splits planned for the next LayerNorm (`residual`: with no reduction pass to pay, a
 * split pays from a larger grid) or as for `sum` (`parts`: split exactly where the summed product is, so
 * a consumer that sums the partials sees the summed product's values to the bit).
 */
type SplitUse = "sum" | "residual" | "parts";

function launch(engine: Engine, l: Launch, use: SplitUse = "sum"): SplitProduct | null {
  const { a, b, out, batch, M, N, K, options, aParts, aConcat } = l;
  const gelu = options.activation === "gelu";
  const gpu = engine.runtime.gpu;
  const prologue = aParts ? "parts_bias_gelu" : aConcat ? "concat3" : undefined;
  const { spec, grid, splits, kChunk, halves } = planProduct(
    { batch, M, N, K },
    prologue ? { ...options, prologue } : options,
    { precision: engine.precision, features: gpu.features, limits: gpu.limits, defer: use === "residual" },
  );
  const uniforms = {
    M,
    N,
    K,
    strideA: M * K,
    strideB: K * N,
    strideC: M * N,
    splits,
    kChunk,
    ...(aParts ? { a_parts: aParts.splits, a_part_stride: M * K } : {}),
  };
  const copies = halves ? [halvesOf(engine, a), halvesOf(engine, b)] : [];
  const operands: Record<string, Tensor> = { a: copies[0]?.copy ?? a, b: copies[1]?.copy ?? b };
  if (aParts) operands.a_bias = aParts.bias;
  if (aConcat) [operands.a_mid, operands.a_last] = aConcat;
  const product = (views: Record<string, Tensor>) => {
    engine.runtime.dispatch(spec, { ...operands, ...views }, uniforms, grid);
    for (const copy of copies) copy.release();
  };
  if (splits === 1) {
    const views: Record<string, Tensor> = { c: out };
    if (options.bias) views.bias = options.bias;
    if (gelu && options.pre) views.pre = options.pre;
    if (options.geluGrad) views.pre = options.geluGrad;
    product(views);
    return null;
  }
  // With split-K the epilogue (bias, GELU, pre-activation, GELU', accumulate) runs in the reduction.
  const part = engine.empty([batch * splits, M, N], "f32", "matmul split-K partials");
  product({ c: part });
  if (use !== "sum") return { part, splits, bias: options.bias, activation: options.activation };
  reduceInto(engine, part, out, { n: batch * M * N, mn: M * N, splits, cols: N }, {
    accumulate: !!options.accumulate,
    bias: options.bias,
    gelu,
    pre: gelu ? options.pre : undefined,
    geluGrad: options.geluGrad,
  });
  part.dispose();
  return null;
}

const reduceSpec = kernelVariants(
  (v: { accumulate: boolean; bias: boolean; gelu: boolean; pre: boolean; geluGrad: boolean }) =>
    matmulReduceKernel(v.accumulate, v.bias, { gelu: v.gelu, pre: v.pre, geluGrad: v.geluGrad }),
);
const biasGradSpec = kernelVariants(biasGradKernel);

function reduceInto(
  engine: Engine,
  part: Tensor,
  out: Tensor,
  sizes: { n: number; mn: number; splits: number; cols: number },
  options: { accumulate: boolean; bias?: Tensor; gelu?: boolean; pre?: Tensor; geluGrad?: Tensor },
): void {
  const spec = reduceSpec({
    accumulate: options.accumulate,
    bias: !!options.bias,
    gelu: !!options.gelu,
    pre: !!options.pre,
    geluGrad: !!options.geluGrad,
  });
  const pre = options.pre ?? options.geluGrad;
  const views: Record<string, Tensor> = { part, out };
  if (options.bias) views.bias = options.bias;
  if (pre) views.pre = pre;
  engine.runtime.dispatch(spec, views, sizes, grid1d(Math.ceil(sizes.n / 256)));
}

/**
 * Records out (+)= epilogue(op(A)·op(B)) without autograd: the kernel-level launcher that ops and
 * hand-fused loops (e.g. lm_head with cross-entropy, in row chunks) build on. Products whose operands
 * or result exceed the device's storage binding size are cut into row chunks when A is not transposed
 * and unbatched.
 *
 * @example Usage
 * ```ts
 * import { Engine, matmulInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array(6).fill(1), [2, 3]);
 * const w = engine.tensor(new Float32Array(12).fill(0.5), [4, 3]); // [out, in]
 * const y = engine.empty([2, 4]);
 * matmulInto(y, x, w, { transB: true });
 * console.log(await y.read()); // all 1.5
 * ```
 * @param out The result [.., M, N] (read too when `accumulate`).
 * @param a [.., M, K], or [.., K, M] with `transA`. Without a tape, also the split-K partial products
 * of A with a bias and GELU (from {@linkcode linearParts}; A untransposed, B of rank 2), summed, biased
 * and activated as the kernel loads them: A's values to the bit, without A's reduction pass.
 * @param b [K, N] or [.., K, N]; [N, K] or [.., N, K] with `transB`.
 * @param options Transposes and the fused epilogue.
 * @throws {TypeError} If the shapes do not fit, or A is given as partial products that the kernel
 * cannot sum (no bias and GELU, transposed) or while a tape records.
 */
export function matmulInto(
  out: Tensor,
  a: Tensor | SplitProduct,
  b: Tensor,
  options: MatmulIntoOptions = {},
): void {
  productInto("matmulInto", out, a, b, options, "sum");
}

/**
 * Records `out += a·op(b) + bias` without autograd, like {@linkcode matmulInto} with `accumulate`,
 * except that when the launcher would split K for this shape (few rows: sampling) it records only the
 * partial products and returns them, so that the next LayerNorm adds them into `out` itself
 * (`residual` option of `layerNormFilm`) and the separate reduction pass is saved. Returns null when
 * the product was added in full.
 *
 * @example Usage
 * ```ts
 * import { Engine, layerNormFilm, matmulResidual } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.zeros([1, 64, 512]);
 * const h = engine.tensor(new Float32Array(64 * 2048).fill(0.01), [1, 64, 2048]);
 * const w = engine.tensor(new Float32Array(512 * 2048).fill(0.01), [512, 2048]);
 * const film = engine.tensor(new Float32Array(2 * 512).fill(1), [1, 1024]);
 * const pending = matmulResidual(x, h, w, { transB: true });
 * const y = layerNormFilm(x, film, { gammaSlice: 0, betaSlice: 1, residual: pending ?? undefined });
 * console.log(y.shape); // [1, 64, 512]
 * ```
 * @param out The residual stream [.., M, N], added to.
 * @param a [.., M, K], or its split-K partial products with a bias and GELU, as {@linkcode matmulInto}
 * takes them.
 * @param b [K, N], or [N, K] with `transB`.
 * @param options `transB` and the `bias` [N].
 * @returns The partial products when they are left for the caller to add, else null.
 * @throws {TypeError} If the shapes do not fit, or as {@linkcode matmulInto} for partial products.
 */
export function matmulResidual(
  out: Tensor,
  a: Tensor | SplitProduct,
  b: Tensor,
  options: { transB?: boolean; bias?: Tensor } = {},
): SplitProduct | null {
  const sumOptions = { transB: options.transB, bias: options.bias, accumulate: true };
  return productInto("matmulResidual", out, a, b, sumOptions, "residual");
}

/** The sizes of `x·Wᵀ` for a weight [out, in]; throws naming `op` when x's last dim is not `in`. */
function linearShapes(op: string, x: Tensor, weight: Tensor): { inF: number; outF: number; rows: number } {
  const inF = x.shape.at(-1);
  if (inF === undefined || weight.shape.length !== 2 || weight.shape[1] !== inF) {
    throw new TypeError(
      `Cannot run ${op}: weight has shape ${fmt(weight.shape)}, expected [out,${inF}] for x ${fmt(x.shape)}`,
    );
  }
  return { inF, outF: weight.shape[0]!, rows: prod(x.shape.slice(0, -1)) };
}

/**
 * A given as partial products, as `launch` takes it: the partials, their count and bias, and the shape
 * of A. Only the prologue the kernels have is accepted: the sum, a bias, GELU, on A untransposed.
 */
function partsOperand(
  op: string,
  a: SplitProduct,
  options: MatmulIntoOptions,
): { part: Tensor; shape: number[]; aParts: { splits: number; bias: Tensor } } {
  const { part, splits, bias, activation } = a;
  if (part.engine.recording) {
    throw new TypeError(
      `Cannot run ${op} on partial products while a tape records (its backward needs A whole)`,
    );
  }
  if (!bias || activation !== "gelu" || options.transA) {
    throw new TypeError(
      `Cannot run ${op} on partial products ` +
        (options.transA
          ? "of a transposed A"
          : "without a bias and GELU (the only prologue the kernels have)"),
    );
  }
  const [count, rows, cols] = part.shape;
  if (part.shape.length !== 3 || count !== splits || splits < 2 || part.dtype !== "f32") {
    throw new TypeError(
      `Cannot run ${op}: a's partial products have shape ${fmt(part.shape)}, expected [${splits},M,K] f32`,
    );
  }
  if (bias.size !== cols || bias.dtype !== "f32") {
    throw new TypeError(`Cannot run ${op}: a's bias has shape ${fmt(bias.shape)}, expected [${cols}]`);
  }
  return { part, shape: [rows!, cols!], aParts: { splits, bias } };
}

/** A given as three operands of one shape [.., w], concatenated along K (see `linearConcat`). */
interface Concatenation {
  readonly concat: readonly [Tensor, Tensor, Tensor];
}

/** A given as a concatenation, as `launch` takes it: the first operand, the other two, and A's shape. */
function concatOperand(
  op: string,
  a: Concatenation,
): { first: Tensor; rest: readonly [Tensor, Tensor]; shape: number[] } {
  const [first, mid, last] = a.concat;
  for (const [i, t] of a.concat.entries()) {
    if (
      t.dtype !== "f32" || t.shape.length !== first.shape.length ||
      t.shape.some((d, j) => d !== first.shape[j])
    ) {
      throw new TypeError(
        `Cannot run ${op}: operand ${i} has shape ${fmt(t.shape)} ${t.dtype}, expected f32 ${
          fmt(first.shape)
        }`,
      );
    }
  }
  const width = first.shape.at(-1) ?? 0;
  return { first, rest: [mid, last], shape: [prod(first.shape.slice(0, -1)), 3 * width] };
}

function productInto(
  op: string,
  out: Tensor,
  aOperand: Tensor | SplitProduct | Concatenation,
  b: Tensor,
  options: MatmulIntoOptions,
  use: SplitUse,
): SplitProduct | null {
  const parts = "part" in aOperand ? partsOperand(op, aOperand, options) : undefined;
  const joined = "concat" in aOperand ? concatOperand(op, aOperand) : undefined;
  const a = parts?.part ?? joined?.first ?? aOperand as Tensor;
  const { batch, M, N, K } = matmulShape(parts?.shape ?? joined?.shape ?? a.shape, b.shape, options, op);
  const engine = out.engine;
  for (const [name, t] of [["a", a], ["b", b], ["out", out]] as const) {
    if (t.dtype !== "f32") {
      throw new TypeError(`Cannot run ${op}: ${name} has dtype ${t.dtype}, expected f32`);
    }
  }
  if (out.size !== batch * M * N || out.shape.at(-1) !== N) {
    throw new TypeError(
      `Cannot run ${op}: out has shape ${fmt(out.shape)}, expected ${batch * M * N} elements as [..,${N}]`,
    );
  }
  if (options.bias && (options.bias.size !== N || options.bias.dtype !== "f32")) {
    throw new TypeError(`Cannot run ${op}: bias has shape ${fmt(options.bias.shape)}, expected [${N}]`);
  }
  if (options.pre && options.activation !== "gelu") {
    throw new TypeError(`Cannot run ${op}: pre is given without an activation`);
  }
  if (options.geluGrad && (options.bias || options.activation)) {
    throw new TypeError(`Cannot run ${op}: geluGrad is given with a bias or an activation`);
  }
  for (const [name, t] of [["pre", options.pre], ["geluGrad", options.geluGrad]] as const) {
    if (t && (t.size !== out.size || t.dtype !== "f32")) {
      throw new TypeError(
        `Cannot run ${op}: ${name} has shape ${fmt(t.shape)}, expected the shape of out ${fmt(out.shape)}`,
      );
    }
  }
  if (M === 0 || N === 0 || batch === 0) return null;
  const limit = engine.runtime.gpu.limits.maxStorageBufferBindingSize;
  const biggest = Math.max(a.byteLength, out.byteLength);
  if (joined && biggest > limit) {
    throw new TypeError(
      `Cannot run ${op}: an operand of ${biggest} bytes exceeds this device's storage binding size (${limit})`,
    );
  }
  if (biggest <= limit || options.transA || batch > 1 || parts || joined) {
    return launch(
      engine,
      { a, aParts: parts?.aParts, aConcat: joined?.rest, b, out, batch, M, N, K, options },
      use,
    );
  }
  // Row chunks: a multiple of 64 rows keeps every view offset a multiple of 256 bytes.
  const rowBytes = Math.max(K, N) * 4;
  const chunk = Math.max(64, Math.floor(limit / rowBytes / 64) * 64);
  const a2 = a.viewAs([M, K]), out2 = out.viewAs([M, N]);
  const pre2 = options.pre?.viewAs([M, N]), geluGrad2 = options.geluGrad?.viewAs([M, N]);
  for (let start = 0; start < M; start += chunk) {
    const rows = Math.min(chunk, M - start);
    launch(engine, {
      a: a2.rows(start, rows),
      b,
      out: out2.rows(start, rows),
      batch: 1,
      M: rows,
      N,
      K,
      options: { ...options, pre: pre2?.rows(start, rows), geluGrad: geluGrad2?.rows(start, rows) },
    });
  }
  return null;
}

/**
 * Records `db += Σ_rows dout` (column sums of dout [rows, cols]): the bias gradient of `linear`.
 *
 * @example Usage
 * ```ts
 * import { biasGradInto, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const dy = engine.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
 * const db = engine.zeros([2]);
 * biasGradInto(db, dy);
 * console.log(await db.read()); // [9, 12]
 * ```
 * @param db The gradient [cols], added to.
 * @param dout The upstream gradient [.., cols].
 * @throws {TypeError} If the sizes do not fit.
 */
export function biasGradInto(db: Tensor, dout: Tensor): void {
  const cols = dout.shape.at(-1) ?? 1;
  if (db.size !== cols) {
    throw new TypeError(`Cannot run biasGradInto: db has shape ${fmt(db.shape)}, expected [${cols}]`);
  }
  const rows = cols === 0 ? 0 : dout.size / cols;
  if (rows === 0 || cols === 0) return;
  const engine = db.engine;
  const chunks = Math.ceil(rows / BIAS_GRAD_ROWS);
  const grid: [number, number] = [Math.ceil(cols / 64), chunks];
  if (chunks === 1) {
    engine.runtime.dispatch(biasGradSpec(true), { dout, out: db }, { rows, cols }, grid);
    return;
  }
  const part = engine.empty([chunks, cols], "f32", "bias_grad partials");
  engine.runtime.dispatch(biasGradSpec(false), { dout, out: part }, { rows, cols }, grid);
  reduceInto(engine, part, db, { n: cols, mn: cols, splits: chunks, cols }, { accumulate: true });
  part.dispose();
}

/**
 * Matrix product with autograd: op(A)·op(B), batched when both have rank ≥ 3.
 *
 * @example Usage
 * ```ts
 * import { Engine, matmul } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const a = engine.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const c = matmul(a, a, { transB: true });
 * console.log(await c.read()); // [5, 11, 11, 25]
 * ```
 * @param a [.., M, K], or [.., K, M] with `transA`.
 * @param b [K, N] or [.., K, N]; [N, K] or [.., N, K] with `transB`.
 * @param options Transposes.
 * @returns The product [.., M, N].
 * @throws {TypeError} If the shapes do not fit.
 */
export function matmul(a: Tensor, b: Tensor, options: { transA?: boolean; transB?: boolean } = {}): Tensor {
  const { transA = false, transB = false } = options;
  const { batch, M, N, K, outShape } = matmulShape(a.shape, b.shape, options);
  const engine = a.engine;
  const out = engine.empty(outShape, "f32", "matmul");
  matmulInto(out, a, b, { transA, transB });
  engine.record({
    name: "matmul",
    inputs: [a, b],
    outputs: [out],
    backward: () => {
      const dc = engine.gradOf(out);
      // Operands as stored, with an explicit batch (or as 2-D when B is shared), so that every
      // gradient product below is read without ambiguity.
      const as = batch > 1 ? [batch, transA ? K : M, transA ? M : K] : [transA ? K : M, transA ? M : K];
      const bs = batch > 1 ? [batch, transB ? N : K, transB ? K : N] : [transB ? N : K, transB ? K : N];
      const cs = batch > 1 ? [batch, M, N] : [M, N];
      const a3 = a.viewAs(as), b3 = b.viewAs(bs), dc3 = dc.viewAs(cs);
      if (a.requiresGrad) {
        const { grad, accumulate } = engine.gradTarget(a);
        const da = grad.viewAs(as);
        // dop(A) = dC·op(B)ᵀ; dA = dop(A) or its transpose.
        if (!transA) matmulInto(da, dc3, b3, { transB: !transB, accumulate });
        else matmulInto(da, b3, dc3, { transA: transB, transB: true, accumulate });
      }
      if (b.requiresGrad) {
        const { grad, accumulate } = engine.gradTarget(b);
        const db = grad.viewAs(bs);
        // dop(B) = op(A)ᵀ·dC; dB = dop(B) or its transpose.
        if (!transB) matmulInto(db, a3, dc3, { transA: !transA, accumulate });
        else matmulInto(db, dc3, a3, { transA: true, transB: transA, accumulate });
      }
    },
  });
  return out;
}

/**
 * Records `out = A·B` without autograd, like {@linkcode matmulInto}, except that where the launcher
 * splits K for this shape it records only the partial products and returns them (`out` is then not
 * written), split exactly where `matmulInto` splits them, for a consumer that sums them as it reads them
 * and so sees `matmulInto`'s values to the bit without the reduction pass (the sampler's update, see
 * `addScaledNoiseParts`). Returns null when `out` was written.
 *
 * @example Usage
 * ```ts
 * import { addScaledNoiseParts, Engine, matmulParts } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const probabilities = engine.zeros([64, 8000]), table = engine.zeros([8000, 64]);
 * const estimate = engine.empty([64, 64]), x = engine.empty([64, 64]);
 * const parts = matmulParts(estimate, probabilities, table);
 * if (parts) addScaledNoiseParts(parts, 0.8, 0.6, 7, { sum: estimate, into: x });
 * ```
 * @param out The result [.., M, N] when written.
 * @param a [.., M, K].
 * @param b [K, N].
 * @returns The partial products [splits, M, N] when they are left for the caller to sum, else null.
 * @throws {TypeError} If the shapes do not fit, B is batched, or a tape is recording.
 */
export function matmulParts(out: Tensor, a: Tensor, b: Tensor): SplitProduct | null {
  if (out.engine.recording) {
    throw new TypeError("Cannot run matmulParts while a tape records: use matmul, whose backward it needs");
  }
  if (b.shape.length !== 2) {
    throw new TypeError(`Cannot run matmulParts: b has shape ${fmt(b.shape)}, expected [K,N]`);
  }
  return productInto("matmulParts", out, a, b, {}, "parts");
}

/**
 * `x·Wᵀ (+ b) (then GELU)` without a tape (inference): where the product is split over K, its partial
 * products are returned unsummed (with the bias and activation still to apply) for a consumer that sums
 * them as it loads them, which saves the reduction pass: `attention` takes qkv so, and
 * {@linkcode matmulInto} and {@linkcode matmulResidual} take a product with bias and GELU as their A
 * (the FFN). Otherwise the product itself, as {@linkcode linear} computes it. With a bias or an
 * activation the K-splits are planned as `linear` plans them, so that wherever the product is split the
 * consumer sees `linear`'s values to the bit; without, as `matmulResidual` plans them (a split pays from
 * a larger grid when no reduction pass follows).
 *
 * @example Usage
 * ```ts
 * import { attention, Engine, linearParts, matmulInto } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.zeros([1, 64, 512]);
 * const wqkv = engine.zeros([3 * 512, 512]);
 * const lengths = engine.tensor(new Int32Array([64]), [1]);
 * const y = attention(linearParts(x, wqkv), lengths, { heads: 8 }); // [1, 64, 512]
 * // An FFN: the up-projection's partials are summed, biased and activated as the down-projection loads them.
 * const w1 = engine.zeros([2048, 512]), b1 = engine.zeros([2048]), w2 = engine.zeros([512, 2048]);
 * const hidden = linearParts(x, w1, { bias: b1, activation: "gelu" });
 * const z = engine.empty([1, 64, 512]);
 * matmulInto(z, hidden, w2, { transB: true });
 * ```
 * @param x [.., in].
 * @param weight [out, in].
 * @param options The bias [out] and the activation applied after it.
 * @returns `x·Wᵀ (+ b) (then GELU)` [.., out], or its partial products.
 * @throws {TypeError} If the shapes do not fit, or a tape is recording (its backward needs the sum).
 */
export function linearParts(
  x: Tensor,
  weight: Tensor,
  options: { bias?: Tensor; activation?: "gelu" } = {},
): Tensor | SplitProduct {
  const { inF, outF, rows } = linearShapes("linearParts", x, weight);
  const engine = x.engine;
  if (engine.recording) {
    throw new TypeError("Cannot run linearParts while a tape records: use linear, whose backward it needs");
  }
  const { bias, activation } = options;
  const y = engine.empty([...x.shape.slice(0, -1), outF], "f32", activation ? "linear+gelu" : "linear");
  const parts = productInto(
    "linearParts",
    y.viewAs([rows, outF]),
    x.viewAs([rows, inF]),
    weight,
    { transB: true, bias, activation },
    bias || activation ? "parts" : "residual",
  );
  if (!parts) return y;
  y.dispose();
  return parts;
}

/**
 * A linear layer of three tensors' concatenation along their last dimension, `[x₁ | x₂ | x₃]·Wᵀ (+ b)`,
 * without a tape (inference): the product reads each operand where it lies as it loads A, so no
 * concatenation pass runs and no concatenated copy is made; the values are `linear(concat(parts))`'s to
 * the bit. The estimator's input projection reads [x_t, x_cond, x_selfcond] so in sampling.
 *
 * @example Usage
 * ```ts
 * import { Engine, linearConcat } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const ones = engine.tensor(new Float32Array(4).fill(1), [2, 2]);
 * const w = engine.tensor(new Float32Array([1, 0, 0, 0, 0, 1]), [1, 6]); // [out, 3·2]
 * console.log(await linearConcat([ones, engine.zeros([2, 2]), ones], w).read()); // [2, 2]
 * ```
 * @param parts Three f32 tensors of one shape [.., w].
 * @param weight [out, 3w].
 * @param bias [out], or null/undefined for none.
 * @returns y [.., out].
 * @throws {TypeError} If the shapes do not fit, an operand exceeds the device's storage binding size, or
 * a tape is recording.
 */
export function linearConcat(
  parts: readonly [Tensor, Tensor, Tensor],
  weight: Tensor,
  bias?: Tensor | null,
): Tensor {
  const first = parts[0];
  const engine = first.engine;
  if (engine.recording) {
    throw new TypeError(
      "Cannot run linearConcat while a tape records: use linear of concat, whose backward it needs",
    );
  }
  const inF = 3 * (first.shape.at(-1) ?? 0), outF = weight.shape[0] ?? 0;
  if (weight.shape.length !== 2 || weight.shape[1] !== inF || weight.dtype !== "f32") {
    throw new TypeError(
      `Cannot run linearConcat: weight has shape ${fmt(weight.shape)}, expected [out,${inF}]`,
    );
  }
  const rows = prod(first.shape.slice(0, -1));
  const y = engine.empty([...first.shape.slice(0, -1), outF], "f32", "linear");
  const options = { transB: true, bias: bias ?? undefined };
  try {
    productInto("linearConcat", y.viewAs([rows, outF]), { concat: parts }, weight, options, "sum");
  } catch (error) {
    y.dispose(); // a refused operand or bias leaves nothing allocated
    throw error;
  }
  return y;
}

/**
 * A linear layer in PyTorch's layout, `y = x·Wᵀ + b`, with an optional fused GELU. With GELU the
 * pre-activation is kept for backward; like every tensor it belongs to the current `tidy` scope, so run
 * backward before that scope ends. Backward: dx += dy·W, dW += dyᵀ·x, db += Σ dy (through GELU' first).
 *
 * @example Usage
 * ```ts
 * import { Engine, linear } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3]), [1, 3]);
 * const w = engine.tensor(new Float32Array([1, 0, 0, 0, 1, 0]), [2, 3]);
 * const b = engine.tensor(new Float32Array([10, 20]), [2]);
 * console.log(await linear(x, w, b).read()); // [11, 22]
 * ```
 * @param x Input [.., in].
 * @param weight [out, in].
 * @param bias [out], or null/undefined for none.
 * @param options `activation: "gelu"` to apply GELU (erf form) to the result.
 * @returns y [.., out].
 * @throws {TypeError} If the shapes do not fit.
 */
export function linear(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  options: { activation?: "gelu" } = {},
): Tensor {
  const { inF, outF, rows } = linearShapes("linear", x, weight);
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== outF)) {
    throw new TypeError(`Cannot run linear: bias has shape ${fmt(bias.shape)}, expected [${outF}]`);
  }
  const engine = x.engine;
  const outShape = [...x.shape.slice(0, -1), outF];
  const x2 = x.viewAs([rows, inF]);
  const gelu = options.activation === "gelu";
  const y = engine.empty(outShape, "f32", gelu ? "linear+gelu" : "linear");
  const recording = engine.recording &&
    (x.requiresGrad || weight.requiresGrad || !!bias?.requiresGrad);
  const pre = gelu && recording ? engine.empty(outShape, "f32", "linear pre-activation") : undefined;
  matmulInto(y.viewAs([rows, outF]), x2, weight, {
    transB: true,
    bias: bias ?? undefined,
    activation: options.activation,
    pre: pre?.viewAs([rows, outF]),
  });
  engine.record({
    name: gelu ? "linear_gelu" : "linear",
    inputs: bias ? [x, weight, bias] : [x, weight],
    outputs: [y],
    backward: () => {
      let dy = engine.gradOf(y).viewAs([rows, outF]);
      let scratch: Tensor | undefined;
      if (pre) {
        scratch = engine.empty([rows, outF], "f32", "linear d pre-activation");
        const n = rows * outF;
        engine.runtime.dispatch(
          GELU_BACKWARD_WRITE,
          { inp: pre, dout: dy, dinp: scratch },
          { n },
          grid1d(Math.ceil(n / 256)),
        );
        dy = scratch;
      }
      if (x.requiresGrad) {
        const { grad, accumulate } = engine.gradTarget(x);
        matmulInto(grad.viewAs([rows, inF]), dy, weight, { accumulate });
      }
      if (weight.requiresGrad) {
        matmulInto(engine.gradOf(weight), dy, x2, { transA: true, accumulate: true });
      }
      if (bias?.requiresGrad) biasGradInto(engine.gradOf(bias), dy);
      scratch?.dispose();
    },
  });
  return y;
}
