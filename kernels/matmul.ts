/**
 * matmul: C = op(A)·op(B) with op ∈ {identity, transpose} for each operand, batched over grid z, with a
 * fused epilogue (bias per output column, GELU in the erf form keeping the pre-activation, accumulate
 * into C). Also the two small kernels the launchers need: `matmul_reduce` (sums split-K partials into
 * C) and `bias_grad` (column sums of the upstream gradient, the bias gradient of `linear`).
 *
 * Parallelism: one workgroup per BM×BN tile of C (grid x over N, y over M, z over batch × K-splits);
 * each invocation owns a TM×TN register tile, held as named vec4 accumulators (the text is unrolled at
 * build time, so no register array is indexed at run time). A and B tiles of BK columns go through
 * workgroup memory, double-buffered: the next tile is loaded into registers while the current one is
 * multiplied, then stored into the other buffer, one barrier per BK step. Shared tiles hold vec4s of 4
 * consecutive rows (of A) or columns (of B) at one k, so the inner loop reads vec4s. Default `rows`
 * layout: one padded row per invocation row/column (As[stage·TY + ty][k·gm + g]), read at constant
 * offsets from one pointer per operand, so no read needs a run-time index clamp; `flat` layout: one
 * k-major array (As[k][m]), 1/17 smaller. An operand whose contiguous dimension is K
 * (A untransposed, B transposed) is loaded one vec4 of K per invocation and written as four scalars
 * into four shared rows, so every operand stages 4 registers per load slot.
 * Edges: every load and store is bounds-checked (zeros past M, N, K), so any size works; the `vec4`
 * variant binds storage as `array<vec4f>` and needs the contiguous dimensions of A, B and C to be
 * multiples of 4, the scalar variant has no such need.
 * Split-K: the launcher may cut K into `splits` chunks (grid z), each writing a partial C; then
 * `matmul_reduce` adds them (into C, or onto it when accumulating) and runs the epilogue.
 * Prologue: a product may instead take another's split-K partials as its A and sum them, add their
 * bias and apply GELU as it loads them (`parts_bias_gelu`), which saves that product's reduction pass.
 * Saved for backward: with GELU and `pre`, the pre-activation op(A)·op(B) + bias.
 * GELU's backward: with `geluGrad` the product is multiplied elementwise by GELU'(pre) (`pre` read, the
 * pre-activation a forward GELU saved), so that a gradient product writes the gradient of the
 * pre-activation directly, without a separate pass over it.
 * Numerics: f32 products and f32 accumulation in K order within a tile.
 * Reference: tests/ref/matmul.ts (float64).
 *
 * @module
 */
import {
  bindingDeclarations,
  defineKernel,
  type KernelSpec,
  type StorageElement,
} from "../src/gpu/kernel.ts";
import { pointwiseKernel } from "./_wgsl.ts";
import { GELU_WGSL } from "./gelu.ts";
import {
  type MatmulPrologue,
  operandLoadsWgsl,
  partialSumsWgsl,
  productOpeningWgsl,
  prologueReads,
  prologueWgsl,
  ROUND_F16_WGSL,
  stagedKLoop,
} from "./_matmul_wgsl.ts";

export {
  type MatmulPrologue,
  operandLoadsWgsl,
  partialSumsWgsl,
  productOpeningWgsl,
  ROUND_F16_WGSL,
} from "./_matmul_wgsl.ts";

/** A tile configuration: BM×BN outputs per workgroup, BK-deep K steps, TM×TN outputs per invocation. */
export interface MatmulTile {
  /** Rows of C per workgroup (a multiple of 4·(TM/4)·…; see {@linkcode matmulKernel}). */
  readonly bm: number;
  /** Columns of C per workgroup. */
  readonly bn: number;
  /** K per step through workgroup memory (a multiple of 4). */
  readonly bk: number;
  /** Rows per invocation (a multiple of 4). */
  readonly tm: number;
  /** Columns per invocation (a multiple of 4). */
  readonly tn: number;
}

