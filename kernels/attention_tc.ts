/**
 * attention_tc: the attention kernels on tensor cores (WGSL subgroup matrices, `chromium_experimental_subgroup_matrix`,
 * Dawn) for sequences of up to {@linkcode ATTENTION_TC_MAX_SEQ} positions — the same functions, bindings and
 * uniforms as kernels/attention_tiled.ts (see kernels/attention.ts for the math and the layouts), with
 * each head's products (QKᵀ and P·V forward; QKᵀ again, dP = dout·Vᵀ, dV = Pᵀ·dout, dQ = dS·K and
 * dK = dSᵀ·Q backward) as 16×16×16 f16 × f16 → f32 multiply-accumulates.
 *
 * Parallelism: one workgroup of 4 subgroups (32 invocations each) per (b, h). The head's rows are
 * padded to LP (a multiple of 16, at most 64) and its columns to HP (a multiple of 16): subgroup s owns
 * query rows (and, for dV and dK, key rows) 16s…16s+15 and computes all of their fragments, so no
 * product's result crosses subgroups. Operands are staged into workgroup memory as f16 (q and k rotated
 * by RoPE first; rows past L and columns past hd are zeros), rows padded by 8 halves against bank
 * conflicts. Element-wise work on a fragment (masks, softmax, dS, RoPE's transpose, the stores) goes
 * through 16×16 f32 blocks of the subgroup's (four fragments per pair of barriers in the forward, two in
 * the backward), lane pair (2r, 2r+1) taking row r, 8 columns each.
 *
 * Staging issues every global load of a pass's operands before its first store to workgroup memory.
 *
 * Forward: S = QKᵀ kept in fragments; its scores, masked as in attention_forward, pass into registers;
 * the row maximum m and the sum l of p = exp(s − m) are merged over the lane pair; p goes to workgroup
 * memory as f16 in place of the subgroup's own rows of q, and O = p·V / l is stored, with
 * lse = m + log l.
 * Backward: S again, P = exp(s − lse) (1/L on padding rows, 0 on masked scores) kept in registers and
 * staged as f16; V replaces Q and dout is staged; dV = Pᵀ·dout and dP = dout·Vᵀ; D = Σ P∘dP per row
 * (equal to dout·out, without reading out) into the scratch dsum; dS = P∘(dP − D)/√hd replaces P; Q is
 * staged again in V's place (five f16 tiles do not fit 48 KiB); dQ = dS·K and dK = dSᵀ·Q leave through
 * RoPE's transpose. dqkv is written (every element of rows < L) or, in the `accumulate` variant, added
 * into.
 *
 * Numerics: operands (rotated q and k, v, dout, p and dS) rounded to nearest f16; sums in f32; m, l,
 * lse, D and the softmax in f32. Needs the `shader-f16` and `chromium-experimental-subgroup-matrix`
 * features and subgroups of 32.
 *
 * The `emulated` variants are the same kernels for any adapter, so that CPU tests run every line but the
 * fragment operations: the halves are f32 holding f16-rounded values, an accumulator is the lane's 8
 * values of its fragment row (where the stores put them), each multiply-accumulate reads its operands
 * straight from workgroup memory, the subgroup index and lane come from the invocation index, and the lane
 * pair's shuffles pass through workgroup memory. Their f32 halves take twice the room (under 29 KiB at
 * L = hd = 32).
 * Reference: tests/ref/attention.ts (float64).
 *
 * @module
 */
import { type KernelSpec, kernelVariants } from "../src/gpu/kernel.ts";
import { attentionEntry, attentionKernel, BACKWARD_IO, checkHeadDim, FORWARD_IO } from "./_attention.ts";
import { emulatedFragmentsWgsl, ROUND_F16_WGSL } from "./_matmul_wgsl.ts";

/** The longest sequence the tensor-core kernels take (a 16-row strip for each of the 4 subgroups). */
export const ATTENTION_TC_MAX_SEQ = 64;

const SUBGROUPS = 4;
const WG = SUBGROUPS * 32;
/** Halves of padding after each staged row (16 bytes). */
const PAD = 8;

