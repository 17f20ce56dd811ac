/**
 * Shared argument helpers of the command line: number parsing with clear messages, and the usage
 * error that `cli.ts` prints without a stack trace.
 *
 * @module
 */

import type { SamplingMethod } from "../diffusion/sampler.ts";

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
