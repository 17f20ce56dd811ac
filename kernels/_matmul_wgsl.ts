/**
 * WGSL fragments the matmul families share (`matmul.ts` and the tensor-core `matmul_tc.ts`): rounding to
 * f16, the operand loads and A's prologue, the opening of a product's entry point and its K loop, and the
 * in-order sums of split-K partials (which the reduction, attention and LayerNorm also use).
 *
 * @module
 */
/**
 * `round_f16(v: vec4f) -> vec4f`: each component rounded to the nearest f16 value, ties to even, kept in
 * f32 — the operands tensor cores see, on any adapter. Done on the bits, because WGSL lets an f32 → f16
 * conversion (and `pack2x16float`) round either way, and adapters differ there.
 * Normal range: drop 13 mantissa bits with round-half-even; below 2⁻¹⁴ (f16 subnormals): round to a
 * multiple of 2⁻²⁴ with `round` (ties to even); from 65520 up: ±inf, as f16 overflows; inf and NaN kept.
 */
export const ROUND_F16_WGSL: string = /* wgsl */ `
fn round_f16_scalar(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  let sign = bits & 0x80000000u;
  let magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) { return x; }
  if (magnitude >= 0x477ff000u) { return bitcast<f32>(sign | 0x7f800000u); }
  if (magnitude < 0x38800000u) {
    let q = round(bitcast<f32>(magnitude) * 16777216.0) / 16777216.0;
    return bitcast<f32>(sign | bitcast<u32>(q));
  }
  let rounded = (magnitude + 0xfffu + ((magnitude >> 13u) & 1u)) & 0xffffe000u;
  return bitcast<f32>(sign | rounded);
}
fn round_f16(v: vec4f) -> vec4f {
  return vec4f(round_f16_scalar(v.x), round_f16_scalar(v.y), round_f16_scalar(v.z), round_f16_scalar(v.w));
}
`;

/**
 * WGSL of 16×16 subgroup-matrix fragments emulated for any adapter (the tensor-core kernels' `emulated`
 * variants): an accumulator `Acc` is a lane's 8 values, lane l holding row l/2, columns 8·(l%2) to
 * 8·(l%2)+7; an `Operand(offset, stride, col)` names a fragment of an array in place (column-major when
 * `col`); `mma_A_B(x, y, acc, lane)` adds x·y for x in array A and y in array B, reading both where they
 * lie; `store_T(offset, stride, acc, lane)` writes an accumulator row-major into array T, and
 * `load_T(offset, stride, lane)` reads one from there.
 *
 * @example Usage
 * ```ts
 * import { emulatedFragmentsWgsl } from "./_matmul_wgsl.ts";
 * const wgsl = emulatedFragmentsWgsl(["As Bs"], ["Cs"]);
 * console.log(wgsl.includes("fn mma_As_Bs("), wgsl.includes("fn store_Cs(")); // true true
 * ```
 * @param products The array pairs multiplied, each "A B".
 * @param stores The arrays accumulators are stored into.
 * @param loads The arrays accumulators are loaded from.
 * @returns Module-scope WGSL.
 */
export function emulatedFragmentsWgsl(
  products: Iterable<string>,
  stores: Iterable<string>,
  loads: Iterable<string> = [],
): string {
  const mmas = [...products].map((pair) => {
    const [a, b] = pair.split(" ");
    return `
fn mma_${a}_${b}(x: Operand, y: Operand, acc: Acc, lane: u32) -> Acc {
  var o = acc;
  let r = lane / 2u;
  for (var j = 0u; j < 8u; j++) {
    let c = (lane % 2u) * 8u + j;
    var s = o[j];
    for (var k = 0u; k < 16u; k++) { s = fma(${a}[at(x, r, k)], ${b}[at(y, k, c)], s); }
    o[j] = s;
  }
  return o;
}`;
  }).join("");
  const writes = [...stores].map((t) => `
fn store_${t}(offset: u32, stride: u32, acc: Acc, lane: u32) {
  var o = acc;
  for (var j = 0u; j < 8u; j++) { ${t}[lane_at(offset, stride, lane, j)] = o[j]; }
}`).join("");
  const reads = [...loads].map((t) => `
fn load_${t}(offset: u32, stride: u32, lane: u32) -> Acc {
  var o: Acc;
  for (var j = 0u; j < 8u; j++) { o[j] = ${t}[lane_at(offset, stride, lane, j)]; }
  return o;
}`).join("");
  return /* wgsl */ `
alias Acc = array<f32, 8>;
struct Operand { offset: u32, stride: u32, col: bool }
fn at(x: Operand, r: u32, c: u32) -> u32 {
  return select(x.offset + r * x.stride + c, x.offset + c * x.stride + r, x.col);
}
fn lane_at(offset: u32, stride: u32, lane: u32, j: u32) -> u32 {
  return offset + (lane / 2u) * stride + (lane % 2u) * 8u + j;
}${mmas}${writes}${reads}
`;
}