/**
 * The tile configurations the launcher chooses from: `large` (128×128, 8×8 per invocation, 256
 * invocations, K steps of 8) for shapes with many tiles, `small` (64×64, 4×4 per invocation, 256
 * invocations, K steps of 16: half the barriers of 8, which is what bounds the short K chunks of
 * 64-row products) for the rest. Double-buffered, each takes 16 KiB of workgroup memory in the `flat`
 * layout and 17 KiB in the `rows` layout.
 *
 * @example Usage
 * ```ts
 * import { MATMUL_TILES } from "./matmul.ts";
 * console.log(MATMUL_TILES.large.bm); // 128
 * ```
 */
export const MATMUL_TILES: Readonly<Record<"large" | "small", MatmulTile>> = Object.freeze({
  large: Object.freeze({ bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 }),
  small: Object.freeze({ bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 }),
});

/** The product and its epilogue: what every matmul kernel, f32 or tensor-core, takes as text options. */
export interface MatmulProduct {
  /** A is stored [K, M] (op(A) = Aᵀ) instead of [M, K]. */
  readonly transA?: boolean;
  /** B is stored [N, K] (op(B) = Bᵀ) instead of [K, N]. */
  readonly transB?: boolean;
  /** Adds `bias[n]` (N elements) to every row. */
  readonly bias?: boolean;
  /** Applies GELU (erf form) after the bias. */
  readonly gelu?: boolean;
  /** With `gelu`: also writes the pre-activation to the `pre` output. */
  readonly pre?: boolean;
  /**
   * Multiplies the result by GELU'(pre) elementwise (GELU's backward), `pre` being read, before
   * `accumulate`; not with `bias` or `gelu`.
   */
  readonly geluGrad?: boolean;
  /** C += result instead of C = result. */
  readonly accumulate?: boolean;
  /** Operands bound as `array<vec4f>`; needs K, N (and M when `transA`) to be multiples of 4. */
  readonly vec4?: boolean;
  /**
   * A is computed as it is loaded from what `a` and `a_bias` hold (see {@linkcode MatmulPrologue}),
   * with the uniforms of {@linkcode MATMUL_PROLOGUE_UNIFORMS}; A untransposed only.
   */
  readonly prologue?: MatmulPrologue;
}

/** Options that change the WGSL text of a matmul kernel (sizes travel in uniforms). */
export interface MatmulVariant extends MatmulProduct {
  /** Tile configuration; `MATMUL_TILES.large` when omitted. */
  readonly tile?: MatmulTile;
  /**
   * Workgroup tile layout: `rows` (default) keeps one padded row of vec4s per invocation row/column, so
   * the inner loop reads at constant offsets from one pointer per operand (no per-read index clamp);
   * `flat` is one k-major array (smaller, see {@linkcode matmulSharedBytes}).
   */
  readonly layout?: MatmulLayout;
  /**
   * Rounds every loaded operand to the nearest f16 (through `pack2x16float`, core WGSL): the numerics of
   * the tensor-core kernels (f16 operands, f32 sums) on any adapter, for the `mixed` precision where
   * there are no subgroup matrices.
   */
  readonly f16Operands?: boolean;
}

/** Workgroup tile layouts of the matmul kernel (see {@linkcode MatmulVariant}). */
export type MatmulLayout = "rows" | "flat";

/** The uniform fields of every matmul kernel (tensor-core ones too), in struct order. */
export const MATMUL_UNIFORMS = {
  M: "u32",
  N: "u32",
  K: "u32",
  strideA: "u32",
  strideB: "u32",
  strideC: "u32",
  splits: "u32",
  kChunk: "u32",
} as const;

/**
 * The uniform fields of a matmul kernel with the `parts_bias_gelu` prologue: {@linkcode MATMUL_UNIFORMS},
 * then the number of A's partial products and the elements between them.
 *
 * @example Usage
 * ```ts
 * import { MATMUL_PROLOGUE_UNIFORMS } from "./matmul.ts";
 * console.log(Object.keys(MATMUL_PROLOGUE_UNIFORMS).slice(-2)); // ["a_parts", "a_part_stride"]
 * ```
 */
export const MATMUL_PROLOGUE_UNIFORMS = {
  ...MATMUL_UNIFORMS,
  a_parts: "u32",
  a_part_stride: "u32",
} as const;

