/**
 * matmul on tensor cores: the same product, bindings, uniforms, grid meaning and epilogues as
 * kernels/matmul.ts (C = op(A)·op(B) with op ∈ {identity, transpose}, batched and K-split over grid z,
 * bias, GELU keeping the pre-activation, GELU's backward, accumulate), computed with WGSL subgroup matrices
 * (`chromium_experimental_subgroup_matrix`, Dawn): f32 operands are rounded to f16 as they are staged
 * into workgroup memory, and 16×16×16 f16 × f16 → f32 multiply-accumulates keep the sums in f32.
 *
 * Vocabulary: a *fragment* is one 16×16 subgroup matrix; a *warp tile* is the FM×FN fragments one
 * subgroup accumulates; the workgroup's BM×BN tile is WM×WN warp tiles.
 *
 * Parallelism: one workgroup per BM×BN tile of C, WM·WN subgroups of 32 invocations. Each BK-deep step
 * stages A and B into workgroup memory as f16 in their stored layout (a transposed operand is read
 * column-major by `subgroupMatrixLoad`, so no transposition happens on the way), rows padded by 8
 * halves (16 bytes) against bank conflicts. The next step's tile is loaded into registers while the
 * current one is multiplied; with two stages one barrier separates steps.
 * Edges: loads are bounds-checked (zeros past M, N and the K chunk), so any size works; a tile wholly
 * inside C without an epilogue is stored straight from the fragments, any other goes through a 16×16
 * f32 staging block per subgroup (a row of them with `strips`), where the epilogue runs per element with
 * bounds checks; with `biasFirst` the accumulators start from the bias, which is then no epilogue.
 * With `halves` the operands are f16 copies made beforehand by {@linkcode TO_HALVES} (half the bytes
 * to load); a `direct` tile then loads its fragments straight from them, with no staging at all.
 * Numerics: operands rounded to nearest f16 (values beyond ±65504 become ±inf, which the loss-scale
 * check catches); products exact, sums in f32 in the tensor cores' order.
 * Reference: tests/ref/matmul.ts (float64) with f16-rounded operands. The `emulated` variants run the
 * same code on any adapter with the fragment operations written out, for CPU tests.
 *
 * @module
 */
import { bindingDeclarations, type KernelSpec, type StorageElement } from "../src/gpu/kernel.ts";
import { GELU_WGSL } from "./gelu.ts";
import { matmulIo, type MatmulProduct } from "./matmul.ts";
import {
  emulatedFragmentsWgsl,
  operandLoadsWgsl,
  productOpeningWgsl,
  prologueReads,
  prologueWgsl,
  ROUND_F16_WGSL,
  stagedKLoop,
} from "./_matmul_wgsl.ts";
import { pointwiseKernel } from "./_wgsl.ts";

/** A tensor-core tile: BM×BN outputs per workgroup as WM×WN subgroups, BK of K per step. */
export interface TensorCoreTile {
  /** Rows of C per workgroup (a multiple of 16·wm). */
  readonly bm: number;
  /** Columns of C per workgroup (a multiple of 16·wn). */
  readonly bn: number;
  /** K per staged step (a multiple of 16). */
  readonly bk: number;
  /** Subgroups along M. */
  readonly wm: number;
  /** Subgroups along N. */
  readonly wn: number;
  /** Workgroup-memory stages (1: two barriers per step; 2: one). */
  readonly stages: 1 | 2;
  /**
   * Fragments loaded straight from the operands' storage, with no workgroup staging (needs f16
   * operands, `halves`, and M, N and every K chunk multiples of 16 and of `bk`).
   */
  readonly direct?: boolean;
  /**
   * Tile rows per group of the launch order: consecutive workgroups go down `group` tile rows before
   * the next tile column, so a wave of them reads fewer rows of A and columns of B (1 or unset:
   * row-major order).
   */
  readonly group?: number;
  /** With two stages, the K loop takes two steps per iteration, each reading a constant stage. */
  readonly unrolled?: boolean;
}

