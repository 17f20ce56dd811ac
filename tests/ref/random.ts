/**
 * Reference for kernels/random.ts: Philox4x32-10 with exact 64-bit products (BigInt), and the uniform,
 * normal and dropout transforms in float64 on the same bits.
 */

const M0 = 0xD2511F53n;
const M1 = 0xCD9E8D57n;
const W0 = 0x9E3779B9;
const W1 = 0xBB67AE85;
const STREAM = { uniform: 0, normal: 1, dropout: 2 } as const;

/** Philox4x32-10 of a 4-word counter and a 2-word key (Random123's philox4x32 with R = 10). */
export function philox4x32(
  counter: readonly number[],
  key: readonly number[],
): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((v) => v >>> 0) as [number, number, number, number];
  let [k0, k1] = key.map((v) => v >>> 0) as [number, number];
  for (let r = 0; r < 10; r++) {
    const p0 = M0 * BigInt(c0);
    const p1 = M1 * BigInt(c2);
    const hi0 = Number(p0 >> 32n), lo0 = Number(p0 & 0xffffffffn);
    const hi1 = Number(p1 >> 32n), lo1 = Number(p1 & 0xffffffffn);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** The 32-bit word behind element `i` of `stream` under `seed`. */
function words(seed: number, n: number, stream: number): Uint32Array {
  const out = new Uint32Array(Math.ceil(n / 4) * 4);
  for (let b = 0; b < out.length / 4; b++) out.set(philox4x32([b, stream, 0, 0], [seed, 0]), 4 * b);
  return out;
}

/** Uniform draws in [0, 1): top 24 bits · 2^-24. */
export function uniformRef(seed: number, n: number): Float64Array {
  const w = words(seed, n, STREAM.uniform);
  return Float64Array.from({ length: n }, (_, i) => (w[i]! >>> 8) / 16777216);
}

/** Box–Muller normals on word pairs (0,1) and (2,3): r = √(−2 ln u1), θ = 2π·u2 − π. */
export function normalRef(seed: number, n: number): Float64Array {
  const w = words(seed, n, STREAM.normal);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const pair = i - (i % 2);
    const u1 = ((w[pair]! >>> 8) + 1) / 16777216;
    const u2 = (w[pair + 1]! >>> 8) / 16777216;
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2 - Math.PI;
    out[i] = i % 2 === 0 ? r * Math.cos(theta) : r * Math.sin(theta);
  }
  return out;
}

/** Dropout keep mask: element i survives when its 24-bit draw is ≥ round(p·2^24). */
export function dropoutMaskRef(seed: number, n: number, p: number): Uint8Array {
  const w = words(seed, n, STREAM.dropout);
  const threshold = Math.round(p * 16777216);
  return Uint8Array.from({ length: n }, (_, i) => ((w[i]! >>> 8) >= threshold ? 1 : 0));
}
