/**
 * Shared set-up for GPU tests: one engine per test module on whatever adapter exists (lavapipe or
 * llvmpipe in CI), with NaN poisoning of every new tensor so unwritten outputs fail.
 */
import { Engine } from "../src/tensor/engine.ts";
import { GpuRuntime } from "../src/gpu/runtime.ts";
import { requestGpu } from "../src/gpu/device.ts";

let adapterFound = false;
try {
  adapterFound = !!(await navigator.gpu?.requestAdapter());
} catch {
  adapterFound = false;
}

/** True when no WebGPU adapter exists: GPU tests are then skipped, not failed. */
export const ignore = !adapterFound;

let engine: Promise<Engine> | undefined;

/** The module's engine, with poisoning on. */
export function testEngine(): Promise<Engine> {
  engine ??= requestGpu().then((gpu) => {
    const e = new Engine(new GpuRuntime(gpu));
    e.poison = true;
    return e;
  });
  return engine;
}