/**
 * The tiles the launcher chooses from: `large` (128×128, 4 subgroups of 64×64, one stage) for grids with
 * many tiles, `small` (64×64, 4 subgroups of 32×32, two stages) for short or narrow products, `medium`
 * (128×64, 4 subgroups of 64×32, one stage) and `large8` (128×128 on 8 subgroups of 64×32, two stages),
 * which `TensorCorePolicy.fewTile` can put in the small tile's place where a grid of them fills the card,
 * and `wide` (128×256) and `tall` (256×128), each 8 subgroups of 64×64 with one stage, which
 * `TensorCorePolicy.gridTile` can put in the large tile's place. Measured on an
 * H100 (bench/RESULTS.md): the 128×128 tile matched the 128×256 one at 4096³ (0.907 against 0.908 ms) and
 * on the model's shapes within 6%, except the 16384×512×512 products, which one call ran 3.5× faster on
 * it (0.124 against 0.434 ms; half the subgroups, so two of these workgroups fit one compute unit's
 * registers) and a later call at 0.44 ms on every tile; at 512 rows and fewer the small tile was the
 * fastest tried.
 *
 * @example Usage
 * ```ts
 * import { TENSOR_CORE_TILES } from "./matmul_tc.ts";
 * console.log(TENSOR_CORE_TILES.large.bn); // 128
 * ```
 */
export const TENSOR_CORE_TILES: Readonly<
  Record<"large" | "small" | "medium" | "large8" | "wide" | "tall", TensorCoreTile>
> = Object.freeze({
  large: Object.freeze({ bm: 128, bn: 128, bk: 32, wm: 2, wn: 2, stages: 1 as const }),
  small: Object.freeze({ bm: 64, bn: 64, bk: 32, wm: 2, wn: 2, stages: 2 as const }),
  medium: Object.freeze({ bm: 128, bn: 64, bk: 32, wm: 2, wn: 2, stages: 1 as const }),
  large8: Object.freeze({ bm: 128, bn: 128, bk: 32, wm: 2, wn: 4, stages: 2 as const }),
  wide: Object.freeze({ bm: 128, bn: 256, bk: 32, wm: 2, wn: 4, stages: 1 as const }),
  tall: Object.freeze({ bm: 256, bn: 128, bk: 32, wm: 4, wn: 2, stages: 1 as const }),
});

/** Options that change the WGSL text of a tensor-core matmul (sizes travel in uniforms). */
export interface TensorCoreVariant extends MatmulProduct {
  /** The tile; `TENSOR_CORE_TILES.large` when omitted. */
  readonly tile?: TensorCoreTile;
  /**
   * `a` and `b` hold f16 values (two per 32-bit word, as {@linkcode TO_HALVES} writes them) instead
   * of f32: half the bytes to load, and nothing to round.
   */
  readonly halves?: boolean;
  /**
   * The same kernel for any adapter, so that CPU tests run every line but the fragment operations:
   * staged halves are f32 holding f16-rounded values, an accumulator is each lane's 8 values of it, a
   * fragment load keeps only where the fragment lies, and a multiply-accumulate reads both fragments
   * straight from workgroup memory. Staged f32 operands only (no `halves`, no `direct` tile).
   */
  readonly emulated?: boolean;
  /**
   * With `bias`, the accumulators start from the bias (16 copies of the tile's bias columns, staged in
   * workgroup memory) instead of having it added per element at the end: a tile wholly inside C with no
   * other epilogue is then stored straight from its fragments. The sums round with the bias in them.
   */
  readonly biasFirst?: boolean;
  /**
   * The epilogue stages a whole row of a subgroup's fragments (16 × 16·FN) at a time instead of one
   * fragment: FM rounds of two barriers instead of FM·FN, each lane's stores running along a row (more
   * workgroup memory: see {@linkcode tensorCoreSharedBytes}).
   */
  readonly strips?: boolean;
}

