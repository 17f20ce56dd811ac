/**
 * Run by tests/gpu/provider_test.ts in a process of its own: requests the provider named by the first
 * argument and prints which one it got, or the error's message alone (exit 1).
 */
// deno-lint-ignore-file no-console
import { requestGpu } from "../../src/gpu/device.ts";

try {
  const gpu = await requestGpu({ provider: (Deno.args[0] ?? "auto") as "auto" | "deno" | "dawn" });
  console.log(`provider ${gpu.provider} on ${gpu.description}`);
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}
