/**
 * WGSL fragments the matmul families share (`matmul.ts` and the tensor-core `matmul_tc.ts`): rounding to
 * f16, the operand loads and the opening of a product's entry point.
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
 * WGSL of `load_a` and `load_b(base, row, col, rows, colEnd, ld) -> vec4f`: 4 consecutive elements of a
 * stored row of an operand, zero where row >= rows or col + i >= colEnd. With `vec4` the operands are
 * bound as `array<vec4f>` (col and ld multiples of 4, so a vec4 is wholly inside or outside); with
 * `round` each loaded value goes through `round_f16` ({@linkcode ROUND_F16_WGSL}, emitted separately).
 * With `half` the operands hold f16 (`array<vec4<f16>>` or `array<f16>`) and the loads return
 * `vec4<f16>`.
 *
 * @param vec4 Operands bound as 4-element vectors.
 * @param round Round loaded values to f16.
 * @param half Operands stored as f16.
 * @returns The two functions.
 */
export function operandLoadsWgsl(vec4: boolean, round: boolean, half = false): string {
  const rounded = (v: string) => round ? `round_f16(${v})` : v;
  const type = half ? "vec4<f16>" : "vec4f";
  const lines: string[] = [];
  for (const buf of ["a", "b"]) {
    lines.push(`fn load_${buf}(base: u32, row: u32, col: u32, rows: u32, colEnd: u32, ld: u32) -> ${type} {`);
    if (vec4) {
      lines.push(
        `  if (row < rows && col < colEnd) { return ${rounded(`${buf}[(base + row * ld + col) >> 2u]`)}; }`,
      );
      lines.push(`  return ${type}(0.0);`);
    } else {
      lines.push(`  var v = ${type}(0.0);`);
      lines.push(`  if (row < rows) {`);
      lines.push(`    let i = base + row * ld + col;`);
      for (const [c, comp] of ["x", "y", "z", "w"].entries()) {
        lines.push(`    if (col + ${c}u < colEnd) { v.${comp} = ${buf}[i + ${c}u]; }`);
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
 * grid y and x for BM×BN tiles.
 *
 * @param bm Rows of C per workgroup.
 * @param bn Columns of C per workgroup.
 * @returns The statements, indented for the entry point's body.
 */
export function productOpeningWgsl(bm: number, bn: number): string {
  return [
    `  let M = params.M; let N = params.N; let K = params.K;`,
    `  let batch = wg.z / params.splits;`,
    `  let split = wg.z % params.splits;`,
    `  let kBegin = split * params.kChunk;`,
    `  let kEnd = min(K, kBegin + params.kChunk);`,
    `  let baseA = batch * params.strideA;`,
    `  let baseB = batch * params.strideB;`,
    `  let baseC = wg.z * params.strideC;`,
    `  let m0 = wg.y * ${bm}u;`,
    `  let n0 = wg.x * ${bn}u;`,
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
  },
): void {
  const { bk, stages } = loop;
  emit(`  let nTiles = (kEnd - min(kBegin, kEnd) + ${bk - 1}u) / ${bk}u;`);
  emit(`  {`);
  loop.load("kBegin");
  loop.store("0u");
  emit(`  }`);
  emit(`  workgroupBarrier();`);
  emit(`  for (var t = 0u; t < nTiles; t++) {`);
  emit(`    let cur = ${stages === 2 ? "t & 1u" : "0u"};`);
  emit(`    let more = t + 1u < nTiles;`);
  emit(`    if (more) {`);
  emit(`      let kNext = kBegin + (t + 1u) * ${bk}u;`);
  loop.load("kNext");
  emit(`    }`);
  loop.multiply();
  if (stages === 1) emit(`    workgroupBarrier();`);
  emit(`    if (more) {`);
  loop.store(stages === 2 ? "(1u - cur)" : "0u");
  emit(`    }`);
  emit(`    workgroupBarrier();`);
  emit(`  }`);
}
