/// <reference lib="dom" />
/**
 * The browser side of kernel_parity_test.ts (bundled for the page): runs the kernel cases on the page's
 * WebGPU and leaves the outputs in `globalThis.kernelResults` (or the failure in `globalThis.kernelError`).
 */
import { Engine } from "../../src/tensor/engine.ts";
import { runKernelCases } from "./_kernel_cases.ts";

const page = globalThis as { kernelResults?: Record<string, number[]>; kernelError?: string };
try {
  const engine = await Engine.create();
  engine.poison = true; // an output a kernel leaves unwritten reads as NaN, as in Deno's tests
  page.kernelResults = await runKernelCases(engine);
} catch (error) {
  page.kernelError = String((error as Error).stack ?? error);
}
