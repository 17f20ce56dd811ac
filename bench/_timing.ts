/**
 * Timing of GPU work for the device benchmarks: per-rep GPU time from timestamp queries (each dispatch
 * its own pass, summed per rep) where the device grants them, and wall time of the same reps back to
 * back until the GPU is done.
 */
import type { GpuRuntime } from "../src/gpu/runtime.ts";

/** The median of `xs` (NaN when empty). */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((x, y) => x - y);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)]! : NaN;
}

/**
 * Runs `run` `reps` times under timestamp queries, then `reps` times for the wall clock.
 *
 * @param runtime The runtime the work records into.
 * @param run Records one rep.
 * @param reps Reps per measurement.
 * @returns GPU ms per rep (empty without timestamp queries) and wall ms per rep.
 */
export async function timeReps(
  runtime: GpuRuntime,
  run: () => void,
  reps: number,
): Promise<{ gpu: number[]; wallMs: number }> {
  let gpuTimes: number[] = [];
  if (runtime.gpu.features.timestamps) {
    const timings = await runtime.profile(() => {
      for (let r = 0; r < reps; r++) run();
    });
    const per = timings.length / reps;
    gpuTimes = Array.from({ length: reps }, (_, r) => {
      let ns = 0;
      for (let j = 0; j < per; j++) ns += timings[r * per + j]!.ns;
      return ns / 1e6;
    });
  }
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) run();
  await runtime.sync();
  return { gpu: gpuTimes, wallMs: (performance.now() - t0) / reps };
}