/**
 * What a matmul kernel's `load_a` computes A from, instead of reading it as stored (A untransposed only).
 * - `parts_bias_gelu`: `a` holds `params.a_parts` split-K partial products of A [M, K],
 *   `params.a_part_stride` elements apart, and `a_bias` K elements; A is GELU of the partials' sum in
 *   split order plus `a_bias`: the values `matmul_reduce_bias_gelu` writes, to the bit, without that pass.
 * - `concat3`: `a`, `a_mid` and `a_last` hold three operands [.., M, K/3]; A is their concatenation along
 *   K (columns [0, K/3) from `a`, then `a_mid`, then `a_last`): the values a concatenation pass would
 *   write, without that pass.
 */
export type MatmulPrologue = "parts_bias_gelu" | "concat3";

/**
 * The storage bindings a prologue reads besides `a`, in binding order.
 *
 * @example Usage
 * ```ts
 * import { prologueReads } from "./_matmul_wgsl.ts";
 * console.log(prologueReads("concat3")); // ["a_mid", "a_last"]
 * ```
 * @param prologue The prologue (see {@linkcode MatmulPrologue}).
 * @returns The binding names.
 */
export function prologueReads(prologue: MatmulPrologue): string[] {
  return prologue === "concat3" ? ["a_mid", "a_last"] : ["a_bias"];
}

/**
 * WGSL of the prologue's `a_prologue(i, col) -> f32` (A's element at index i as if A were stored [.., M,
 * K], in column col) or, with `vec4`, `a_prologue4(i, col) -> vec4f` (the 4 elements from there).
 * `parts_bias_gelu`: the partials summed in split order, then the bias added, then GELU, as
 * `matmul_reduce` sums, adds the bias and applies GELU, so that the values agree to the bit; needs `gelu`
 * (kernels/gelu.ts). `concat3`: the element of the operand that holds column col (with `vec4`, K/3 is a
 * multiple of 4, so a vector never straddles two operands).
 *
 * @param prologue The prologue (see {@linkcode MatmulPrologue}).
 * @param vec4 `a` and the prologue's other operands bound as `array<vec4f>`.
 * @returns The function.
 */
export function prologueWgsl(prologue: MatmulPrologue, vec4: boolean): string {
  const suffix = vec4 ? "4" : "";
  const type = vec4 ? "vec4f" : "f32";
  const at = (buf: string, i: string) => vec4 ? `${buf}[(${i}) >> 2u]` : `${buf}[${i}]`;
  if (prologue === "concat3") {
    // i - col is the row's start in A, (batch·M + row)·K; a third of it is the row's start in an operand.
    return [
      `fn a_prologue${suffix}(i: u32, col: u32) -> ${type} {`,
      `  let width = params.K / 3u;`,
      `  let j = (i - col) / 3u + col % width;`,
      `  if (col < width) { return ${at("a", "j")}; }`,
      `  if (col < 2u * width) { return ${at("a_mid", "j")}; }`,
      `  return ${at("a_last", "j")};`,
      `}`,
    ].join("\n");
  }
  const sum = (load: (k: string) => string) => partialSumsWgsl([{ name: "s", at: load }], "params.a_parts");
  const stride = (k: string) => `(${k}) * params.a_part_stride`;
  if (vec4) {
    return [
      `fn a_prologue4(i: u32, col: u32) -> vec4f {`,
      `  var s = vec4f(0.0);`,
      `  ${sum((k) => `a[(i + ${stride(k)}) >> 2u]`)}`,
      `  s += a_bias[col >> 2u];`,
      `  return vec4f(gelu(s.x), gelu(s.y), gelu(s.z), gelu(s.w));`,
      `}`,
    ].join("\n");
  }
  return [
    `fn a_prologue(i: u32, col: u32) -> f32 {`,
    `  var s = 0.0;`,
    `  ${sum((k) => `a[i + ${stride(k)}]`)}`,
    `  s += a_bias[col];`,
    `  return gelu(s);`,
    `}`,
  ].join("\n");
}

