/**
 * The buffer pool: storage buffers handed out by size (rounded up to 256 bytes) and taken back, so a
 * step with static shapes allocates nothing after its first run. While a recording is made, the pool
 * notes what the recorded code acquires; those buffers then belong to the recording until it is
 * disposed, and nothing else is handed them.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import type { Gpu } from "./device.ts";

/** A byte range of a GPU buffer that a kernel binds. */
export interface BufferView {
  /** The buffer. */
  readonly buffer: GPUBuffer;
  /** Offset in bytes; a multiple of the device's `minStorageBufferOffsetAlignment`. */
  readonly byteOffset: number;
  /** Length in bytes; a multiple of 4. */
  readonly byteLength: number;
}

/** Counters of the buffer pool, for leak tests and the start-up memory line. */
export interface PoolStats {
  /** Buffers created so far. */
  created: number;
  /** Bytes in buffers created so far and not destroyed. */
  bytes: number;
  /** Buffers handed out and not yet released. */
  inUse: number;
  /** Buffers waiting in the pool for reuse. */
  free: number;
}

const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * Storage buffers by size.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { BufferPool } from "./buffer_pool.ts";
 * const pool = new BufferPool(await getGpu());
 * pool.release(pool.acquire(1000));
 * console.log(pool.stats.free); // 1
 * ```
 */
export class BufferPool {
  #gpu: Gpu;
  #free = new Map<number, GPUBuffer[]>();
  #stats: PoolStats = { created: 0, bytes: 0, inUse: 0, free: 0 };
  /** What the code being recorded has acquired, while a recording is made. */
  #acquired: Set<GPUBuffer> | null = null;
  /** Buffers a recording owns, mapped to the set of those among them that no tensor views any more. */
  #owners = new Map<GPUBuffer, Set<GPUBuffer>>();

  /**
   * Creates an empty pool.
   *
   * @param gpu The device and its limits.
   */
  constructor(gpu: Gpu) {
    this.#gpu = gpu;
  }

  /** Pool counters. */
  get stats(): Readonly<PoolStats> {
    return { ...this.#stats };
  }

  /**
   * Takes a storage buffer of at least `byteLength` bytes from the pool, or creates one.
   *
   * @param byteLength Bytes needed.
   * @param label Name used in out-of-memory errors.
   * @returns A buffer usable as storage, copy source and copy destination.
   * @throws {GpuError} If the size exceeds the device's `maxBufferSize`.
   */
  acquire(byteLength: number, label = "tensor"): GPUBuffer {
    const size = Math.max(256, Math.ceil(byteLength / 256) * 256);
    const reused = this.#free.get(size)?.pop();
    if (reused) {
      this.#stats.free--;
      this.#stats.inUse++;
      this.#acquired?.add(reused);
      return reused;
    }
    const max = this.#gpu.limits.maxBufferSize;
    if (size > max) {
      throw new GpuError(
        "out-of-memory",
        label,
        `a buffer of ${size} bytes exceeds the device's maxBufferSize ${max}`,
      );
    }
    const device = this.#gpu.device;
    device.pushErrorScope("out-of-memory");
    const buffer = device.createBuffer({ size, usage: STORAGE_USAGE, label });
    device.popErrorScope().then((error) => {
      if (error) {
        console.error(`difflm: out of GPU memory allocating ${size} bytes for "${label}": ${error.message}`);
      }
    });
    this.#stats.created++;
    this.#stats.bytes += size;
    this.#stats.inUse++;
    this.#acquired?.add(buffer);
    return buffer;
  }

  /**
   * Returns a buffer to the pool. Work already recorded that uses it stays correct: later writes are
   * ordered after it on the queue.
   *
   * @param buffer A buffer from {@linkcode acquire}.
   * @throws {GpuError} If the code being recorded releases a buffer it did not acquire.
   */
  release(buffer: GPUBuffer): void {
    if (this.#acquired && !this.#acquired.has(buffer)) {
      throw new GpuError(
        "validation",
        "record",
        "the recorded code released a buffer it did not acquire; a replay would read it after reuse",
      );
    }
    const parked = this.#owners.get(buffer);
    if (parked) {
      // A recording's buffer: it stays with the recording, which rewrites it on every replay.
      parked.add(buffer);
      return;
    }
    const list = this.#free.get(buffer.size) ?? [];
    list.push(buffer);
    this.#free.set(buffer.size, list);
    this.#stats.inUse--;
    this.#stats.free++;
  }

  /** Destroys every buffer waiting in the pool. */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const buffer of list) {
        this.#stats.bytes -= buffer.size;
        this.#stats.created--;
        buffer.destroy();
      }
    }
    this.#stats.free = 0;
    this.#free.clear();
  }

  /** Starts noting what is acquired, for a recording. */
  startRecording(): void {
    this.#acquired = new Set();
  }

  /** Stops noting without a recording (the recorded code failed). */
  cancelRecording(): void {
    this.#acquired = null;
  }

  /**
   * Stops noting, and gives what was acquired meanwhile to the recording: those back in the pool are
   * taken out again, so no one else is handed them.
   *
   * @returns Gives the recording's buffers back; called when the recording is disposed.
   */
  endRecording(): () => void {
    const owned = [...this.#acquired ?? []];
    this.#acquired = null;
    const parked = new Set<GPUBuffer>();
    for (const buffer of owned) {
      const list = this.#free.get(buffer.size);
      const at = list?.indexOf(buffer) ?? -1;
      if (at >= 0) {
        list!.splice(at, 1);
        this.#stats.free--;
        this.#stats.inUse++;
        parked.add(buffer);
      }
      this.#owners.set(buffer, parked);
    }
    return () => {
      for (const buffer of owned) this.#owners.delete(buffer);
      for (const buffer of parked) this.release(buffer);
    };
  }
}
