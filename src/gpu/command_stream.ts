/**
 * The command stream: one command encoder that dispatches are appended to, inside one open compute
 * pass, until {@linkcode CommandStream.submit} submits it inside validation and out-of-memory error
 * scopes. Under a {@linkcode Profiler} each dispatch gets a timed pass of its own.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import { assertAlive, type Gpu } from "./device.ts";
import type { Profiler } from "./profiler.ts";

/**
 * An encoder, its open pass, and what waits for the submission.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { CommandStream } from "./command_stream.ts";
 * const stream = new CommandStream(await getGpu());
 * const pass = stream.pass("my_kernel");
 * // pass.setPipeline(…); pass.dispatchWorkgroups(…);
 * await stream.submit("my work", () => {});
 * ```
 */
export class CommandStream {
  #gpu: Gpu;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #afterSubmit: (() => void)[] = [];
  /** Commands recorded since the last submission. */
  pending = 0;
  /** Set while profiling: every dispatch then runs in a timed pass. */
  profiler: Profiler | null = null;
  /** Most dispatches one compute pass holds before the next begins a new pass. */
  dispatchesPerPass = Infinity;
  #inPass = 0;

  /**
   * Creates a stream with nothing recorded.
   *
   * @param gpu The device.
   */
  constructor(gpu: Gpu) {
    this.#gpu = gpu;
  }

  /** Whether anything was recorded since the last submission. */
  get open(): boolean {
    return this.#encoder !== null;
  }

  /**
   * The encoder, created when the first command is recorded.
   *
   * @returns The encoder.
   * @throws {GpuError} If the device was lost.
   */
  encoder(): GPUCommandEncoder {
    assertAlive(this.#gpu, "command encoder");
    if (!this.#encoder) this.#encoder = this.#gpu.device.createCommandEncoder({ label: "difflm" });
    return this.#encoder;
  }

  /** Ends the open compute pass, if any (before a copy or a resolve). */
  endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
      this.#inPass = 0;
    }
  }

  /**
   * The compute pass for the next dispatch: the open one, or a new one when none is open or the open one
   * holds {@linkcode dispatchesPerPass} dispatches; while profiling, a new timed pass for one kernel,
   * which the caller ends with {@linkcode endPass} after its dispatch.
   *
   * @param name The kernel (the timed pass's label).
   * @returns The pass to dispatch in.
   */
  pass(name: string): GPUComputePassEncoder {
    const profiler = this.profiler;
    if (profiler) {
      this.endPass();
      if (profiler.full) profiler.resolve(this.encoder());
      this.#pass = this.encoder().beginComputePass({ label: name, timestampWrites: profiler.next(name) });
    } else {
      if (this.#inPass >= this.dispatchesPerPass) this.endPass();
      this.#pass ??= this.encoder().beginComputePass({ label: "difflm step" });
    }
    this.#inPass++;
    return this.#pass;
  }

  /**
   * Runs `fn` right after the next submission (or now, when nothing waits to be submitted).
   *
   * @param fn E.g. mapping a read-back buffer, or destroying a buffer the recorded work binds.
   */
  afterSubmit(fn: () => void): void {
    if (this.#encoder) this.#afterSubmit.push(fn);
    else fn();
  }

  /**
   * Submits everything recorded so far as one command buffer, inside validation and out-of-memory
   * error scopes.
   *
   * @param what Names the work in error messages when no kernel label is available.
   * @param beforeSubmit Runs before the submission (uniform uploads).
   * @returns Resolves once the submission was validated (not when the GPU finishes).
   * @throws {GpuError} If the submission raised a WebGPU error.
   */
  async submit(what: string, beforeSubmit: () => void): Promise<void> {
    if (!this.#encoder) return;
    this.endPass();
    const encoder = this.#encoder;
    this.#encoder = null;
    this.pending = 0;
    beforeSubmit();
    if (this.profiler?.pending) this.profiler.resolve(encoder);
    const device = this.#gpu.device;
    device.pushErrorScope("validation");
    device.pushErrorScope("out-of-memory");
    device.queue.submit([encoder.finish()]);
    // Timestamp and other read-backs may only map once the copies into them are submitted.
    this.profiler?.submitted();
    for (const fn of this.#afterSubmit.splice(0)) fn();
    // Both scopes are popped now, in order: a later submission (a flush not awaited, the next step
    // recorded meanwhile) pushes scopes of its own before these promises settle.
    const [oom, invalid] = await Promise.all([device.popErrorScope(), device.popErrorScope()]);
    const error = invalid ?? oom;
    if (error) {
      const match = /label[^"']*["']([^"']+)["']/.exec(error.message);
      throw new GpuError(invalid ? "validation" : "out-of-memory", match?.[1] ?? what, error.message);
    }
  }
}