const ENABLES = "enable f16;\nenable subgroups;\nenable chromium_experimental_subgroup_matrix;";
const BUILTINS = "@builtin(subgroup_id) sg: u32,\n  @builtin(subgroup_invocation_id) lane: u32,";

/** Options that change the text of both kernels. */
interface Emulation {
  /** Fragments and f16 emulated in plain WGSL (any adapter). */
  emulated: boolean;
}

/** One operand fragment of a product: a 16×16 block of a half region. */
interface Operand {
  region: string;
  offset: string;
  stride: number;
  colMajor?: boolean;
}

interface Layout {
  /** L padded to 16. */
  lp: number;
  /** hd padded to 16. */
  hp: number;
  /**
   * Row strides in halves: of the staged [LP, HP] tiles, of the [LP, LP] probabilities, and of the
   * forward's region that holds q and then, row for row, the probabilities.
   */
  sh: number;
  sp: number;
  sq: number;
}

function layout(seq: number, headDim: number): Layout {
  checkHeadDim(headDim);
  if (!Number.isInteger(seq) || seq < 1 || seq > ATTENTION_TC_MAX_SEQ) {
    throw new RangeError(
      `Cannot build tensor-core attention for ${seq} positions: expected 1 to ${ATTENTION_TC_MAX_SEQ}`,
    );
  }
  const lp = Math.ceil(seq / 16) * 16, hp = Math.ceil(headDim / 16) * 16;
  return { lp, hp, sh: hp + PAD, sp: lp + PAD, sq: Math.max(lp, hp) + PAD };
}

/**
 * 16×16 f32 blocks per subgroup, the fragments that pass to lanes between one pair of barriers: four in
 * the forward, two in the backward (whose f16 tiles leave less room under 48 KiB).
 */
function blocksFor(l: Layout, pass: "forward" | "backward"): number {
  return Math.min(pass === "forward" ? 4 : 2, Math.max(l.lp, l.hp) / 16);
}

/**
 * Workgroup memory of the tensor-core attention kernels in bytes (44,032 for the forward and 45,312 for
 * the backward at L = hd = 64): the forward's three [LP, HP] f16 tiles (the probabilities replace q), the
 * backward's three and the [LP, LP] probabilities, the subgroups' f32 blocks, and in the backward lse per
 * row.
 *
 * @example Usage
 * ```ts
 * import { attentionTensorCoreBytes } from "./attention_tc.ts";
 * console.log(attentionTensorCoreBytes(64, 64, "forward")); // 44032
 * ```
 * @param seq L, 1 to 64.
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @param pass Which kernel.
 * @returns Bytes of workgroup memory.
 * @throws {RangeError} If L or hd is not supported.
 */
export function attentionTensorCoreBytes(seq: number, headDim: number, pass: "forward" | "backward"): number {
  const l = layout(seq, headDim), { lp, sh, sp, sq } = l;
  const halves = pass === "forward" ? lp * sq + 2 * lp * sh : 3 * lp * sh + lp * sp;
  return halves * 2 + SUBGROUPS * blocksFor(l, pass) * 1024 + (pass === "backward" ? lp * 4 : 0);
}

