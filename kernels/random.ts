/**
 * random: counter-based random numbers, Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3", SC 2011; the Random123 known-answer vectors hold), keyed by (seed, element index): element
 * i takes word i mod 4 of Philox(counter = (i div 4, stream, 0, 0), key = (seed, 0)). The stream tells
 * the uses apart (0 uniform, 1 normal, 2 dropout), so one seed never hands the same bits to two of them.
 * Nothing is stored between calls: the same (seed, index) gives the same bits on any device.
 *
 * - Uniform in [0, 1): the top 24 bits of a word times 2^-24 (exact in f32, never 1).
 * - Normal: Box–Muller on the pairs (word 0, word 1) and (word 2, word 3): r = √(−2 ln u1) with
 *   u1 ∈ (0, 1] (24 bits), angle 2π·u2 − π in [−π, π), where WGSL's sin and cos are specified;
 *   |z| ≤ 5.77 (the 24-bit tail).
 * - Dropout: element i is kept when its 24-bit draw is ≥ threshold = round(p·2^24), so P(keep) =
 *   1 − threshold/2^24; kept elements are scaled by 1/(1 − p). Backward regenerates the same mask from
 *   the seed: nothing is saved.
 * Parallelism: one invocation per 4 consecutive elements (one Philox call), 256 per workgroup, grid
 * folded into 2-D past 65535 groups.
 * Reference: tests/ref/random.ts (Philox in integer arithmetic, the transforms in float64).
 *
 * @module
 */
import { defineKernel, type KernelSpec, type UniformType } from "../src/gpu/kernel.ts";
import { partialSumsWgsl } from "./_matmul_wgsl.ts";

/** Elements per invocation (one Philox4x32 call yields four 32-bit words). */
export const RANDOM_PER_INVOCATION = 4;

/** Stream numbers that keep the uses of one seed apart (the second counter word). */
export const RANDOM_STREAM = { uniform: 0, normal: 1, dropout: 2 } as const;

const PHILOX = /* wgsl */ `
// High 32 bits of the 64-bit product a·b, from 16-bit halves (WGSL has no 64-bit integers).
fn mulhi(a: u32, b: u32) -> u32 {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let mid = ((a0 * b0) >> 16u) + ((a1 * b0) & 0xffffu) + a0 * b1;
  return a1 * b1 + ((a1 * b0) >> 16u) + (mid >> 16u);
}

// Philox4x32-10: ten rounds, the key bumped by the Weyl constants between rounds.
fn philox(counter: vec4u, key: vec2u) -> vec4u {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    let hi0 = mulhi(0xD2511F53u, c.x);
    let lo0 = 0xD2511F53u * c.x;
    let hi1 = mulhi(0xCD9E8D57u, c.z);
    let lo1 = 0xCD9E8D57u * c.z;
    c = vec4u(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k = k + vec2u(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}

// Index of the invocation's first element (4 per invocation; the grid folds into 2-D).
fn block_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * 256u;
}
`;

/**
 * A random kernel: each invocation draws the four values of its elements 4b … 4b + 3 once (`draw`, a
 * vec4 `r`), then runs `store` for each element `i` below n.
 */
function randomKernel(
  io: { name: string; reads: string[]; writes: string[]; uniforms: Record<string, UniformType> },
  helpers: string,
  draw: string,
  store: string,
): KernelSpec {
  return defineKernel({
    ...io,
    body: /* wgsl */ `
${PHILOX}
${helpers}
@compute @workgroup_size(256)
fn ${io.name}(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let b = block_index(gid, groups);
  let first = b * 4u;
  if (first >= params.n) { return; }
  let r = ${draw};
  for (var j = 0u; j < 4u; j++) {
    let i = first + j;
    if (i < params.n) { ${store} }
  }
}
`,
  });
}

const UNIFORM = /* wgsl */ `
// The uniform draws of elements 4b .. 4b + 3: the top 24 bits of each word times 2^-24.
fn uniform4(b: u32) -> vec4f {
  let bits = philox(vec4u(b, ${RANDOM_STREAM.uniform}u, 0u, 0u), vec2u(params.seed, 0u));
  return vec4f(bits >> vec4u(8u)) * (1.0 / 16777216.0);
}
`;

/** out[i] = uniform draw in [0, 1) of (seed, i), n elements. */
export const RANDOM_UNIFORM: KernelSpec = randomKernel(
  { name: "random_uniform", reads: [], writes: ["out"], uniforms: { n: "u32", seed: "u32" } },
  UNIFORM,
  "uniform4(b)",
  "out[i] = r[j];",
);

const NORMAL = /* wgsl */ `
// The standard normal draws of elements 4b .. 4b + 3 (Box–Muller on two pairs of words).
fn normal4(b: u32) -> vec4f {
  let bits = philox(vec4u(b, ${RANDOM_STREAM.normal}u, 0u, 0u), vec2u(params.seed, 0u));
  // u1 in (0, 1] keeps the logarithm finite; the angle stays in [-pi, pi).
  let u1 = (vec2f(f32(bits.x >> 8u), f32(bits.z >> 8u)) + 1.0) * (1.0 / 16777216.0);
  let u2 = vec2f(f32(bits.y >> 8u), f32(bits.w >> 8u)) * (1.0 / 16777216.0);
  let r = sqrt(-2.0 * log(u1));
  let theta = u2 * 6.283185307179586 - 3.141592653589793;
  return vec4f(r.x * cos(theta.x), r.x * sin(theta.x), r.y * cos(theta.y), r.y * sin(theta.y));
}
`;

/** out[i] = standard normal draw of (seed, i) by Box–Muller, n elements. */
export const RANDOM_NORMAL: KernelSpec = randomKernel(
  { name: "random_normal", reads: [], writes: ["out"], uniforms: { n: "u32", seed: "u32" } },
  NORMAL,
  "normal4(b)",
  "out[i] = r[j];",
);