/**
 * The bindings and uniforms of a matmul variant, f32 or tensor-core: reads `a`, `b`, then `bias`, then
 * the prologue's operands (`a_bias`, or `a_mid` and `a_last`), then `pre` with `geluGrad`; writes `c`,
 * then `pre` with `gelu` and `pre`.
 *
 * @example Usage
 * ```ts
 * import { matmulIo } from "./matmul.ts";
 * console.log(matmulIo({ transB: true, prologue: "parts_bias_gelu" }).reads); // ["a", "b", "a_bias"]
 * ```
 * @param variant The product and its epilogue and prologue.
 * @returns The bindings in order and the uniform fields.
 * @throws {TypeError} If a prologue is asked of a transposed A, or `geluGrad` with a bias or GELU.
 */
export function matmulIo(variant: MatmulProduct): {
  reads: string[];
  writes: string[];
  uniforms: typeof MATMUL_UNIFORMS | typeof MATMUL_PROLOGUE_UNIFORMS;
} {
  const gelu = !!variant.gelu, pre = gelu && !!variant.pre, prologue = !!variant.prologue;
  if (prologue && variant.transA) {
    throw new TypeError(`Cannot build matmul kernel: the ${variant.prologue} prologue needs A untransposed`);
  }
  const geluGrad = !!variant.geluGrad;
  if (geluGrad && (variant.bias || gelu)) {
    throw new TypeError(
      "Cannot build matmul kernel: geluGrad takes no bias or GELU (it is a backward epilogue)",
    );
  }
  return {
    reads: [
      "a",
      "b",
      ...(variant.bias ? ["bias"] : []),
      ...(variant.prologue ? prologueReads(variant.prologue) : []),
      ...(geluGrad ? ["pre"] : []),
    ],
    writes: ["c", ...(pre ? ["pre"] : [])],
    uniforms: variant.prologue === "parts_bias_gelu" ? MATMUL_PROLOGUE_UNIFORMS : MATMUL_UNIFORMS,
  };
}

function checkTile(t: MatmulTile): void {
  const { bm, bn, bk, tm, tn } = t;
  const ok = [bm, bn, bk, tm, tn].every((v) => Number.isInteger(v) && v > 0 && v % 4 === 0) &&
    bm % tm === 0 && bn % tn === 0 && (bm / tm) * (bn / tn) <= 1024;
  if (!ok) {
    throw new TypeError(
      `Cannot build matmul kernel: tile ${JSON.stringify(t)} is invalid (all multiples of 4, ` +
        `bm % tm = bn % tn = 0, at most 1024 invocations)`,
    );
  }
}

/**
 * Workgroup memory in bytes used by a tile configuration (two buffers of each operand tile): 16 KiB
 * for `MATMUL_TILES.large` in the `flat` layout, 17 KiB in the `rows` layout (one padding vec4 per row).
 *
 * @example Usage
 * ```ts
 * import { MATMUL_TILES, matmulSharedBytes } from "./matmul.ts";
 * console.log(matmulSharedBytes(MATMUL_TILES.large, "rows")); // 17408
 * ```
 * @param tile The tile configuration.
 * @param layout The workgroup tile layout.
 * @returns Bytes of workgroup memory.
 */
export function matmulSharedBytes(tile: MatmulTile, layout: MatmulLayout = "rows"): number {
  if (layout === "flat") return 2 * tile.bk * (tile.bm + tile.bn) * 4;
  const { bm, bn, bk, tm, tn } = tile;
  return 2 * ((bm / tm) * ((bk * tm) / 4 + 1) + (bn / tn) * ((bk * tn) / 4 + 1)) * 16;
}

/**
 * Builds the WGSL of one matmul variant. Bindings: reads `a`, `b`, then `bias` if `bias`, then the
 * prologue's operands with a `prologue`, then `pre` with `geluGrad`; writes `c`, then `pre` if `gelu &&
 * pre`; uniforms `M N K strideA strideB strideC splits kChunk` (strides in elements between batch entries;
 * `splits` K-chunks of `kChunk` elements each, over grid z together with the batch), then `a_parts
 * a_part_stride` with the `parts_bias_gelu` prologue. Grid: [⌈N/BN⌉, ⌈M/BM⌉, batch·splits].
 *
 * @example Usage
 * ```ts
 * import { matmulKernel, MATMUL_TILES } from "./matmul.ts";
 * const spec = matmulKernel({ transB: true, bias: true, vec4: true, tile: MATMUL_TILES.small });
 * console.log(spec.name, spec.reads, spec.writes); // matmul_nt_64x64x16_4x4_v4_bias [a,b,bias] [c]
 * ```
 * @param variant What changes the text: transposes, epilogue, vec4 storage, tile.
 * @returns The kernel spec.
 */