/** Halves of padding after each staged row: 16 bytes, so fragment rows fall in different banks. */
const PAD = 8;
/** Invocations per subgroup the tiles are laid out for (NVIDIA's warp). */
export const TENSOR_CORE_SUBGROUP = 32;

function checkTile(t: TensorCoreTile): void {
  const ok = [t.bm, t.bn, t.bk, t.wm, t.wn].every((v) => Number.isInteger(v) && v > 0) &&
    t.bm % (16 * t.wm) === 0 && t.bn % (16 * t.wn) === 0 && t.bk % 16 === 0 &&
    t.wm * t.wn * TENSOR_CORE_SUBGROUP <= 1024 && (t.stages === 1 || t.stages === 2) &&
    (t.group === undefined || (Number.isInteger(t.group) && t.group >= 1)) &&
    (!t.unrolled || t.stages === 2);
  if (!ok) {
    throw new TypeError(
      `Cannot build tensor-core matmul: tile ${JSON.stringify(t)} is invalid (bm a multiple of 16·wm, ` +
        `bn of 16·wn, bk of 16, at most 1024 invocations, 1 or 2 stages, a whole group of 1 or more, ` +
        `unrolled only with 2 stages)`,
    );
  }
}

/** f32 elements of the epilogue's staging blocks (`Cs`), see {@linkcode tensorCoreSharedBytes}. */
function epilogueBlockFloats(
  tile: TensorCoreTile,
  variant: { bias?: boolean; biasFirst?: boolean; strips?: boolean },
): number {
  const perSubgroup = 256 * (variant.strips ? tile.bn / tile.wn / 16 : 1);
  return Math.max(tile.wm * tile.wn * perSubgroup, variant.bias && variant.biasFirst ? 16 * tile.bn : 0);
}

/** The staged tile of one operand: rows × cols of its stored layout, each row padded. */
function stagedShape(t: TensorCoreTile, operand: "a" | "b", trans: boolean): { rows: number; cols: number } {
  if (operand === "a") return trans ? { rows: t.bk, cols: t.bm } : { rows: t.bm, cols: t.bk };
  return trans ? { rows: t.bn, cols: t.bk } : { rows: t.bk, cols: t.bn };
}

/**
 * Workgroup memory in bytes of a tile configuration: the f16 stages of both operands plus the f32
 * epilogue blocks (one 16×16 block per subgroup, a row of FN of them with `strips`, and at least the 16
 * bias rows of the tile with `biasFirst`).
 *
 * @example Usage
 * ```ts
 * import { TENSOR_CORE_TILES, tensorCoreSharedBytes } from "./matmul_tc.ts";
 * console.log(tensorCoreSharedBytes(TENSOR_CORE_TILES.small, {}) <= 32768); // true
 * ```
 * @param tile The tile.
 * @param variant The transposes (they change the padded row lengths) and the epilogue's staging.
 * @returns Bytes of workgroup memory.
 */
export function tensorCoreSharedBytes(
  tile: TensorCoreTile,
  variant: { transA?: boolean; transB?: boolean; bias?: boolean; biasFirst?: boolean; strips?: boolean },
): number {
  const blocks = epilogueBlockFloats(tile, variant) * 4;
  if (tile.direct) return blocks;
  const a = stagedShape(tile, "a", !!variant.transA), b = stagedShape(tile, "b", !!variant.transB);
  const halves = tile.stages * (a.rows * (a.cols + PAD) + b.rows * (b.cols + PAD));
  return halves * 2 + blocks;
}

/**
 * Emits the K loop of a direct tile: each step loads the subgroup's A and B fragments straight from the
 * f16 operands in storage (the workgroup's subgroups share them through the cache) and multiplies them.
 * Fragment origins past M or N are clamped to the last whole fragment: those products land in
 * accumulator rows or columns that are never stored.
 */
