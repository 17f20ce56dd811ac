/**
 * The flags of a benchmark script: its own, and `--gpu`, the provider of the adapter it runs on.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { GpuProvider } from "../src/gpu/device.ts";
import {
  DEFAULT_TENSOR_CORE_POLICY,
  setTensorCorePolicy,
  type TensorCorePolicy,
} from "../src/tensor/ops/_matmul_plan.ts";

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

/**
 * The tensor-core plan a `--tc` flag names: a comma list of `f16` (large-tile products read f16 copies
 * of their operands), `split` / `unsplit` (long reductions on large tiles split over K, or on 64×64
 * tiles), `direct` (with `f16`, fragments loaded straight from storage), `wide` or `tall` (large grids
 * on the 128×256 or the 256×128 tile), `medium` (grids too few for large tiles on 128×64 tiles where
 * those fill the card), `large8` (such grids on 128×128 tiles of 8 subgroups where those nearly fill
 * it), `s2u` (large-grid tiles with two stages, the K loop unrolled), `biasfirst` (accumulators start
 * from the bias), `strips` (epilogues staged a row of fragments at a time),
 * `f32below=N` (products whose M and K are both under N on the f32 kernels with f16-rounded operands),
 * `f32attention` (attention on its f32 kernels) and `group=N` (large grids launched in groups of N tile
 * rows); the default plan for what it leaves out. Sets it for this process.
 *
 * @param value The flag's value.
 * @returns The policy now in force.
 */
export function applyTensorCoreFlag(value: string | undefined): TensorCorePolicy {
  const words = (value ?? "").split(",").filter((w) => w !== "");
  const f32Below = words.find((w) => /^f32below=\d+$/.test(w));
  const group = words.find((w) => /^group=\d+$/.test(w));
  const known = [
    "f16",
    "split",
    "unsplit",
    "direct",
    "wide",
    "tall",
    "medium",
    "large8",
    "s2u",
    "biasfirst",
    "strips",
    "f32attention",
    f32Below,
    group,
  ];
  const unknown = words.filter((w) => !known.includes(w));
  if (unknown.length > 0) {
    throw new Error(
      `--tc: unknown ${
        unknown.join(", ")
      } (expected f16, split, unsplit, direct, wide, tall, medium, large8, s2u, biasfirst, strips, f32attention, f32below=N, group=N)`,
    );
  }
  const defaults = DEFAULT_TENSOR_CORE_POLICY;
  const policy: TensorCorePolicy = {
    operands: words.includes("f16") ? "f16" : defaults.operands,
    splitLongK: words.includes("split") || (defaults.splitLongK && !words.includes("unsplit")),
    direct: words.includes("direct") || defaults.direct,
    gridTile: words.includes("tall") ? "tall" : words.includes("wide") ? "wide" : defaults.gridTile,
    fewTile: words.includes("medium") ? "medium" : words.includes("large8") ? "large8" : defaults.fewTile,
    twoStages: words.includes("s2u") || !!defaults.twoStages,
    biasFirst: words.includes("biasfirst") || !!defaults.biasFirst,
    strips: words.includes("strips") || !!defaults.strips,
    f32Attention: words.includes("f32attention") || !!defaults.f32Attention,
    ...(f32Below ? { f32Below: Number(f32Below.slice("f32below=".length)) } : {}),
    ...(group ? { group: Number(group.slice("group=".length)) } : {}),
  };
  setTensorCorePolicy(policy);
  return policy;
}
