/**
 * The GPU runtime: one facade over the pieces that own GPU memory and record work — the buffer pool
 * (`buffer_pool.ts`), the pipeline and bind-group caches (`pipeline_cache.ts`), the uniform chunks
 * (`uniforms.ts`), the command stream that `flush()` submits inside error scopes (`command_stream.ts`),
 * recording and replay (`recording.ts`), read-back (`read_back.ts`) and profiling (`profiler.ts`).
 *
 * Vocabulary: a *view* is a byte range of a GPUBuffer (what a kernel binds); the *pool* hands out
 * buffers by size and takes them back, so a step with static shapes allocates nothing after its first
 * run; *flush* submits everything recorded so far as one command buffer. Nothing here knows about
 * tensors or models.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import { BufferPool, type BufferView, type PoolStats } from "./buffer_pool.ts";
import { CommandStream } from "./command_stream.ts";
import type { Gpu } from "./device.ts";
import { debugLevel } from "../host.ts";
import { COPY, FILL, wordGrid, wordRanges } from "./fill.ts";
import type { KernelSpec } from "./kernel.ts";
import { BindGroupCache, boundViews, PipelineCache } from "./pipeline_cache.ts";
import { type KernelTiming, Profiler } from "./profiler.ts";
import { readAfterSubmit, readNow } from "./read_back.ts";
import {
  type CapturedDispatch,
  type DispatchRecording,
  makeRecording,
  rebindRecording,
  replayCommands,
} from "./recording.ts";
import { UniformChunks } from "./uniforms.ts";

export type { BufferView, PoolStats } from "./buffer_pool.ts";
export type { KernelTiming } from "./profiler.ts";
export { DispatchRecording, type RecordedCommand } from "./recording.ts";

/**
 * Owns GPU memory and records work. One runtime per device; `Engine` (src/tensor) builds on it.
 *
 * @example Usage
 * ```ts
 * import { getGpu, GpuRuntime } from "@difflm/core/kernels";
 * const runtime = new GpuRuntime(await getGpu());
 * const buffer = runtime.acquire(1024);
 * runtime.release(buffer);
 * ```
 */
export class GpuRuntime {
  /** The GPU this runtime records for. */
  readonly gpu: Gpu;
  /** The device (shortcut for `gpu.device`). */
  readonly device: GPUDevice;
  /** `DIFFLM_DEBUG` level: 1 flushes after every dispatch so errors name the exact kernel; 2 also logs compiles. */
  readonly debug: number;
  #pool: BufferPool;
  #pipelines: PipelineCache;
  #bindGroups: BindGroupCache;
  #uniforms: UniformChunks;
  #stream: CommandStream;
  /** The dispatches of the recording being made. */
  #captured: CapturedDispatch[] | null = null;
  /** How many recorded commands have written each buffer (see {@linkcode version}). */
  #versions = new WeakMap<GPUBuffer, number>();
  #limits: { storageAlign: number; maxBinding: number; maxGroups: number };