function directKLoop(
  emit: (line: string) => void,
  loop: { bk: number; fm: number; fn: number; transA: boolean; transB: boolean },
): void {
  const { bk, fm, fn, transA, transB } = loop;
  for (let i = 0; i < fm; i++) emit(`  let rowA${i} = min(m0 + mWarp + ${i * 16}u, M - 16u);`);
  for (let j = 0; j < fn; j++) emit(`  let colB${j} = min(n0 + nWarp + ${j * 16}u, N - 16u);`);
  const aMajor = transA ? "col_major" : "row_major", bMajor = transB ? "col_major" : "row_major";
  emit(`  for (var k = kBegin; k < kEnd; k += ${bk}u) {`);
  for (let kk = 0; kk < bk; kk += 16) {
    for (let i = 0; i < fm; i++) {
      const offset = transA
        ? `baseA + (k + ${kk}u) * M + rowA${i}, M`
        : `baseA + rowA${i} * K + k + ${kk}u, K`;
      emit(
        `    let a${kk}_${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, ${aMajor}>(&a, ${offset});`,
      );
    }
    for (let j = 0; j < fn; j++) {
      const offset = transB
        ? `baseB + colB${j} * K + k + ${kk}u, K`
        : `baseB + (k + ${kk}u) * N + colB${j}, N`;
      emit(
        `    let b${kk}_${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, ${bMajor}>(&b, ${offset});`,
      );
    }
    for (let i = 0; i < fm; i++) {
      for (let j = 0; j < fn; j++) {
        emit(`    acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${kk}_${i}, b${kk}_${j}, acc${i}_${j});`);
      }
    }
  }
  emit(`  }`);
}

/**
 * Builds the WGSL of one tensor-core matmul variant. Bindings, uniforms and grid are those of
 * `matmulKernel` in kernels/matmul.ts: reads `a`, `b`, then `bias`, then `pre` with `geluGrad`; writes
 * `c`, then `pre` with `gelu` and `pre`; uniforms
 * `M N K strideA strideB strideC splits kChunk`; grid [⌈N/BN⌉, ⌈M/BM⌉, batch·splits]. Needs the
 * `shader-f16` and `chromium-experimental-subgroup-matrix` features and subgroups of 32.
 *
 * @example Usage
 * ```ts
 * import { tensorCoreMatmulKernel } from "./matmul_tc.ts";
 * const spec = tensorCoreMatmulKernel({ transB: true, bias: true, vec4: true });
 * console.log(spec.name, spec.reads, spec.writes); // matmul_tc_nt_128x128x32_2x2s1_v4_bias [a,b,bias] [c]
 * ```
 * @param variant What changes the text: transposes, epilogue, vec4 operand loads, tile.
 * @returns The kernel spec.
 */