/** WGSL emitters shared by both kernels, for one layout. */
function emitters(l: Layout, { emulated }: Emulation, blocks: number) {
  const nt = l.lp / 16, ht = l.hp / 16, hp4 = l.hp / 4;
  const slots = l.lp * hp4;
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  const take = () => lines.splice(0).join("\n");
  const pairs = new Set<string>();
  const load = (side: "left" | "right", o: Operand) =>
    emulated
      ? `Operand(${o.offset}, ${o.stride}u, ${!!o.colMajor})`
      : `subgroupMatrixLoad<subgroup_matrix_${side}<f16, 16, 16>, ${
        o.colMajor ? "col_major" : "row_major"
      }>(&${o.region}, ${o.offset}, ${o.stride}u)`;
  /** `x` rounded to f16, as stored in a half region. */
  const half = (x: string) => emulated ? `round_f16_scalar(${x})` : `f16(${x})`;
  /** Merges `x` with the other lane of the pair by `op` (max or +): a shuffle, or through workgroup memory. */
  const pair = (x: string, op: "max" | "+") => {
    const other = emulated ? "Xs[tid ^ 1u]" : `subgroupShuffleXor(${x}, 1u)`;
    if (emulated) emit(`  Xs[tid] = ${x};\n  workgroupBarrier();`);
    emit(`  ${x} = ${op === "max" ? `max(${x}, ${other})` : `${x} + ${other}`};`);
    if (emulated) emit(`  workgroupBarrier();`);
  };
  /**
   * Accumulates `names[t]` (fresh) = Σ over 16-wide k steps of `a(k)`·`b(k, t)`, each A fragment
   * loaded once per k step.
   */
  const product = (
    names: string[],
    steps: number,
    a: (k: number) => Operand,
    b: (k: number, t: number) => Operand,
  ) => {
    for (const n of names) {
      emit(`  var ${n} = ${emulated ? "Acc()" : "subgroup_matrix_result<f32, 16, 16>()"};`);
    }
    for (let k = 0; k < steps; k++) {
      const x = a(k);
      emit(`  {`);
      emit(`    let a = ${load("left", x)};`);
      names.forEach((n, t) => {
        const y = b(k, t);
        pairs.add(`${x.region} ${y.region}`);
        emit(
          emulated
            ? `    ${n} = mma_${x.region}_${y.region}(a, ${load("right", y)}, ${n}, lane);`
            : `    ${n} = subgroupMatrixMultiplyAccumulate(a, ${load("right", y)}, ${n});`,
        );
      });
      emit(`  }`);
    }
  };
  return {
    half,
    pair,
    /** The WGSL type of a half region of n elements. */
    region: (n: number) => `array<${emulated ? "f32" : "f16"}, ${n}>`,
    /** Module-scope WGSL of the emulation (call after emitting the products). */
    helpers: () =>
      emulated
        ? `${ROUND_F16_WGSL}${emulatedFragmentsWgsl(pairs, ["Cs"])}var<workgroup> Xs: array<f32, ${WG}>;\n`
        : "",
    enables: emulated ? "" : ENABLES,
    builtins: emulated ? "" : BUILTINS,
    nt,
    ht,
    emit,
    take,
    /**
     * Stages [LP, HP] operands as f16, each `value` the vec4 of row `r`, column vec4 `c4` (both in range)
     * into `region` rows `stride` halves apart: every load is issued before the first store.
     */
    stage(operands: { region: string; value: (r: string, c4: string) => string; stride?: number }[]) {
      emit(`  {`);
      for (let u = 0; u < Math.ceil(slots / WG); u++) {
        emit(`  let e${u} = tid + ${u * WG}u;`);
        emit(`  let r${u} = e${u} / ${hp4}u;`);
        emit(`  let c${u} = e${u} % ${hp4}u;`);
        emit(`  let in${u} = e${u} < ${slots}u && r${u} < L && c${u} < HD4;`);
        operands.forEach((o, m) => {
          const value = o.value(`r${u}`, `c${u}`);
          emit(`  var x${m}_${u} = vec4f(0.0);`);
          emit(`  if (in${u}) { x${m}_${u} = ${value}; }`);
        });
      }
      for (let u = 0; u < Math.ceil(slots / WG); u++) {
        emit(`  if (e${u} < ${slots}u) {`);
        operands.forEach((o, m) => {
          const h = `h${m}_${u}`, region = o.region;
          emit(`    let ${h} = ${emulated ? `round_f16(x${m}_${u})` : `vec4<f16>(x${m}_${u})`};`);
          emit(`    let at${m}_${u} = r${u} * ${o.stride ?? l.sh}u + c${u} * 4u;`);
          emit(
            `    ${region}[at${m}_${u}] = ${h}.x; ${region}[at${m}_${u} + 1u] = ${h}.y; ` +
              `${region}[at${m}_${u} + 2u] = ${h}.z; ${region}[at${m}_${u} + 3u] = ${h}.w;`,
          );
        });
        emit(`  }`);
      }
      emit(`  }`);
    },
    product,
    /** S = Q·Kᵀ for the subgroup's query rows, q in `region` (rows `stride` apart), Kᵀ read column-major from Kh. */
    scores(names: string[], region: string, stride: number) {
      product(
        names,
        ht,
        (k) => at(region, `strip * ${stride}u + ${16 * k}u`, stride),
        (k, t) => at("Kh", `${16 * t * l.sh + 16 * k}u`, l.sh, true),
      );
    },
    /**
     * For each fragment: stores it to one of the subgroup's f32 blocks, then (subgroups that own rows
     * only) runs `each(f)` on the lane's 8 values `v0…v7` of row `row`, columns 8·half…8·half+7 of the
     * fragment; `blocks` fragments between each pair of barriers.
     */
    through(names: string[], each: (f: number) => string) {
      for (let f0 = 0; f0 < names.length; f0 += blocks) {
        const group = names.slice(f0, f0 + blocks);
        group.forEach((n, j) => {
          const at = `blk + ${256 * j}u`;
          emit(
            emulated
              ? `  store_Cs(${at}, 16u, ${n}, lane);`
              : `  subgroupMatrixStore<row_major>(&Cs, ${at}, ${n}, 16u);`,
          );
        });
        emit(`  workgroupBarrier();`);
        emit(`  if (owner) {`);
        group.forEach((_, j) => {
          emit(`    {`);
          for (let c = 0; c < 8; c++) {
            emit(`    let v${c} = Cs[blk + ${256 * j}u + row * 16u + half * 8u + ${c}u];`);
          }
          emit(each(f0 + j));
          emit(`    }`);
        });
        emit(`  }`);
        emit(`  workgroupBarrier();`);
      }
    },
  };
}

