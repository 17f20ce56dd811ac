/**
 * Error classes that callers may want to catch. Wrong shapes raise `TypeError`, out-of-range values
 * `RangeError`; these classes cover the conditions a program reacts to.
 *
 * @module
 */

/**
 * No WebGPU adapter could be obtained: no GPU driver, or no software renderer installed.
 *
 * @example Usage
 * ```ts
 * import { GpuUnavailableError } from "@difflm/core";
 * const err = new GpuUnavailableError("no adapter");
 * console.log(err.name); // "GpuUnavailableError"
 * ```
 */
export class GpuUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was tried and what to install.
   */
  constructor(message: string) {
    super(message);
    this.name = "GpuUnavailableError";
  }
}

/**
 * A WebGPU validation, out-of-memory or internal error, or a lost device, raised as an exception that
 * names the kernel or operation that caused it.
 *
 * @example Usage
 * ```ts
 * import { GpuError } from "@difflm/core";
 * const err = new GpuError("validation", "matmul_nn", "binding too small");
 * console.log(err.message); // "Cannot run kernel \"matmul_nn\": validation error: binding too small"
 * ```
 */
export class GpuError extends Error {
  /** The kind of failure: `validation`, `out-of-memory`, `internal`, `compilation` or `device-lost`. */
  readonly kind: string;
  /** The kernel or operation that failed. */
  readonly kernel: string;
  /**
   * Creates the error.
   *
   * @param kind The kind of failure.
   * @param kernel The kernel or operation that failed.
   * @param detail The message from the WebGPU implementation.
   */
  constructor(kind: string, kernel: string, detail: string) {
    super(`Cannot run kernel "${kernel}": ${kind} error: ${detail}`);
    this.name = "GpuError";
    this.kind = kind;
    this.kernel = kernel;
  }
}