export function matmulKernel(variant: MatmulVariant = {}): KernelSpec {
  const tile = variant.tile ?? MATMUL_TILES.large;
  checkTile(tile);
  const { bm, bn, bk, tm, tn } = tile;
  const transA = !!variant.transA, transB = !!variant.transB, v4 = !!variant.vec4;
  const bias = !!variant.bias, gelu = !!variant.gelu, pre = gelu && !!variant.pre;
  const geluGrad = !!variant.geluGrad, accumulate = !!variant.accumulate;
  const f16Operands = !!variant.f16Operands;
  const prologue = variant.prologue;
  const { reads, writes, uniforms } = matmulIo(variant);
  const rowsLayout = (variant.layout ?? "rows") === "rows";
  const tx = bn / tn, ty = bm / tm, threads = tx * ty;
  const gm = tm / 4, gn = tn / 4; // vec4 groups per invocation along M and N
  const bmq = bm / 4, bnq = bn / 4, bkq = bk / 4;
  const aStage = bk * bmq, bStage = bk * bnq; // vec4s per buffer

  const name = `matmul_${transA ? "t" : "n"}${transB ? "t" : "n"}_${bm}x${bn}x${bk}_${tm}x${tn}` +
    `${v4 ? "_v4" : ""}${bias ? "_bias" : ""}${gelu ? "_gelu" : ""}${pre ? "_pre" : ""}` +
    `${geluGrad ? "_gelu_grad" : ""}${accumulate ? "_acc" : ""}${rowsLayout ? "" : "_flat"}${
      f16Operands ? "_f16ops" : ""
    }` +
    `${prologue ? `_a_${prologue}` : ""}`;
  const elem: StorageElement = v4 ? "vec4f" : "f32";
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);

  const elements = Object.fromEntries([...reads, ...writes].map((n) => [n, elem]));
  emit(bindingDeclarations({ reads, writes, uniforms, elements }));
  // rows layout: As[stage·TY + ty][k·gm + g] holds rows g·TY + 4ty … +3 of column k (likewise Bs with
  // TX, tx, gn), each row padded by one vec4 so that 16 consecutive rows fall in distinct banks.
  const aInner = bk * gm + 1, bInner = bk * gn + 1;
  if (rowsLayout) {
    emit(`var<workgroup> As: array<array<vec4f, ${aInner}>, ${2 * ty}>;`);
    emit(`var<workgroup> Bs: array<array<vec4f, ${bInner}>, ${2 * tx}>;`);
  } else {
    emit(`var<workgroup> As: array<vec4f, ${2 * aStage}>;`);
    emit(`var<workgroup> Bs: array<vec4f, ${2 * bStage}>;`);
  }
  if (gelu || geluGrad || prologue === "parts_bias_gelu") emit(GELU_WGSL);
  if (f16Operands) emit(ROUND_F16_WGSL);
  if (prologue) emit(prologueWgsl(prologue, v4));

  emit(operandLoadsWgsl(v4, f16Operands, false, prologue));

  emit(`@compute @workgroup_size(${threads})`);
  emit(`fn ${name}(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {`);
  emit(productOpeningWgsl(bm, bn));
  emit(`  let tx = lid % ${tx}u;`);
  emit(`  let ty = lid / ${tx}u;`);

  // Tile loads: each operand either "direct" (contiguous along M or N: one vec4 per slot goes straight
  // into the k-major shared tile) or "scatter" (contiguous along K: one vec4 of K per slot, written as
  // four scalars into four shared rows). One vec4 per slot keeps the staging registers that live across
  // the multiply at 4 per operand and slot; loading 4×4 blocks and transposing them in registers was
  // up to 30% slower on an H200 (bench/RESULTS.md).
  interface Operand {
    buf: "a" | "b";
    shared: "As" | "Bs";
    outerQ: number; // vec4s per shared row
    stage: number;
    lanes: number; // invocations along this operand's outer dimension (TY or TX)
    groups: number; // vec4 groups per invocation along it (gm or gn)
    origin: string; // m0 or n0
    bound: string; // M or N
    direct: boolean;
  }
  const ops: Operand[] = [
    {
      buf: "a",
      shared: "As",
      outerQ: bmq,
      stage: aStage,
      lanes: ty,
      groups: gm,
      origin: "m0",
      bound: "M",
      direct: transA,
    },
    {
      buf: "b",
      shared: "Bs",
      outerQ: bnq,
      stage: bStage,
      lanes: tx,
      groups: gn,
      origin: "n0",
      bound: "N",
      direct: !transB,
    },
  ];
  const slotsOf = (o: Operand) => bk * o.outerQ;
  // Declare staging registers.
  for (const o of ops) {
    const slots = Math.ceil(slotsOf(o) / threads);
    for (let s = 0; s < slots; s++) {
      emit(`  var ${o.buf}r${s} = vec4f(0.0);`);
    }
  }
  const ld = (o: Operand) => (o.buf === "a" ? (transA ? "M" : "K") : (transB ? "K" : "N"));
  const baseOf = (o: Operand) => (o.buf === "a" ? "baseA" : "baseB");
  const guarded = (o: Operand, s: number, body: string[]) => {
    const total = slotsOf(o);
    const needGuard = (s + 1) * threads > total;
    emit(needGuard ? `    if (lid + ${s * threads}u < ${total}u) {` : `    {`);
    for (const b of body) emit(`      ${b}`);
    emit(`    }`);
  };
  const loadTile = (k0: string) => {
    for (const o of ops) {
      const slots = Math.ceil(slotsOf(o) / threads);
      for (let s = 0; s < slots; s++) {
        const v = `(lid + ${s * threads}u)`;
        const call = (row: string, col: string, rows: string, colEnd: string) =>
          `load_${o.buf}(${baseOf(o)}, ${row}, ${col}, ${rows}, ${colEnd}, ${ld(o)})`;
        if (o.direct) {
          // stored [K, outer]: row = k, col = outer index, contiguous along outer.
          const row = `${k0} + ${v} / ${o.outerQ}u`, col = `${o.origin} + (${v} % ${o.outerQ}u) * 4u`;
          guarded(o, s, [`${o.buf}r${s} = ${call(row, col, "kEnd", o.bound)};`]);
        } else {
          // stored [outer, K]: row = outer index, col = k, contiguous along K.
          const row = `${o.origin} + ${v} / ${bkq}u`, col = `${k0} + (${v} % ${bkq}u) * 4u`;
          guarded(o, s, [`${o.buf}r${s} = ${call(row, col, o.bound, "kEnd")};`]);
        }
      }
    }
  };
  const storeTile = (stage: string) => {
    for (const o of ops) {
      const slots = Math.ceil(slotsOf(o) / threads);
      for (let s = 0; s < slots; s++) {
        const v = `(lid + ${s * threads}u)`;
        // The vec4 of outer quad oq at column k.
        const at = (k: string, oq: string) =>
          rowsLayout
            ? `${o.shared}[${stage} * ${o.lanes}u + (${oq}) % ${o.lanes}u][(${k}) * ${o.groups}u + (${oq}) / ${o.lanes}u]`
            : `${o.shared}[${stage} * ${o.stage}u + (${k}) * ${o.outerQ}u + ${oq}]`;
        if (o.direct) {
          guarded(o, s, [`${at(`${v} / ${o.outerQ}u`, `${v} % ${o.outerQ}u`)} = ${o.buf}r${s};`]);
        } else {
          const body = [`let q = ${v} % ${bkq}u;`, `let ob = ${v} / ${bkq}u;`];
          for (const [i, comp] of ["x", "y", "z", "w"].entries()) {
            body.push(`${at(`q * 4u + ${i}u`, "ob / 4u")}[ob % 4u] = ${o.buf}r${s}.${comp};`);
          }
          guarded(o, s, body);
        }
      }
    }
  };

  for (let r = 0; r < tm; r++) {
    for (let h = 0; h < gn; h++) emit(`  var acc${r}_${h} = vec4f(0.0);`);
  }
  const multiply = () => {
    if (rowsLayout) {
      emit(`    let ap = &As[cur * ${ty}u + ty];`);
      emit(`    let bp = &Bs[cur * ${tx}u + tx];`);
    } else {
      emit(`    let aBase = cur * ${aStage}u + ty;`);
      emit(`    let bBase = cur * ${bStage}u + tx;`);
    }
    for (let k = 0; k < bk; k++) {
      for (let g = 0; g < gm; g++) {
        emit(
          rowsLayout
            ? `    let a${k}_${g} = (*ap)[${k * gm + g}u];`
            : `    let a${k}_${g} = As[aBase + ${k * bmq + g * (bmq / gm)}u];`,
        );
      }
      for (let h = 0; h < gn; h++) {
        emit(
          rowsLayout
            ? `    let b${k}_${h} = (*bp)[${k * gn + h}u];`
            : `    let b${k}_${h} = Bs[bBase + ${k * bnq + h * (bnq / gn)}u];`,
        );
      }
      for (let g = 0; g < gm; g++) {
        for (const [i, comp] of ["x", "y", "z", "w"].entries()) {
          for (let h = 0; h < gn; h++) {
            const r = g * 4 + i;
            emit(`    acc${r}_${h} = fma(vec4f(a${k}_${g}.${comp}), b${k}_${h}, acc${r}_${h});`);
          }
        }
      }
    }
  };
  stagedKLoop(emit, { bk, stages: 2, load: loadTile, store: storeTile, multiply });

  // Epilogue.
  for (let g = 0; g < gm; g++) {
    for (let i = 0; i < 4; i++) {
      const r = g * 4 + i;
      emit(`  {`);
      emit(`    let row = m0 + ${g * (bm / gm)}u + ty * 4u + ${i}u;`);
      emit(`    if (row < M) {`);
      for (let h = 0; h < gn; h++) {
        emit(`      {`);
        emit(`        let col = n0 + ${h * (bn / gn)}u + tx * 4u;`);
        emit(`        let idx = baseC + row * N + col;`);
        emit(`        var v = acc${r}_${h};`);
        if (v4) {
          emit(`        if (col < N) {`);
          if (bias) emit(`          v += bias[col >> 2u];`);
          if (pre) emit(`          pre[idx >> 2u] = v;`);
          if (gelu) emit(`          v = vec4f(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w));`);
          if (geluGrad) {
            emit(`          let p = pre[idx >> 2u];`);
            emit(`          v *= vec4f(gelu_grad(p.x), gelu_grad(p.y), gelu_grad(p.z), gelu_grad(p.w));`);
          }
          if (accumulate) emit(`          v += c[idx >> 2u];`);
          emit(`          c[idx >> 2u] = v;`);
          emit(`        }`);
        } else {
          for (const [c, comp] of ["x", "y", "z", "w"].entries()) {
            emit(`        if (col + ${c}u < N) {`);
            emit(`          var s = v.${comp};`);
            if (bias) emit(`          s += bias[col + ${c}u];`);
            if (pre) emit(`          pre[idx + ${c}u] = s;`);
            if (gelu) emit(`          s = gelu(s);`);
            if (geluGrad) emit(`          s *= gelu_grad(pre[idx + ${c}u]);`);
            if (accumulate) emit(`          s += c[idx + ${c}u];`);
            emit(`          c[idx + ${c}u] = s;`);
            emit(`        }`);
          }
        }
        emit(`      }`);
      }
      emit(`    }`);
      emit(`  }`);
    }
  }
  emit(`}`);
  return { name, code: lines.join("\n") + "\n", reads, writes, uniforms };
}