/** A product operand (see {@linkcode Operand}). */
function at(region: string, offset: string, stride: number, colMajor = false): Operand {
  return { region, offset, stride, colMajor };
}

/** The operands as stored: rotated q, rotated k, v (of qkv) and dout, at row r, column vec4 c4 of head h. */
const QUERY = (r: string, c4: string) =>
  `rotate(qkv[(b * L + ${r}) * stride + h * HD4 + ${c4}], rope[${r} * HD4 + ${c4}])`;
const KEY = (r: string, c4: string) =>
  `rotate(qkv[(b * L + ${r}) * stride + (H + h) * HD4 + ${c4}], rope[${r} * HD4 + ${c4}])`;
const VALUE = (r: string, c4: string) => `qkv[(b * L + ${r}) * stride + (2u * H + h) * HD4 + ${c4}]`;
const GRAD = (r: string, c4: string) => `dout[(b * L + ${r}) * ostride + h * HD4 + ${c4}]`;

/** What a kernel variant's text depends on besides its pass's own option. */
interface Padded {
  /** L padded to 16. */
  lp: number;
  headDim: number;
  emulated: boolean;
}

/** A lane's 8 columns of a fragment row. */
const C = [0, 1, 2, 3, 4, 5, 6, 7];

/** Names of n fragments: `prefix`0 … `prefix`n−1. */
function fragments(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, f) => `${prefix}${f}`);
}

/** The key (score column) of the lane's value c in fragment column t. */
function keyOf(t: number, c: number): string {
  return `${16 * t}u + half * 8u + ${c}u`;
}

/** The opening shared by both kernels after the entry: the lane's place and the workgroup memory's. */
function laneSetup(l: Layout, { emulated }: Emulation, blocks: number): string {
  return `${emulated ? "  let sg = tid / 32u;\n  let lane = tid % 32u;\n" : ""}  let nt = ${l.lp / 16}u;
  let owner = sg < nt;                 // subgroups past the padded rows only take part in barriers
  let strip = min(sg, nt - 1u) * 16u;  // the subgroup's query (and key) rows; fragment offsets stay in range
  let blk = sg * ${256 * blocks}u;${
    " ".repeat(Math.max(1, 13 - String(256 * blocks).length))
  }// the subgroup's f32 blocks
  let row = lane / 2u;                 // the lane's row of a fragment ...
  let half = lane % 2u;                // ... and its 8 columns 8·half…8·half+7
  let i = strip + row;                 // the lane's query (or key) row`;
}