/**
 * WGSL of `load_a` and `load_b(base, row, col, rows, colEnd, ld) -> vec4f`: 4 consecutive elements of a
 * stored row of an operand, zero where row >= rows or col + i >= colEnd. With `vec4` the operands are
 * bound as `array<vec4f>` (col and ld multiples of 4, so a vec4 is wholly inside or outside); with
 * `round` each loaded value goes through `round_f16` ({@linkcode ROUND_F16_WGSL}, emitted separately).
 * With `half` the operands hold f16 (`array<vec4<f16>>` or `array<f16>`) and the loads return
 * `vec4<f16>`.
 *
 * With a `prologue` (see {@linkcode MatmulPrologue}), `load_a` computes A's elements from what `a` holds
 * instead of reading them (`round` still applies after it); its WGSL ({@linkcode prologueWgsl}) and
 * `gelu` are emitted separately.
 *
 * @param vec4 Operands bound as 4-element vectors.
 * @param round Round loaded values to f16.
 * @param half Operands stored as f16.
 * @param prologue What `load_a` computes A from; A is read as stored when omitted.
 * @returns The two functions.
 */
export function operandLoadsWgsl(
  vec4: boolean,
  round: boolean,
  half = false,
  prologue?: MatmulPrologue,
): string {
  const rounded = (v: string) => round ? `round_f16(${v})` : v;
  const type = half ? "vec4<f16>" : "vec4f";
  const lines: string[] = [];
  for (const buf of ["a", "b"]) {
    // A's element i (of column col), or its vec4 at i: read, or computed by the prologue.
    const computed = buf === "a" && prologue !== undefined;
    const at = (i: string, col: string) =>
      computed
        ? `a_prologue${vec4 ? "4" : ""}(${i}, ${col})`
        : vec4
        ? `${buf}[(${i}) >> 2u]`
        : `${buf}[${i}]`;
    lines.push(`fn load_${buf}(base: u32, row: u32, col: u32, rows: u32, colEnd: u32, ld: u32) -> ${type} {`);
    if (vec4) {
      lines.push(
        `  if (row < rows && col < colEnd) { return ${rounded(at("base + row * ld + col", "col"))}; }`,
      );
      lines.push(`  return ${type}(0.0);`);
    } else {
      lines.push(`  var v = ${type}(0.0);`);
      lines.push(`  if (row < rows) {`);
      lines.push(`    let i = base + row * ld + col;`);
      for (const [c, comp] of ["x", "y", "z", "w"].entries()) {
        lines.push(`    if (col + ${c}u < colEnd) { v.${comp} = ${at(`i + ${c}u`, `col + ${c}u`)}; }`);
      }
      lines.push(`  }`);
      lines.push(`  return ${rounded("v")};`);
    }
    lines.push(`}`);
  }
  return lines.join("\n");
}

/**
 * WGSL of the opening every matmul entry point shares: sizes from the uniforms; `batch`, `split`, the K
 * chunk [kBegin, kEnd) and the operand and result offsets from grid z; the tile origin (m0, n0) from
 * grid y and x for BM×BN tiles, in row-major order or grouped.
 *
 * @param bm Rows of C per workgroup.
 * @param bn Columns of C per workgroup.
 * @param group Tile rows per group of the launch order (1: row-major, tile columns fastest).
 * @returns The statements, indented for the entry point's body.
 */
export function productOpeningWgsl(bm: number, bn: number, group = 1): string {
  // Grouped order: consecutive workgroups sweep `group` tile rows down before moving one tile column
  // right, so the A rows and B columns that a wave of workgroups reads stay fewer (more reuse in cache).
  const origin = group > 1
    ? [
      `  let tilesX = (N + ${bn - 1}u) / ${bn}u;`,
      `  let tile = wg.y * tilesX + wg.x;`,
      `  let firstRow = (tile / (${group}u * tilesX)) * ${group}u;`,
      `  let groupRows = min((M + ${bm - 1}u) / ${bm}u - firstRow, ${group}u);`,
      `  let inGroup = tile % (${group}u * tilesX);`,
      `  let m0 = (firstRow + inGroup % groupRows) * ${bm}u;`,
      `  let n0 = (inGroup / groupRows) * ${bn}u;`,
    ]
    : [`  let m0 = wg.y * ${bm}u;`, `  let n0 = wg.x * ${bn}u;`];
  return [
    `  let M = params.M; let N = params.N; let K = params.K;`,
    `  let batch = wg.z / params.splits;`,
    `  let split = wg.z % params.splits;`,
    `  let kBegin = split * params.kChunk;`,
    `  let kEnd = min(K, kBegin + params.kChunk);`,
    `  let baseA = batch * params.strideA;`,
    `  let baseB = batch * params.strideB;`,
    `  let baseC = wg.z * params.strideC;`,
    ...origin,
  ].join("\n");
}

