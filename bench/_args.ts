/**
 * The flags of a benchmark script: its own, and `--gpu`, the provider of the adapter it runs on.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { GpuProvider } from "../src/gpu/device.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;
type GpuOption = { gpu: { type: "string"; default: string } };
type Values<T extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T & GpuOption }>
>["values"];

/**
 * Parses `Deno.args` with `options` and `--gpu` (default `defaultGpu`); an unknown flag is an error.
 *
 * @param defaultGpu The provider without `--gpu`.
 * @param options The script's own flags, as `parseArgs` takes them.
 * @returns The flags' values, `gpu` typed as a provider.
 */
export function benchArgs<const T extends Options>(
  defaultGpu: GpuProvider,
  options: T,
): Omit<Values<T>, "gpu"> & { gpu: GpuProvider } {
  const gpu = { type: "string", default: defaultGpu } as const;
  return parseArgs({ args: Deno.args, options: { gpu, ...options } }).values as never;
}
