/**
 * Profiling: under {@linkcode GpuRuntime.profile}, every dispatch runs in its own compute pass whose
 * start and end timestamps go to a query set; the timestamps are resolved into a buffer when the work
 * is submitted (or when the query set is full) and read back as one {@linkcode KernelTiming} per
 * dispatch.
 *
 * @module
 */

/** One kernel's GPU time in one profiled flush. */
export interface KernelTiming {
  /** Kernel name. */
  name: string;
  /** Nanoseconds between the start and end timestamps of its pass. */
  ns: number;
}

/**
 * Timestamp queries for the passes of one profiled run.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { Profiler } from "./profiler.ts";
 * const { device, features } = await getGpu();
 * if (features.timestamps) {
 *   const profiler = new Profiler(device);
 *   const encoder = device.createCommandEncoder();
 *   encoder.beginComputePass({ label: "k", timestampWrites: profiler.next("k") }).end();
 *   profiler.resolve(encoder);
 *   device.queue.submit([encoder.finish()]);
 *   profiler.submitted();
 *   console.log(await profiler.timings()); // [{ name: "k", ns: … }]
 *   profiler.destroy();
 * }
 * ```
 */
export class Profiler {
  #device: GPUDevice;
  #querySet: GPUQuerySet;
  #capacity: number;
  #names: string[] = [];
  #timings: Promise<KernelTiming[]>[] = [];
  #unsubmitted: (() => Promise<KernelTiming[]>)[] = [];

  /**
   * Creates the query set.
   *
   * @param device The device (with `timestamp-query`).
   * @param capacity Timestamps in the query set: two per pass.
   */
  constructor(device: GPUDevice, capacity = 4096) {
    this.#device = device;
    this.#capacity = capacity;
    this.#querySet = device.createQuerySet({ type: "timestamp", count: capacity });
  }

  /** Whether the query set has room for another pass; if not, {@linkcode resolve} first. */
  get full(): boolean {
    return 2 * this.#names.length + 2 > this.#capacity;
  }

  /** Whether passes were timed since the last {@linkcode resolve}. */
  get pending(): boolean {
    return this.#names.length > 0;
  }

  /**
   * The timestamp writes of the next pass.
   *
   * @param name The kernel the pass runs.
   * @returns The pass descriptor's `timestampWrites`.
   */
  next(name: string): GPUComputePassTimestampWrites {
    const slot = this.#names.length;
    this.#names.push(name);
    return {
      querySet: this.#querySet,
      beginningOfPassWriteIndex: 2 * slot,
      endOfPassWriteIndex: 2 * slot + 1,
    };
  }

  /**
   * Records resolving the timestamps so far into a host-mappable buffer, to be read once submitted.
   *
   * @param encoder The encoder of the timed passes (no pass open).
   */
  resolve(encoder: GPUCommandEncoder): void {
    const names = this.#names;
    this.#names = [];
    const bytes = names.length * 16;
    const resolved = this.#device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const staging = this.#device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.resolveQuerySet(this.#querySet, 0, names.length * 2, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
    this.#unsubmitted.push(async () => {
      await staging.mapAsync(GPUMapMode.READ);
      const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      resolved.destroy();
      return names.map((name, i) => ({ name, ns: Number(stamps[2 * i + 1]! - stamps[2 * i]!) }));
    });
  }

  /** Starts reading the resolved timestamps back; call after the submission that resolved them. */
  submitted(): void {
    for (const start of this.#unsubmitted.splice(0)) this.#timings.push(start());
  }

  /**
   * Every timing read back, in dispatch order.
   *
   * @returns One entry per timed pass.
   */
  async timings(): Promise<KernelTiming[]> {
    return (await Promise.all(this.#timings)).flat();
  }

  /** Frees the query set (timings already resolved can still be read). */
  destroy(): void {
    this.#querySet.destroy();
  }
}