/** vec4 v (0 or 1) of the lane's 8 values, with its column vec4 in fragment column `f` of a head row. */
function laneVec4(f: number, v: number): { c4: string; value: string } {
  const b = 4 * v;
  return {
    c4: `${4 * f}u + half * 2u + ${v}u`,
    value: `vec4f(v${b}, v${b + 1}, v${b + 2}, v${b + 3})`,
  };
}

/**
 * The tensor-core attention forward for one padded length and head dim: the function, bindings and
 * uniforms of `attention_forward_tiled` (uniform `qblocks` = 1). Grid: B·H workgroups of 128
 * invocations, folded with `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { attentionForwardTensorCoreSpec } from "./attention_tc.ts";
 * console.log(attentionForwardTensorCoreSpec(64, 64).name); // "attention_forward_tc_64x64"
 * ```
 * @param seq L (any L up to the same multiple of 16 shares the kernel), 1 to 64.
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @param options `parts`: read qkv as split-K partial products, summed on load (see `attentionKernel`);
 * `emulated`: the variant for any adapter (see the module's doc).
 * @returns The kernel spec (the same object for the same padded L, head dim and options).
 * @throws {RangeError} If L or hd is not supported.
 */
export function attentionForwardTensorCoreSpec(
  seq: number,
  headDim: number,
  options: { parts?: boolean; emulated?: boolean } = {},
): KernelSpec {
  const { lp } = layout(seq, headDim);
  return forwardVariants({ lp, headDim, emulated: !!options.emulated, parts: !!options.parts });
}

const forwardVariants = kernelVariants(
  ({ lp, headDim, emulated, parts }: Padded & { parts: boolean }): KernelSpec => {
    const l = layout(lp, headDim);
    const blocks = blocksFor(l, "forward");
    const e = emitters(l, { emulated }, blocks);
    const { nt, ht, emit, take, half } = e;
    const name = `attention_forward_tc_${lp}x${headDim}${emulated ? "_emulated" : ""}`;
    const S = fragments("s", nt), O = fragments("o", ht);
    e.stage([{ region: "QPh", value: QUERY, stride: l.sq }, { region: "Kh", value: KEY }, {
      region: "Vh",
      value: VALUE,
    }]);
    const staging = take();
    e.scores(S, "QPh", l.sq);
    const scores = take();
    e.through(S, (t) =>
      C.map((c) => {
        const key = keyOf(t, c);
        return `    sc${t}_${c} = select(select(MASKED, v${c} * SCALE, i < len && ${key} < len), EXCLUDED, ${key} >= L);`;
      }).join("\n"));
    const masked = take();
    const all = S.flatMap((_, t) => C.map((c) => `sc${t}_${c}`));
    emit(`  var m = EXCLUDED;`);
    for (const x of all) emit(`  m = max(m, ${x});`);
    e.pair("m", "max");
    emit(`  var sum = 0.0;`);
    for (const x of all) emit(`  ${x} = exp(${x} - m);`);
    for (const x of all) emit(`  sum += ${x};`);
    e.pair("sum", "+");
    emit(`  if (owner) {`);
    S.forEach((_, t) =>
      C.forEach((c) => emit(`    QPh[i * ${l.sq}u + ${keyOf(t, c)}] = ${half(`sc${t}_${c}`)};`))
    );
    emit(`    if (half == 0u && i < L) { lse[bh * L + i] = m + log(sum); }`);
    emit(`  }`);
    const softmax = take();
    // O = p·V / l.
    e.product(
      O,
      nt,
      (k) => at("QPh", `strip * ${l.sq}u + ${16 * k}u`, l.sq),
      (k, d) => at("Vh", `${16 * k * l.sh + 16 * d}u`, l.sh),
    );
    e.through(O, (d) =>
      [0, 1].map((v) => {
        const { c4, value } = laneVec4(d, v);
        return `    if (i < L && ${c4} < HD4) { out[(b * L + i) * H * HD4 + h * HD4 + ${c4}] = ${value} / sum; }`;
      }).join("\n"));
    const output = take();

    return attentionKernel(
      name,
      FORWARD_IO,
      headDim,
      /* wgsl */ `
const EXCLUDED: f32 = -3.0e38;    // keys past L: no part in the softmax at all

// Rotated q [LP][HP], then exp(s − m) [LP][LP]: each subgroup's rows of p replace its own rows of q.
var<workgroup> QPh: ${e.region(lp * l.sq)};
var<workgroup> Kh: ${e.region(lp * l.sh)};   // rotated k
var<workgroup> Vh: ${e.region(lp * l.sh)};
var<workgroup> Cs: array<f32, ${SUBGROUPS * 256 * blocks}>;   // the subgroups' 16×16 f32 blocks
${e.helpers()}
${attentionEntry(name, WG, "forward", e.builtins)}
${laneSetup(l, { emulated }, blocks)}
${all.map((x) => `  var ${x} = EXCLUDED;`).join("\n")}
${staging}
  workgroupBarrier();
${scores}
${masked}
${softmax}
  workgroupBarrier();
${output}
}
`,
      parts,
      e.enables,
    );
  },
);