/**
 * out[i] = alpha·inp[i] + beta·z with z the standard normal draw of (seed, i), as `random_normal` makes
 * it, n elements: a step of a reverse process with its fresh noise, in one pass.
 */
export const RANDOM_NORMAL_AXPBY: KernelSpec = randomKernel(
  {
    name: "random_normal_axpby",
    reads: ["inp"],
    writes: ["out"],
    uniforms: { n: "u32", seed: "u32", alpha: "f32", beta: "f32" },
  },
  NORMAL,
  "normal4(b)",
  "out[i] = params.alpha * inp[i] + params.beta * r[j];",
);

/**
 * The same step on a product left as split-K partial products: `part` holds `params.splits` of them,
 * n elements apart; their sum in split order (as `matmul_reduce` adds them) goes to `sum[i]` and
 * alpha·sum + beta·z to `out[i]`, the values of `matmul_reduce` then `random_normal_axpby` to the bit, in
 * one pass.
 */
export const RANDOM_NORMAL_AXPBY_PARTS: KernelSpec = randomKernel(
  {
    name: "random_normal_axpby_parts",
    reads: ["part"],
    writes: ["sum", "out"],
    uniforms: { n: "u32", seed: "u32", alpha: "f32", beta: "f32", splits: "u32" },
  },
  NORMAL,
  "normal4(b)",
  `var s = 0.0;
      ${partialSumsWgsl([{ name: "s", at: (k) => `part[i + (${k}) * params.n]` }], "params.splits", "      ")}
      sum[i] = s;
      out[i] = params.alpha * s + params.beta * r[j];`,
);

const KEEP = /* wgsl */ `
// Whether element first + j survives: its 24-bit draw is at least the threshold.
fn keep_mask(b: u32) -> vec4<bool> {
  let bits = philox(vec4u(b, ${RANDOM_STREAM.dropout}u, 0u, 0u), vec2u(params.seed, 0u));
  return (bits >> vec4u(8u)) >= vec4u(params.threshold);
}
`;

const DROPOUT_UNIFORMS: Record<string, UniformType> = {
  n: "u32",
  seed: "u32",
  threshold: "u32",
  scale: "f32",
};

/** out[i] = keep(seed, i) ? inp[i]·scale : 0, n elements (inverted dropout). */
export const RANDOM_DROPOUT_FORWARD: KernelSpec = randomKernel(
  { name: "random_dropout_forward", reads: ["inp"], writes: ["out"], uniforms: DROPOUT_UNIFORMS },
  KEEP,
  "keep_mask(b)",
  "out[i] = select(0.0, inp[i] * params.scale, r[j]);",
);

function dropoutBackwardSpec(accumulate: boolean): KernelSpec {
  return randomKernel(
    {
      name: accumulate ? "random_dropout_backward" : "random_dropout_backward_write",
      reads: ["dout"],
      writes: ["dinp"],
      uniforms: DROPOUT_UNIFORMS,
    },
    KEEP,
    "keep_mask(b)",
    `dinp[i] ${accumulate ? "+=" : "="} select(0.0, dout[i] * params.scale, r[j]);`,
  );
}

/** dinp[i] += keep(seed, i) ? dout[i]·scale : 0, n elements; the mask is regenerated, not stored. */
export const RANDOM_DROPOUT_BACKWARD: KernelSpec = dropoutBackwardSpec(true);

/** dinp[i] = keep(seed, i) ? dout[i]·scale : 0: the backward into a gradient not written yet (no zeroing). */
export const RANDOM_DROPOUT_BACKWARD_WRITE: KernelSpec = dropoutBackwardSpec(false);

/**
 * The backward of {@linkcode RANDOM_DROPOUT_ADD_FORWARD} in one pass over `dout`: dres[i] (+)= dout[i]
 * and dinp[i] (+)= keep(seed, i) ? dout[i]·scale : 0, each output written or added into as its
 * `accumulate` flag says (a gradient not written yet needs no zeroing).
 *
 * @example Usage
 * ```ts
 * import { dropoutAddBackwardKernel } from "./random.ts";
 * console.log(dropoutAddBackwardKernel({ res: false, inp: true }).name); // random_dropout_add_backward_acc_inp
 * ```
 * @param accumulate Whether each gradient is added into.
 * @returns The kernel spec.
 */
export function dropoutAddBackwardKernel(accumulate: { res: boolean; inp: boolean }): KernelSpec {
  const suffix = `${accumulate.res ? "_acc_res" : ""}${accumulate.inp ? "_acc_inp" : ""}`;
  return randomKernel(
    {
      name: `random_dropout_add_backward${suffix}`,
      reads: ["dout"],
      writes: ["dres", "dinp"],
      uniforms: DROPOUT_UNIFORMS,
    },
    KEEP,
    "keep_mask(b)",
    `let g = dout[i];
    dres[i] ${accumulate.res ? "+=" : "="} g;
    dinp[i] ${accumulate.inp ? "+=" : "="} select(0.0, g * params.scale, r[j]);`,
  );
}

/**
 * out[i] = res[i] + (keep(seed, i) ? inp[i]·scale : 0), n elements: a residual connection around
 * inverted dropout in one pass, with the mask of {@linkcode RANDOM_DROPOUT_FORWARD} for the same seed.
 */
export const RANDOM_DROPOUT_ADD_FORWARD: KernelSpec = randomKernel(
  { name: "random_dropout_add_forward", reads: ["inp", "res"], writes: ["out"], uniforms: DROPOUT_UNIFORMS },
  KEEP,
  "keep_mask(b)",
  "out[i] = res[i] + select(0.0, inp[i] * params.scale, r[j]);",
);
