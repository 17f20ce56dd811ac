/**
 * Random training batches for benchmarks, as `seed_torch.py` makes them: ids in [4, V), lengths in
 * [L/2, L], given tokens with probability 0.1; seeded (an LCG) so runs compare.
 */
import type { HostBatch } from "../src/train/trainer.ts";

/** A batch of B sequences of L tokens over a vocabulary of V. */
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