export function tensorCoreMatmulKernel(variant: TensorCoreVariant = {}): KernelSpec {
  const tile = variant.tile ?? TENSOR_CORE_TILES.large;
  checkTile(tile);
  const { bm, bn, bk, wm, wn, stages, group = 1 } = tile;
  const direct = !!tile.direct, halves = !!variant.halves;
  if (direct && !halves) {
    throw new TypeError("Cannot build tensor-core matmul: direct fragment loads need f16 operands (halves)");
  }
  const transA = !!variant.transA, transB = !!variant.transB, v4 = !!variant.vec4;
  const bias = !!variant.bias, gelu = !!variant.gelu, pre = gelu && !!variant.pre;
  const geluGrad = !!variant.geluGrad, accumulate = !!variant.accumulate;
  const biasFirst = bias && !!variant.biasFirst, strips = !!variant.strips;
  const epilogue = (bias && !biasFirst) || gelu || geluGrad || accumulate;
  const prologue = variant.prologue, emulated = !!variant.emulated;
  if (emulated && halves) {
    throw new TypeError("Cannot build tensor-core matmul: emulated variants stage f32 operands, not halves");
  }
  if (prologue && halves) {
    throw new TypeError(
      `Cannot build tensor-core matmul: the ${prologue} prologue reads f32 operands, not halves`,
    );
  }
  const subgroups = wm * wn, threads = subgroups * TENSOR_CORE_SUBGROUP;
  const fm = bm / wm / 16, fn = bn / wn / 16; // fragments per subgroup along M and N
  const aShape = stagedShape(tile, "a", transA), bShape = stagedShape(tile, "b", transB);
  const aStride = aShape.cols + PAD, bStride = bShape.cols + PAD;
  const aStage = aShape.rows * aStride, bStage = bShape.rows * bStride;

  const name = `matmul_tc_${transA ? "t" : "n"}${transB ? "t" : "n"}_${bm}x${bn}x${bk}_${wm}x${wn}` +
    `${direct ? "d" : `s${stages}`}${tile.unrolled ? "u" : ""}${group > 1 ? `_g${group}` : ""}${
      halves ? "_h" : ""
    }${v4 ? "_v4" : ""}${bias ? "_bias" : ""}${biasFirst ? "_first" : ""}${gelu ? "_gelu" : ""}${
      pre ? "_pre" : ""
    }${geluGrad ? "_gelu_grad" : ""}${accumulate ? "_acc" : ""}${prologue ? `_a_${prologue}` : ""}${
      strips ? "_strips" : ""
    }${emulated ? "_emulated" : ""}`;
  const { reads, writes, uniforms } = matmulIo(variant);
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);

  if (!emulated) {
    emit(`enable f16;`);
    emit(`enable subgroups;`);
    emit(`enable chromium_experimental_subgroup_matrix;`);
  }
  // Direct fragment loads index the operands by element; staging loads them 4 at a time.
  const operandElement: StorageElement = halves ? (v4 && !direct ? "vec4h" : "f16") : v4 ? "vec4f" : "f32";
  const elements: Record<string, StorageElement> = { a: operandElement, b: operandElement };
  for (const name of prologue ? prologueReads(prologue) : []) elements[name] = operandElement;
  emit(bindingDeclarations({ reads, writes, uniforms, elements }));
  if (!direct) {
    const half = emulated ? "f32" : "f16";
    emit(`var<workgroup> As: array<${half}, ${stages * aStage}>;`);
    emit(`var<workgroup> Bs: array<${half}, ${stages * bStage}>;`);
  }
  emit(`var<workgroup> Cs: array<f32, ${epilogueBlockFloats(tile, { bias, biasFirst, strips })}>;`);
  if (gelu || geluGrad || prologue === "parts_bias_gelu") emit(GELU_WGSL);
  if (prologue) emit(prologueWgsl(prologue, v4));
  if (emulated) emit(ROUND_F16_WGSL + emulatedFragmentsWgsl(["As Bs"], ["Cs", "c"], biasFirst ? ["Cs"] : []));

  if (!direct) emit(operandLoadsWgsl(v4, false, halves, prologue));

  emit(`@compute @workgroup_size(${threads})`);
  // Fragment offsets must be uniform across the subgroup, so the subgroup index comes from
  // subgroup_id (subgroup-uniform), not from local_invocation_index / 32.
  emit(
    `fn ${name}(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32` +
      (emulated ? `) {` : `, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {`),
  );
  if (emulated) {
    emit(`  let sg = lid / ${TENSOR_CORE_SUBGROUP}u;\n  let lane = lid % ${TENSOR_CORE_SUBGROUP}u;`);
  }
  emit(productOpeningWgsl(bm, bn, group));
  emit(`  let mWarp = (sg / ${wn}u) * ${fm * 16}u;`);
  emit(`  let nWarp = (sg % ${wn}u) * ${fn * 16}u;`);

  // Staging: each operand's tile is rows × cols of its stored layout; slot v holds 4 consecutive
  // elements of one row.
  interface Operand {
    buf: "a" | "b";
    shared: "As" | "Bs";
    shape: { rows: number; cols: number };
    stride: number;
    stage: number;
    /** Stored row bound, first column, column bound and first row of the tile at k0. */
    rowEnd: string;
    col0: (k0: string) => string;
    colEnd: string;
    rowOf: (k0: string) => string;
    ld: string;
    base: string;
  }
  // An operand stored with its outer dimension (M for A, N for B) first is [outer, K]: its staged rows
  // run along the outer dimension from the tile's origin, its columns along K; else it is [K, outer].
  const operand = (buf: "a" | "b", outerFirst: boolean): Operand => {
    const [outer, origin] = buf === "a" ? ["M", "m0"] : ["N", "n0"];
    return {
      buf,
      shared: buf === "a" ? "As" : "Bs",
      shape: buf === "a" ? aShape : bShape,
      stride: buf === "a" ? aStride : bStride,
      stage: buf === "a" ? aStage : bStage,
      rowEnd: outerFirst ? outer : "kEnd",
      rowOf: (k0) => outerFirst ? origin : k0,
      colEnd: outerFirst ? "kEnd" : outer,
      col0: (k0) => outerFirst ? k0 : origin,
      ld: outerFirst ? "K" : outer,
      base: buf === "a" ? "baseA" : "baseB",
    };
  };
  const opA = operand("a", !transA), opB = operand("b", transB);
  const ops = [opA, opB];
  const slots = (o: Operand) => (o.shape.rows * o.shape.cols) / 4;
  // Staging registers hold what was loaded: f16 operands as they are, f32 ones until they are staged.
  const register = halves ? "vec4<f16>" : "vec4f";
  for (const o of direct ? [] : ops) {
    for (let s = 0; s < Math.ceil(slots(o) / threads); s++) emit(`  var ${o.buf}r${s} = ${register}(0.0);`);
  }
  const guard = (
    o: Operand,
    s: number,
  ) => ((s + 1) * threads > slots(o) ? `lid + ${s * threads}u < ${slots(o)}u` : "");
  const loadTile = (k0: string) => {
    for (const o of ops) {
      const q = o.shape.cols / 4;
      for (let s = 0; s < Math.ceil(slots(o) / threads); s++) {
        const v = `(lid + ${s * threads}u)`;
        const call =
          `load_${o.buf}(${o.base}, ${o.rowOf(k0)} + ${v} / ${q}u, ${o.col0(k0)} + (${v} % ${q}u) * 4u, ` +
          `${o.rowEnd}, ${o.colEnd}, ${o.ld})`;
        const g = guard(o, s);
        emit(g ? `    if (${g}) { ${o.buf}r${s} = ${call}; }` : `    ${o.buf}r${s} = ${call};`);
      }
    }
  };
  const storeTile = (stage: string) => {
    for (const o of ops) {
      const q = o.shape.cols / 4;
      for (let s = 0; s < Math.ceil(slots(o) / threads); s++) {
        const v = `(lid + ${s * threads}u)`;
        const g = guard(o, s);
        emit(`    ${g ? `if (${g}) ` : ""}{`);
        emit(`      let at = ${stage} * ${o.stage}u + (${v} / ${q}u) * ${o.stride}u + (${v} % ${q}u) * 4u;`);
        const h = halves
          ? `${o.buf}r${s}`
          : emulated
          ? `round_f16(${o.buf}r${s})`
          : `vec4<f16>(${o.buf}r${s})`;
        emit(`      let h = ${h};`);
        for (const [i, comp] of ["x", "y", "z", "w"].entries()) {
          emit(`      ${o.shared}[at + ${i}u] = h.${comp};`);
        }
        emit(`    }`);
      }
    }
  };
  // Fragment offsets in the staged tiles (stage, fragment index, k within the step).
  const aFragment = (stage: string, i: number, kk: number) =>
    transA
      ? `${stage} * ${aStage}u + ${kk * aStride}u + mWarp + ${i * 16}u, ${aStride}u`
      : `${stage} * ${aStage}u + (mWarp + ${i * 16}u) * ${aStride}u + ${kk}u, ${aStride}u`;
  const bFragment = (stage: string, j: number, kk: number) =>
    transB
      ? `${stage} * ${bStage}u + (nWarp + ${j * 16}u) * ${bStride}u + ${kk}u, ${bStride}u`
      : `${stage} * ${bStage}u + ${kk * bStride}u + nWarp + ${j * 16}u, ${bStride}u`;
  const aMajor = transA ? "col_major" : "row_major", bMajor = transB ? "col_major" : "row_major";

  for (let i = 0; i < fm; i++) {
    for (let j = 0; j < fn; j++) {
      emit(`  var acc${i}_${j} = ${emulated ? "Acc()" : "subgroup_matrix_result<f32, 16, 16>()"};`);
    }
  }
  if (biasFirst) {
    // 16 rows of the tile's bias columns (0 past N), loaded as every accumulator's starting value.
    emit(`  for (var e = lid; e < ${16 * bn}u; e += ${threads}u) {`);
    emit(`    let col = n0 + e % ${bn}u;`);
    emit(`    var v = 0.0;`);
    emit(`    if (col < N) { v = bias[col]; }`);
    emit(`    Cs[e] = v;`);
    emit(`  }`);
    emit(`  workgroupBarrier();`);
    // Every row of accumulators starts from the same bias columns: one load per column, copied down.
    for (let j = 0; j < fn; j++) {
      const at = `nWarp + ${j * 16}u, ${bn}u`;
      emit(
        `  acc0_${j} = ${
          emulated
            ? `load_Cs(${at}, lane)`
            : `subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>, row_major>(&Cs, ${at})`
        };`,
      );
      for (let i = 1; i < fm; i++) emit(`  acc${i}_${j} = acc0_${j};`);
    }
    // The epilogue's blocks overlap the bias rows: a staged K loop's barriers keep its stores after every
    // subgroup's loads, a direct one has none.
    if (direct) emit(`  workgroupBarrier();`);
  }
  const fragmentLoad = (kind: "left" | "right", major: string, shared: string, at: string) =>
    emulated
      ? `Operand(${at}, ${major === "col_major"})`
      : `subgroupMatrixLoad<subgroup_matrix_${kind}<f16, 16, 16>, ${major}>(&${shared}, ${at})`;
  const multiply = () => {
    for (let kk = 0; kk < bk; kk += 16) {
      for (let i = 0; i < fm; i++) {
        emit(`    let a${kk}_${i} = ${fragmentLoad("left", aMajor, "As", aFragment("cur", i, kk))};`);
      }
      for (let j = 0; j < fn; j++) {
        emit(`    let b${kk}_${j} = ${fragmentLoad("right", bMajor, "Bs", bFragment("cur", j, kk))};`);
      }
      for (let i = 0; i < fm; i++) {
        for (let j = 0; j < fn; j++) {
          const [x, y, acc] = [`a${kk}_${i}`, `b${kk}_${j}`, `acc${i}_${j}`];
          emit(
            `    ${acc} = ${
              emulated
                ? `mma_As_Bs(${x}, ${y}, ${acc}, lane)`
                : `subgroupMatrixMultiplyAccumulate(${x}, ${y}, ${acc})`
            };`,
          );
        }
      }
    }
  };
  // An accumulator stored row-major at `offset` of `target` with row stride `stride`.
  const storeAcc = (target: "Cs" | "c", offset: string, acc: string, stride: string) =>
    emulated
      ? `store_${target}(${offset}, ${stride}, ${acc}, lane);`
      : `subgroupMatrixStore<row_major>(&${target}, ${offset}, ${acc}, ${stride});`;
  if (direct) directKLoop(emit, { bk, fm, fn, transA, transB });
  else {
    const unrolled = !!tile.unrolled;
    stagedKLoop(emit, { bk, stages, load: loadTile, store: storeTile, multiply, unrolled });
  }

  // Output. A whole tile inside C with nothing to add is stored straight from the fragments.
  if (!epilogue) {
    emit(`  if (m0 + ${bm}u <= M && n0 + ${bn}u <= N) {`);
    for (let i = 0; i < fm; i++) {
      for (let j = 0; j < fn; j++) {
        const at = `baseC + (m0 + mWarp + ${i * 16}u) * N + n0 + nWarp + ${j * 16}u`;
        emit(`    ${storeAcc("c", at, `acc${i}_${j}`, "N")}`);
      }
    }
    emit(`    return;`);
    emit(`  }`);
  }
  // Each round stages `per` fragments of one row of the subgroup's warp tile in its block, which the
  // subgroup's lanes then write out row by row.
  const per = strips ? fn : 1, width = 16 * per;
  emit(`  let block = sg * ${256 * per}u;`);
  for (let i = 0; i < fm; i++) {
    for (let j0 = 0; j0 < fn; j0 += per) {
      for (let j = j0; j < j0 + per; j++) {
        const at = j === j0 ? "block" : `block + ${(j - j0) * 16}u`;
        emit(`  ${storeAcc("Cs", at, `acc${i}_${j}`, `${width}u`)}`);
      }
      emit(`  workgroupBarrier();`);
      emit(`  for (var e = lane; e < ${256 * per}u; e += ${TENSOR_CORE_SUBGROUP}u) {`);
      emit(`    let row = m0 + mWarp + ${i * 16}u + e / ${width}u;`);
      emit(`    let col = n0 + nWarp + ${j0 * 16}u + e % ${width}u;`);
      emit(`    if (row < M && col < N) {`);
      emit(`      let idx = baseC + row * N + col;`);
      emit(`      var s = Cs[block + e];`);
      if (bias && !biasFirst) emit(`      s += bias[col];`);
      if (pre) emit(`      pre[idx] = s;`);
      if (gelu) emit(`      s = gelu(s);`);
      if (geluGrad) emit(`      s *= gelu_grad(pre[idx]);`);
      if (accumulate) emit(`      s += c[idx];`);
      emit(`      c[idx] = s;`);
      emit(`    }`);
      emit(`  }`);
      emit(`  workgroupBarrier();`);
    }
  }
  emit(`}`);
  return { name, code: lines.join("\n") + "\n", reads, writes, uniforms };
}