/**
 * The tensor-core attention backward for one padded length and head dim: the function, bindings and
 * uniforms of `attention_backward_tiled` (dsum receives D; out is not read), writing dqkv, or with
 * `accumulate` adding into it. Grid: B·H workgroups of 128 invocations, folded with `grid1d`.
 *
 * @example Usage
 * ```ts
 * import { attentionBackwardTensorCoreSpec } from "./attention_tc.ts";
 * const spec = attentionBackwardTensorCoreSpec(64, 64, { accumulate: true });
 * console.log(spec.name); // "attention_backward_tc_64x64_acc"
 * ```
 * @param seq L (any L up to the same multiple of 16 shares the kernel), 1 to 64.
 * @param headDim hd, a multiple of 4 in [4, 64].
 * @param options `accumulate`: add into dqkv instead of writing it; `emulated`: the variant for any
 * adapter (see the module's doc).
 * @returns The kernel spec (the same object for the same padded L, head dim and options).
 * @throws {RangeError} If L or hd is not supported.
 */
export function attentionBackwardTensorCoreSpec(
  seq: number,
  headDim: number,
  options: { accumulate?: boolean; emulated?: boolean } = {},
): KernelSpec {
  const { lp } = layout(seq, headDim);
  return backwardVariants({ lp, headDim, emulated: !!options.emulated, accumulate: !!options.accumulate });
}