/**
 * Builds `matmul_reduce`: `out[b, j] (+)= Σ_s part[b·splits + s, j]` over `n = batch·mn` outputs, for
 * split-K partials and the row-chunk partials of `bias_grad`. One invocation per output, 256 per
 * workgroup, grid folded into 2-D past 65535 groups. Uniforms: `n`, `mn` (outputs per batch entry),
 * `splits`.
 *
 * @example Usage
 * ```ts
 * import { matmulReduceKernel } from "./matmul.ts";
 * console.log(matmulReduceKernel(true).name); // matmul_reduce_acc
 * ```
 * @param accumulate Add onto `out` instead of overwriting it.
 * @param bias Add a per-column bias (`cols` wide) to each sum: the epilogue of a split-K product with bias.
 * @param epilogue Apply GELU after the bias (and keep the pre-activation in `pre`), or multiply the sum
 * by GELU'(pre) (`geluGrad`, `pre` read), as the product's own epilogue would.
 * @returns The kernel spec.
 * @throws {TypeError} If `geluGrad` is asked with a bias or GELU.
 */
export function matmulReduceKernel(
  accumulate: boolean,
  bias = false,
  epilogue: { gelu?: boolean; pre?: boolean; geluGrad?: boolean } = {},
): KernelSpec {
  const gelu = !!epilogue.gelu, pre = gelu && !!epilogue.pre, geluGrad = !!epilogue.geluGrad;
  if (geluGrad && (bias || gelu)) {
    throw new TypeError(
      "Cannot build matmul_reduce: geluGrad takes no bias or GELU (it is a backward epilogue)",
    );
  }
  const name = `matmul_reduce${bias ? "_bias" : ""}${gelu ? "_gelu" : ""}${pre ? "_pre" : ""}${
    geluGrad ? "_gelu_grad" : ""
  }${accumulate ? "_acc" : ""}`;
  const reads = ["part", ...(bias ? ["bias"] : []), ...(geluGrad ? ["pre"] : [])];
  const writes = pre ? ["out", "pre"] : ["out"];
  return pointwiseKernel({
    name,
    reads,
    writes,
    uniforms: { n: "u32", mn: "u32", splits: "u32", cols: "u32" },
    helpers: gelu || geluGrad ? GELU_WGSL : "",
    body: /* wgsl */ `let b = i / params.mn;
  let j = i - b * params.mn;
  let base = b * params.splits * params.mn + j;
  var s = 0.0;
  ${partialSumsWgsl([{ name: "s", at: (k) => `part[base + (${k}) * params.mn]` }], "params.splits")}
  ${bias ? "s += bias[j % params.cols];" : ""}
  ${pre ? "pre[i] = s;" : ""}
  ${gelu ? "s = gelu(s);" : ""}
  ${geluGrad ? "s *= gelu_grad(pre[i]);" : ""}
  out[i] ${accumulate ? "+=" : "="} s;`,
  });
}

