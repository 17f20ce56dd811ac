/**
 * Seeded random inputs for benchmarks, from one 32-bit LCG (fast for hundreds of millions of elements) so
 * that runs compare: uniform values, and training batches as `seed_torch.py` makes them.
 */
import type { HostBatch } from "../src/train/trainer.ts";

/** `n` uniform values in [-1, 1). */
export function random(n: number, seed: number): Float32Array<ArrayBuffer> {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

/** A batch of B sequences of L tokens: ids in [4, V), lengths in [L/2, L], given tokens with p = 0.1. */
export function randomBatch(B: number, L: number, V: number, seed: number): HostBatch {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const ids = new Int32Array(B * L), lengths = new Int32Array(B), condMask = new Uint32Array(B * L);
  const rowWeight = new Float32Array(B * L);
  let count = 0, tokens = 0;
  for (let b = 0; b < B; b++) {
    lengths[b] = Math.floor(L / 2) + Math.floor(next() * (L - Math.floor(L / 2) + 1));
    tokens += lengths[b]!;
    for (let i = 0; i < L; i++) {
      ids[b * L + i] = 4 + Math.floor(next() * (V - 4));
      condMask[b * L + i] = next() < 0.1 ? 1 : 0;
      if (i < lengths[b]! && !condMask[b * L + i]) count++;
    }
  }
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < L; i++) if (i < lengths[b]! && !condMask[b * L + i]) rowWeight[b * L + i] = 1 / count;
  }
  return { ids, lengths, condMask, rowWeight, tokens };
}