const backwardVariants = kernelVariants(
  ({ lp, headDim, emulated, accumulate }: Padded & { accumulate: boolean }): KernelSpec => {
    const l = layout(lp, headDim);
    const blocks = blocksFor(l, "backward");
    const e = emitters(l, { emulated }, blocks);
    const { nt, ht, emit, take, half } = e;
    const name = `attention_backward_tc_${lp}x${headDim}${accumulate ? "_acc" : ""}${
      emulated ? "_emulated" : ""
    }`;
    const S = fragments("s", nt), DP = fragments("dp", nt);
    const DV = fragments("dv", ht), DQ = fragments("dq", ht), DK = fragments("dk", ht);
    const all = S.flatMap((_, t) => C.map((c) => `p${t}_${c}`));
    const put = (at: string, value: string) =>
      accumulate ? `dqkv[${at}] += ${value};` : `dqkv[${at}] = ${value};`;
    // Writes one part of dqkv from the lane's values of fragment column d (part 0: q, 1: k, 2: v).
    const store = (part: number, rotated: boolean) => (d: number) =>
      [0, 1].map((v) => {
        const { c4, value } = laneVec4(d, v);
        const x = rotated ? `rotate_t(${value}, rope[i * HD4 + ${c4}])` : value;
        const at = `(b * L + i) * stride + ${
          part === 0 ? "" : part === 1 ? "H * HD4 + " : "2u * H * HD4 + "
        }h * HD4 + ${c4}`;
        return `    if (i < L && ${c4} < HD4) { ${put(at, x)} }`;
      }).join("\n");
    e.stage([{ region: "Ah", value: QUERY }, { region: "Kh", value: KEY }]);
    const stagingQK = take();
    e.scores(S, "Ah", l.sh);
    e.through(S, (t) =>
      C.map((c) => {
        const key = keyOf(t, c);
        return [
          `    p${t}_${c} = select(0.0, select(select(0.0, exp(v${c} * SCALE - Rs[i]), ${key} < len), inv_l, i >= len), i < L && ${key} < L);`,
          `    Ph[i * ${l.sp}u + ${key}] = ${half(`p${t}_${c}`)};`,
        ].join("\n");
      }).join("\n"));
    const probs = take();
    e.stage([{ region: "Ah", value: VALUE }, { region: "Gh", value: GRAD }]);
    const stagingVG = take();
    // dV = Pᵀ·dout for the subgroup's keys (Pᵀ read column-major); dP = dout·Vᵀ for its rows.
    e.product(
      DV,
      nt,
      (k) => at("Ph", `${16 * k * l.sp}u + strip`, l.sp, true),
      (k, d) => at("Gh", `${16 * k * l.sh + 16 * d}u`, l.sh),
    );
    e.product(
      DP,
      ht,
      (k) => at("Gh", `strip * ${l.sh}u + ${16 * k}u`, l.sh),
      (k, t) => at("Ah", `${16 * t * l.sh + 16 * k}u`, l.sh, true),
    );
    const dvdp = take();
    // D = Σ P∘dP per row (= dout·out) from the lane's registers and its pair's; then dS = P∘(dP − D)/√hd
    // replaces P (each element read and written by the same lane).
    emit(`  var dd = 0.0;`);
    e.through(DP, (t) => C.map((c) => `    dp${t}_${c} = v${c};\n    dd += p${t}_${c} * v${c};`).join("\n"));
    e.pair("dd", "+");
    emit(`  if (owner) {`);
    emit(`    if (half == 0u && i < L) { dsum[g * L + i] = dd; }`);
    for (let t = 0; t < nt; t++) {
      for (const c of C) {
        const key = keyOf(t, c);
        const ds = `select(0.0, p${t}_${c} * (dp${t}_${c} - dd) * SCALE, i < len && ${key} < len)`;
        emit(`    Ph[i * ${l.sp}u + ${key}] = ${half(ds)};`);
      }
    }
    emit(`  }`);
    e.through(DV, store(2, false));
    const dsdv = take();
    e.stage([{ region: "Ah", value: QUERY }]);
    const restage = take();
    e.product(
      DQ,
      nt,
      (k) => at("Ph", `strip * ${l.sp}u + ${16 * k}u`, l.sp),
      (k, d) => at("Kh", `${16 * k * l.sh + 16 * d}u`, l.sh),
    );
    e.product(
      DK,
      nt,
      (k) => at("Ph", `${16 * k * l.sp}u + strip`, l.sp, true),
      (k, d) => at("Ah", `${16 * k * l.sh + 16 * d}u`, l.sh),
    );
    e.through(DQ, store(0, true));
    e.through(DK, store(1, true));
    const dqdk = take();

    return attentionKernel(
      name,
      BACKWARD_IO,
      headDim,
      /* wgsl */ `
var<workgroup> Ah: ${e.region(lp * l.sh)};   // rotated q, then v, then rotated q again [LP][HP]
var<workgroup> Kh: ${e.region(lp * l.sh)};   // rotated k
var<workgroup> Gh: ${e.region(lp * l.sh)};   // dout
var<workgroup> Ph: ${e.region(lp * l.sp)};   // P, then dS [LP][LP]
var<workgroup> Cs: array<f32, ${SUBGROUPS * 256 * blocks}>;   // the subgroups' 16×16 f32 blocks
var<workgroup> Rs: array<f32, ${lp}>;   // lse per row
${e.helpers()}
${attentionEntry(name, WG, "backward", e.builtins)}
${laneSetup(l, { emulated }, blocks)}
${all.map((x) => `  var ${x} = 0.0;`).join("\n")}
${all.map((x) => `  var d${x} = 0.0;`).join("\n")}
  if (tid < ${lp}u) {
    var ll = 0.0;
    if (tid < L) { ll = lse[g * L + tid]; }
    Rs[tid] = ll;
  }
${stagingQK}
  workgroupBarrier();
${probs}
${stagingVG}
  workgroupBarrier();
${dvdp}
${dsdv}
${restage}
  workgroupBarrier();
${dqdk}
}
`,
      false,
      e.enables,
    );
  },
);