/** Rows summed by one `bias_grad` workgroup. */
export const BIAS_GRAD_ROWS = 256;

/**
 * Builds `bias_grad`: column sums of `dout` [rows, cols] over chunks of {@linkcode BIAS_GRAD_ROWS}
 * rows: `out[chunk, col] (+)= Σ_{row in chunk} dout[row, col]`. Workgroup 64 columns × 4 row lanes,
 * grid [⌈cols/64⌉, ⌈rows/256⌉]; with one chunk it can add straight into the bias gradient, otherwise
 * the launcher sums the chunk rows with `matmul_reduce`. Uniforms: `rows`, `cols`.
 *
 * @example Usage
 * ```ts
 * import { biasGradKernel } from "./matmul.ts";
 * console.log(biasGradKernel(false).writes); // ["out"]
 * ```
 * @param accumulate Add onto `out` instead of overwriting it.
 * @returns The kernel spec.
 */
export function biasGradKernel(accumulate: boolean): KernelSpec {
  const name = accumulate ? "bias_grad_acc" : "bias_grad";
  return defineKernel({
    name,
    reads: ["dout"],
    writes: ["out"],
    uniforms: { rows: "u32", cols: "u32" },
    body: /* wgsl */ `
var<workgroup> lanes: array<array<f32, 64>, 4>;

@compute @workgroup_size(64, 4)
fn ${name}(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let col = wg.x * 64u + lid.x;
  let r0 = wg.y * ${BIAS_GRAD_ROWS}u;
  let r1 = min(params.rows, r0 + ${BIAS_GRAD_ROWS}u);
  var s = 0.0;
  if (col < params.cols) {
    for (var r = r0 + lid.y; r < r1; r += 4u) { s += dout[r * params.cols + col]; }
  }
  lanes[lid.y][lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && col < params.cols) {
    let total = (lanes[0][lid.x] + lanes[1][lid.x]) + (lanes[2][lid.x] + lanes[3][lid.x]);
    out[wg.y * params.cols + col] ${accumulate ? "+=" : "="} total;
  }
}
`,
  });
}
