/**
 * Shared argument helpers of the command line: number parsing with clear messages, and the usage
 * error that `cli.ts` prints without a stack trace.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { SamplingMethod } from "../diffusion/sampler.ts";
import type { EngineOptions } from "../tensor/engine.ts";

/** A mistake in the command line: printed as one line with the command's usage hint. */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the flag and the value.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Parses a flag's value as a number within bounds.
 *
 * @param flag The flag's name, for messages (e.g. `--steps`).
 * @param value The raw value, or undefined when the flag is absent.
 * @param options `integer`, `min`, `max`.
 * @returns The number, or undefined when absent.
 * @throws {UsageError} If the value is not a number in range.
 */
export function numberFlag(
  flag: string,
  value: string | undefined,
  options: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  const { integer = false, min = -Infinity, max = Infinity } = options;
  if (value.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    const kind = integer ? "an integer" : "a number";
    const range = min > -Infinity && max < Infinity
      ? ` in [${min}, ${max}]`
      : min > -Infinity
      ? ` >= ${min}`
      : max < Infinity
      ? ` <= ${max}`
      : "";
    throw new UsageError(`Invalid value for ${flag}: "${value}" is not ${kind}${range}`);
  }
  return n;
}

/**
 * Reads `--method`: difflm (the default), ddim or ddpm.
 *
 * @param value The flag's value, if given.
 * @returns The update rule.
 * @throws {UsageError} If the value names no method.
 */
export function samplingMethod(value: string | boolean | undefined): SamplingMethod {
  if (value === undefined) return "difflm";
  if (value === "difflm" || value === "ddim" || value === "ddpm") return value;
  throw new UsageError(`Invalid value for --method: "${value}"; expected difflm, ddim or ddpm`);
}

/**
 * The specifications of a command's flags, as {@linkcode parseFlags} takes them.
 *
 * @example Usage
 * ```ts
 * import { flagOptions, parseFlags } from "./_args.ts";
 * const flags = parseFlags("sample", ["--n", "4", "--clamp"], flagOptions(["n", "seed"], ["clamp"]));
 * console.log(flags); // { n: "4", clamp: true }
 * ```
 * @param values The flags that take a value.
 * @param switches The flags that take none.
 * @returns Each flag's specification by name.
 */
export function flagOptions<const V extends string, const S extends string = never>(
  values: readonly V[],
  switches: readonly S[] = [],
): { [K in V]: { type: "string" } } & { [K in S]: { type: "boolean" } } {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const name of values) options[name] = { type: "string" };
  for (const name of switches) options[name] = { type: "boolean" };
  return options as never;
}

/** The `--gpu` and `--precision` flags of train, sample and eval, and their help lines. */
export const ENGINE_OPTIONS = {
  gpu: { type: "string" },
  precision: { type: "string" },
} as const;

/**
 * The specifications of the flags of a command that runs the engine: its own, and
 * {@linkcode ENGINE_OPTIONS}.
 *
 * @example Usage
 * ```ts
 * import { engineFlagOptions, parseFlags } from "./_args.ts";
 * const flags = parseFlags("sample", ["--gpu", "dawn"], engineFlagOptions(["n"], ["clamp"]));
 * console.log(flags.gpu); // "dawn"
 * ```
 * @param values The command's flags that take a value.
 * @param switches The command's flags that take none.
 * @returns Each flag's specification by name.
 */
export function engineFlagOptions<const V extends string, const S extends string = never>(
  values: readonly V[],
  switches: readonly S[] = [],
): ReturnType<typeof flagOptions<V, S>> & typeof ENGINE_OPTIONS {
  return { ...flagOptions(values, switches), ...ENGINE_OPTIONS };
}

/** Help lines of {@linkcode ENGINE_OPTIONS}. */
export const ENGINE_USAGE =
  `  --gpu auto|deno|dawn   WebGPU provider: auto (default): Dawn where --allow-ffi lets it load and it offers
                         f16 subgroup matrices (tensor cores), else Deno's built-in; deno: the built-in;
                         dawn: Dawn from npm (needs --allow-ffi)
  --precision f32|mixed  matrix products in f32, or f16 inputs with f32 sums (default: mixed on tensor
                         cores, else f32)`;

/**
 * Reads `--gpu` and `--precision`.
 *
 * @param flags The parsed flags.
 * @returns The engine choice.
 * @throws {UsageError} If a value is not one the flag takes.
 */
export function engineFlags(flags: { gpu?: string | boolean; precision?: string | boolean }): EngineOptions {
  // The commands take tensor cores wherever the run's permissions let Dawn load (the library's default
  // stays the built-in WebGPU, which needs no permission).
  const choice: EngineOptions = { gpu: "auto" };
  if (flags.gpu !== undefined) {
    if (flags.gpu !== "auto" && flags.gpu !== "deno" && flags.gpu !== "dawn") {
      throw new UsageError(`Invalid value for --gpu: "${flags.gpu}"; expected auto, deno or dawn`);
    }
    choice.gpu = flags.gpu;
  }
  if (flags.precision !== undefined) {
    if (flags.precision !== "f32" && flags.precision !== "mixed") {
      throw new UsageError(`Invalid value for --precision: "${flags.precision}"; expected f32 or mixed`);
    }
    choice.precision = flags.precision;
  }
  return choice;
}

/**
 * Parses a command's arguments strictly, turning parse errors into usage errors that point at `--help`.
 *
 * @param command The command, for the message (e.g. `train`).
 * @param args The arguments after it.
 * @param options The flags it takes (`help` is added).
 * @returns The flag values.
 * @throws {UsageError} If a flag is unknown, lacks its value, or a positional argument is given.
 */
export function parseFlags<T extends Record<string, { type: "string" | "boolean"; short?: string }>>(
  command: string,
  args: string[],
  options: T,
): { [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string } & { help?: boolean } {
  // A negative number after a flag that takes a value is that value (parseArgs calls it ambiguous), so
  // its range check can say what is wrong with it.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!.startsWith("--") ? args[i]!.slice(2) : null;
    const next = args[i + 1];
    if (name && options[name]?.type === "string" && next !== undefined && /^-[\d.]/.test(next)) {
      joined.push(`--${name}=${next}`);
      i++;
    } else joined.push(args[i]!);
  }
  try {
    const parsed = parseArgs({
      args: joined,
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    });
    return parsed.values as { [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string } & {
      help?: boolean;
    };
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split("\n")[0]}; see cli.ts ${command} --help`);
  }
}
