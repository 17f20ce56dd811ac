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

let mixed: Promise<Engine> | undefined;

/** An engine of `mixed` precision on the module's GPU (emulated f16 operands on a CPU adapter), poisoning on. */
export function mixedTestEngine(): Promise<Engine> {
  mixed ??= testEngine().then((e) => {
    const m = new Engine(e.runtime, "mixed");
    m.poison = true;
    return m;
  });
  return mixed;
}

/**
 * Tests that need Dawn's tensor cores run only where `DIFFLM_TEST_DAWN=1` says Dawn is cached and a GPU
 * with subgroup matrices is present (the device machine); elsewhere they are skipped with this reason.
 */
export const dawnSkipReason: string | null = (() => {
  try {
    if (Deno.env.get("DIFFLM_TEST_DAWN") === "1") return null;
  } catch {
    // no env permission: skip
  }
  return "Dawn tests need a GPU with subgroup matrices and npm:webgpu cached: set DIFFLM_TEST_DAWN=1 there";
})();

let dawn: Promise<Engine> | undefined;

/** A `mixed` engine on Dawn (tensor cores), poisoning on; only when {@linkcode dawnSkipReason} is null. */
export function dawnTestEngine(): Promise<Engine> {
  dawn ??= Engine.create({ gpu: "dawn", precision: "mixed" }).then((e) => {
    e.poison = true;
    return e;
  });
  return dawn;
}