/**
 * Emits the K loop both matmul families share: the first tile is loaded and staged, then every step
 * loads the next tile into registers (`load`), multiplies the staged one (`multiply`, which reads stage
 * `cur`), and stages the loaded tile (`store`). With two stages the next tile goes to the other stage
 * and one barrier ends a step; with one stage a barrier also separates the multiply from the overwrite.
 *
 * @param emit Appends one line of WGSL.
 * @param loop K per step, the number of stages, and the builders of the three phases.
 */
export function stagedKLoop(
  emit: (line: string) => void,
  loop: {
    bk: number;
    stages: 1 | 2;
    load: (k0: string) => void;
    store: (stage: string) => void;
    multiply: () => void;
    /** With two stages, two steps per iteration so that each reads a constant stage. */
    unrolled?: boolean;
  },
): void {
  const { bk, stages } = loop;
  emit(`  let nTiles = (kEnd - min(kBegin, kEnd) + ${bk - 1}u) / ${bk}u;`);
  emit(`  {`);
  loop.load("kBegin");
  loop.store("0u");
  emit(`  }`);
  emit(`  workgroupBarrier();`);
  // One step: load the tile at index `next` (if any), multiply stage `cur`, stage the loaded tile in `other`.
  const step = (cur: string, next: string, other: string) => {
    emit(`    let cur = ${cur};`);
    emit(`    let more = ${next} < nTiles;`);
    emit(`    if (more) {`);
    emit(`      let kNext = kBegin + (${next}) * ${bk}u;`);
    loop.load("kNext");
    emit(`    }`);
    loop.multiply();
    if (stages === 1) emit(`    workgroupBarrier();`);
    emit(`    if (more) {`);
    loop.store(other);
    emit(`    }`);
    emit(`    workgroupBarrier();`);
  };
  if (stages === 2 && loop.unrolled) {
    emit(`  for (var t = 0u; t < nTiles; t += 2u) {`);
    emit(`    {`);
    step("0u", "t + 1u", "1u");
    emit(`    }`);
    emit(`    if (t + 1u < nTiles) {`);
    step("1u", "t + 2u", "0u");
    emit(`    }`);
  } else {
    emit(`  for (var t = 0u; t < nTiles; t++) {`);
    step(stages === 2 ? "t & 1u" : "0u", "t + 1u", stages === 2 ? "(1u - cur)" : "0u");
  }
  emit(`  }`);
}

/**
 * WGSL that adds `count` split-K partials into each of `sums` (f32 or vector variables declared by the
 * caller), in split order, loading four partials of every sum before adding any, so that their loads are
 * in flight together instead of one round trip to memory each. `at(k)` is the load of a sum's partial `k` (a u32
 * expression). Uses the names `k` and `p{q}_{i}`.
 *
 * @example Usage
 * ```ts
 * import { partialSumsWgsl } from "./_matmul_wgsl.ts";
 * const wgsl = partialSumsWgsl([{ name: "s", at: (k) => `part[(${k}) * stride + i]` }], "splits");
 * console.log(wgsl.includes("s += p3_0;")); // true
 * ```
 * @param sums The variables and their loads.
 * @param count The number of partials (a u32 expression).
 * @param indent Prefix of every line after the first.
 * @returns The statements.
 */
export function partialSumsWgsl(
  sums: readonly { name: string; at: (k: string) => string }[],
  count: string,
  indent = "  ",
): string {
  const quad = [0, 1, 2, 3];
  const loads = sums.flatMap(({ at }, i) =>
    quad.map((q) => `let p${q}_${i} = ${at(q === 0 ? "k" : `k + ${q}u`)};`)
  );
  const adds = sums.flatMap(({ name }, i) => quad.map((q) => `${name} += p${q}_${i};`));
  return [
    "var k = 0u;",
    `for (; k + 4u <= ${count}; k += 4u) {`,
    ...[...loads, ...adds].map((line) => `  ${line}`),
    "}",
    `for (; k < ${count}; k++) {`,
    ...sums.map(({ name, at }) => `  ${name} += ${at("k")};`),
    "}",
  ].join(`\n${indent}`);
}