/**
 * `f16_bits(x: f32) -> u32`: the f16 bit pattern of an f32 that holds an f16 value (as `round_f16_scalar`
 * returns), assembled from its bits so that no conversion's rounding mode is involved; ±inf and NaN
 * (quiet) kept.
 */
const F16_BITS_WGSL = /* wgsl */ `
fn f16_bits(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u;
  let magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) { return sign | 0x7e00u; }
  if (magnitude == 0x7f800000u) { return sign | 0x7c00u; }
  if (magnitude < 0x38800000u) { return sign | u32(bitcast<f32>(magnitude) * 16777216.0); }
  return sign | ((magnitude >> 13u) - 0x1c000u);
}
`;

/**
 * f32 → f16 for the tensor-core products' `halves` operands: `out` word i holds elements 2i (low half)
 * and 2i + 1 (high half; 0 past the end) of `inp`, each rounded to the nearest f16, ties to even, the
 * bits of `Float16Array`. One invocation per word; uniform `n` counts elements, so the grid covers
 * ⌈n/2⌉ words.
 *
 * @example Usage
 * ```ts
 * import { TO_HALVES } from "./matmul_tc.ts";
 * console.log(TO_HALVES.reads, TO_HALVES.writes); // ["inp"] ["out"]
 * ```
 */
export const TO_HALVES: KernelSpec = pointwiseKernel({
  name: "to_halves",
  reads: ["inp"],
  writes: ["out"],
  uniforms: { n: "u32" },
  elements: { out: "u32" },
  helpers: ROUND_F16_WGSL + F16_BITS_WGSL,
  count: "(params.n + 1u) / 2u",
  body: /* wgsl */ `let j = 2u * i;
  var high = 0u;
  if (j + 1u < params.n) { high = f16_bits(round_f16_scalar(inp[j + 1u])); }
  out[i] = f16_bits(round_f16_scalar(inp[j])) | (high << 16u);`,
});