  /**
   * Creates a runtime on a device.
   *
   * @param gpu The adapter and device from {@linkcode getGpu}.
   */
  constructor(gpu: Gpu) {
    this.gpu = gpu;
    this.device = gpu.device;
    this.debug = debugLevel();
    this.#limits = {
      storageAlign: gpu.limits.minStorageBufferOffsetAlignment,
      maxBinding: gpu.limits.maxStorageBufferBindingSize,
      maxGroups: gpu.limits.maxComputeWorkgroupsPerDimension,
    };
    this.#pool = new BufferPool(gpu);
    this.#pipelines = new PipelineCache(this.device, this.debug);
    this.#bindGroups = new BindGroupCache(this.device);
    this.#uniforms = new UniformChunks(this.device, gpu.limits.minUniformBufferOffsetAlignment);
    this.#stream = new CommandStream(gpu);
  }

  /** Required alignment in bytes for the offset of a bound storage view. */
  get storageAlignment(): number {
    return this.#limits.storageAlign;
  }

  /** Pool counters. */
  get stats(): Readonly<PoolStats> {
    return this.#pool.stats;
  }

  /** Number of dispatches recorded since the last flush. */
  get pending(): number {
    return this.#stream.pending;
  }

  /**
   * Most dispatches one compute pass holds (default: unbounded, one pass per submission); a new pass
   * begins after that many.
   */
  get dispatchesPerPass(): number {
    return this.#stream.dispatchesPerPass;
  }

  set dispatchesPerPass(count: number) {
    if (!(count >= 1)) throw new RangeError(`dispatchesPerPass must be at least 1, got ${count}`);
    this.#stream.dispatchesPerPass = count;
  }

  /** Whether a recording is being made ({@linkcode record}). */
  get recording(): boolean {
    return this.#captured !== null;
  }

  /**
   * A count that changes whenever recorded work writes the buffer (a dispatch binding it for writing, a
   * copy or host write into it, a replay of such a dispatch): a value derived from its bytes is still
   * valid while the count is the one seen when it was made.
   *
   * @param buffer A buffer.
   * @returns Its write count.
   */
  version(buffer: GPUBuffer): number {
    return this.#versions.get(buffer) ?? 0;
  }

  #written(buffer: GPUBuffer): void {
    this.#versions.set(buffer, this.version(buffer) + 1);
  }

  /**
   * Runs `fn` right after the next flush's submission (at once when nothing is recorded).
   *
   * @param fn E.g. releasing what the recorded work binds.
   */
  afterFlush(fn: () => void): void {
    this.#stream.afterSubmit(fn);
  }

  /**
   * Takes a storage buffer of at least `byteLength` bytes from the pool, or creates one.
   *
   * @param byteLength Bytes needed.
   * @param label Name used in out-of-memory errors.
   * @returns A buffer usable as storage, copy source and copy destination.
   */
  acquire(byteLength: number, label = "tensor"): GPUBuffer {
    return this.#pool.acquire(byteLength, label);
  }

  /**
   * Returns a buffer to the pool. Work already recorded that uses it stays correct: later writes are
   * ordered after it on the queue.
   *
   * @param buffer A buffer from {@linkcode acquire}.
   */
  release(buffer: GPUBuffer): void {
    this.#pool.release(buffer);
  }

  /** Destroys every buffer waiting in the pool. */
  trim(): void {
    this.#pool.trim();
    this.#bindGroups.clear();
  }

  /**
   * Compiles a kernel (once per distinct WGSL text) and checks the compiler's messages.
   *
   * @param spec The kernel.
   * @returns The pipeline.
   * @throws {GpuError} With the messages and the numbered source, if the WGSL does not compile.
   */
  compile(spec: KernelSpec): Promise<GPUComputePipeline> {
    return this.#pipelines.compile(spec);
  }

  /**
   * Records one dispatch of a kernel.
   *
   * @param spec The kernel.
   * @param views One view per name in `spec.reads` and `spec.writes`.
   * @param uniforms One value per field of `spec.uniforms`.
   * @param grid Workgroup counts in x, y, z.
   * @throws {GpuError} If the grid exceeds the device limit or a binding is misplaced.
   */
  dispatch(
    spec: KernelSpec,
    views: Readonly<Record<string, BufferView>>,
    uniforms: Readonly<Record<string, number>>,
    grid: readonly [number, number?, number?],
  ): void {
    const gx = grid[0], gy = grid[1] ?? 1, gz = grid[2] ?? 1;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const { maxGroups } = this.#limits;
    if (gx > maxGroups || gy > maxGroups || gz > maxGroups) {
      throw new GpuError(
        "validation",
        spec.name,
        `grid [${gx},${gy},${gz}] exceeds ${maxGroups} per dimension`,
      );
    }
    const entry = this.#pipelines.entry(spec);
    const bound = boundViews(spec, entry, views, this.#limits);
    const slot = spec.uniforms
      ? this.#uniforms.pack(spec, entry.fields, this.#uniforms.stride(entry.uniformSize), uniforms)
      : null;
    const bindGroup = this.#bindGroups.get(entry, bound, slot?.chunk.buffer ?? null, spec.name);
    for (let i = spec.reads.length; i < bound.length; i++) this.#written(bound[i]!.buffer);
    const captured = this.#captured;
    captured?.push({
      entry,
      name: spec.name,
      views: bound,
      uniforms: slot ? new Uint8Array(slot.chunk.data, slot.offset, entry.uniformSize).slice() : null,
      grid: [gx, gy, gz],
      written: bound.slice(spec.reads.length).map((view) => view.buffer),
    });
    const pass = this.#stream.pass(spec.name);
    pass.setPipeline(entry.pipeline);
    if (slot) pass.setBindGroup(0, bindGroup, [slot.offset]);
    else pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (this.#stream.profiler) this.#stream.endPass();
    this.#stream.pending++;
    if (this.debug >= 1 && !captured) void this.flush(spec.name);
  }

  /**
   * Runs `fn`, which records dispatches as usual (they run), and keeps what it recorded so that
   * {@linkcode replay} can issue the same dispatches again without running `fn`: the host cost of a
   * repeated step falls to three WebGPU calls per dispatch. Every buffer `fn` acquires belongs to the
   * recording until it is disposed (tensors that `fn` returns still view theirs, and each replay rewrites
   * them); buffers acquired before stay the caller's, and a replay reads whatever they hold then.
   * `fn` may not write host data, read back, or release buffers it did not acquire.
   *
   * @param fn Records the work, e.g. one sampling step.
   * @returns The recording.
   * @throws {GpuError} If recordings nest, or `fn` does what a replay cannot repeat.
   */
  record(fn: () => void): DispatchRecording {
    if (this.#captured) throw new GpuError("validation", "record", "recordings cannot nest");
    const captured: CapturedDispatch[] = [];
    this.#captured = captured;
    this.#pool.startRecording();
    try {
      fn();
    } catch (error) {
      this.#pool.cancelRecording();
      throw error;
    } finally {
      this.#captured = null;
    }
    return makeRecording(
      this.device,
      captured,
      (size) => this.#uniforms.stride(size),
      this.#pool.endRecording(),
      (fn) => this.#stream.afterSubmit(fn),
    );
  }

  /**
   * Records again the dispatches of a recording, after everything recorded so far.
   *
   * @param recording From {@linkcode record}.
   * @throws {GpuError} If the recording was disposed, or a recording is being made.
   */
  replay(recording: DispatchRecording): void {
    if (recording.disposed) throw new GpuError("validation", "replay", "the recording was disposed");
    if (this.#captured) throw new GpuError("validation", "replay", "cannot replay while recording");
    replayCommands(this.#stream, recording.commands);
    for (const command of recording.commands) command.written.forEach((buffer) => this.#written(buffer));
  }

  /**
   * The dispatches of a recording with every binding of the view `from` bound to `to` instead (see
   * {@linkcode rebindRecording}): replaying it costs no copy of `to` into `from`'s place.
   *
   * @param recording From {@linkcode record}.
   * @param from A view the recording binds.
   * @param to The view to bind in its place: the same length, at an offset storage bindings allow.
   * @returns The rebound recording, disposed with `recording`.
   * @throws {GpuError} If the recording was disposed, or `to` differs in length or is not aligned.
   */
  rebind(recording: DispatchRecording, from: BufferView, to: BufferView): DispatchRecording {
    if (recording.disposed) throw new GpuError("validation", "rebind", "the recording was disposed");
    if (to.byteLength !== from.byteLength || to.byteOffset % this.#limits.storageAlign !== 0) {
      throw new GpuError(
        "validation",
        "rebind",
        `the view at offset ${to.byteOffset} of ${to.byteLength} bytes cannot replace one of ` +
          `${from.byteLength} bytes (same length, offset a multiple of ${this.#limits.storageAlign})`,
      );
    }
    return rebindRecording(this.device, recording, from, to);
  }

  /**
   * Records a copy between views (both multiples of 4 bytes).
   *
   * @param source Where to read.
   * @param target Where to write; at least as long as `source`.
   */
  copy(source: BufferView, target: BufferView): void {
    const words = Math.min(source.byteLength, target.byteLength) / 4;
    if (words === 0) return;
    if (source.buffer === target.buffer) {
      this.#refuseWhileRecording("a copy within one buffer");
      // One buffer cannot be bound for reading and writing in one dispatch; WebGPU's copy validates
      // the (rare) case, overlap included.
      this.#stream.endPass();
      this.#written(target.buffer);
      this.#stream.encoder().copyBufferToBuffer(
        source.buffer,
        source.byteOffset,
        target.buffer,
        target.byteOffset,
        words * 4,
      );
      this.#stream.pending++;
      return;
    }
    const targets = wordRanges(target.buffer, target.byteOffset, words, this.#limits);
    wordRanges(source.buffer, source.byteOffset, words, this.#limits).forEach((src, i) => {
      const dst = targets[i]!;
      this.dispatch(
        COPY,
        { src: src.view, dst: dst.view },
        { n: src.n, srcStart: src.start, dstStart: dst.start },
        wordGrid(src.n, this.#limits.maxGroups),
      );
    });
  }

  /**
   * Records writing one 32-bit pattern into every word of a view.
   *
   * @param target The bytes to fill (rounded up to whole words).
   * @param bits The word, e.g. a float's bits from a `DataView`.
   */
  fill(target: BufferView, bits: number): void {
    const words = Math.ceil(target.byteLength / 4);
    for (const out of wordRanges(target.buffer, target.byteOffset, words, this.#limits)) {
      this.dispatch(
        FILL,
        { out: out.view },
        { n: out.n, start: out.start, bits },
        wordGrid(out.n, this.#limits.maxGroups),
      );
    }
  }

  /**
   * Records zero-filling a view.
   *
   * @param target The bytes to clear.
   */
  clear(target: BufferView): void {
    this.fill(target, 0);
  }

  #refuseWhileRecording(what: string): void {
    if (this.#captured) {
      throw new GpuError("validation", "record", `${what} cannot be replayed; do it outside the recording`);
    }
  }

  /**
   * Writes host data into a view, ordered after everything recorded so far.
   *
   * @param target Destination.
   * @param data Bytes to write (length a multiple of 4).
   */
  write(target: BufferView, data: ArrayBufferView<ArrayBuffer>): void {
    this.#refuseWhileRecording("writing host data");
    // queue.writeBuffer runs before any unsubmitted command: submit those first to keep program order.
    if (this.#stream.open) void this.flush("write");
    this.#written(target.buffer);
    this.device.queue.writeBuffer(
      target.buffer,
      target.byteOffset,
      data.buffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /**
   * Submits everything recorded so far as one command buffer, inside validation and out-of-memory
   * error scopes.
   *
   * @param what Names the work in error messages when no kernel label is available.
   * @returns Resolves once the submission was validated (not when the GPU finishes).
   * @throws {GpuError} If the submission raised a WebGPU error.
   */
  flush(what = "flush"): Promise<void> {
    return this.#stream.submit(what, () => this.#uniforms.upload());
  }

  /** Resolves when the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    await this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /**
   * Copies a view back to the host after all recorded work.
   *
   * @param source The bytes to read.
   * @returns A copy of the bytes.
   */
  async read(source: BufferView): Promise<ArrayBuffer> {
    this.#refuseWhileRecording("reading back");
    await this.flush("read");
    return readNow(this.device, source);
  }

  /**
   * Records a copy of a view into a host-mappable buffer at this point of the recording, and returns
   * a promise of its bytes that settles after the next {@linkcode flush} once the GPU has run that far.
   * Unlike {@linkcode read}, it does not wait: a training loop reads step k's metrics while it records
   * step k+1.
   *
   * @param source The bytes to read.
   * @returns The bytes, later.
   */
  readLater(source: BufferView): Promise<ArrayBuffer> {
    this.#refuseWhileRecording("reading back");
    return readAfterSubmit(this.device, this.#stream, source);
  }

  /**
   * Runs `fn` with every dispatch in its own timed pass and returns the GPU time of each kernel.
   * Needs the `timestamp-query` feature.
   *
   * @param fn Records the work to time.
   * @returns One entry per dispatch, in order.
   */
  async profile(fn: () => void | Promise<void>): Promise<KernelTiming[]> {
    if (!this.gpu.features.timestamps) {
      throw new GpuError("validation", "profile", "timestamp-query is not granted");
    }
    await this.flush("profile");
    const profiler = new Profiler(this.device);
    this.#stream.profiler = profiler;
    try {
      await fn();
      await this.flush("profile");
    } finally {
      profiler.destroy();
      this.#stream.profiler = null;
    }
    return profiler.timings();
  }
}
