/**
 * Recording and replay: {@linkcode GpuRuntime.record} keeps the dispatches that some code records
 * (kernel, buffers, uniform values, grid), and {@linkcode GpuRuntime.replay} issues them again as
 * recorded without running that code. A recording's uniform values live in a buffer of its own.
 *
 * @module
 */
import type { BufferView } from "./buffer_pool.ts";
import type { CommandStream } from "./command_stream.ts";
import { bindGroupEntries, type KernelEntry } from "./pipeline_cache.ts";

/** One dispatch of a {@linkcode DispatchRecording}: everything needed to issue it again. */
export interface RecordedCommand {
  /** Kernel name (profiles and errors). */
  readonly name: string;
  /** The compiled kernel. */
  readonly pipeline: GPUComputePipeline;
  /** Its buffers, and the recording's own uniform buffer. */
  readonly bindGroup: GPUBindGroup;
  /** The dynamic offset of its uniforms in that buffer (empty without uniforms). */
  readonly offsets: number[];
  /** Workgroups in x. */
  readonly x: number;
  /** Workgroups in y. */
  readonly y: number;
  /** Workgroups in z. */
  readonly z: number;
  /** The buffers it writes. */
  readonly written: readonly GPUBuffer[];
  /** Its storage views in binding order (what {@linkcode rebindRecording} replaces). */
  readonly views: readonly BufferView[];
  /** The layout its bind group was made for. */
  readonly layout: GPUBindGroupLayout;
  /** Its uniforms' buffer and struct size, or null without uniforms. */
  readonly uniforms: { readonly buffer: GPUBuffer; readonly size: number } | null;
}

/** A dispatch as seen while recording, before the recording has its own uniform buffer. */
export interface CapturedDispatch {
  /** The kernel. */
  readonly entry: KernelEntry;
  /** Its name. */
  readonly name: string;
  /** Its storage views in binding order. */
  readonly views: readonly BufferView[];
  /** A copy of its packed uniform struct, or null without uniforms. */
  readonly uniforms: Uint8Array | null;
  /** Workgroups in x, y, z. */
  readonly grid: readonly [number, number, number];
  /** The buffers it writes. */
  readonly written: readonly GPUBuffer[];
}

/**
 * A sequence of dispatches recorded once by {@linkcode GpuRuntime.record} and issued again, as recorded,
 * by {@linkcode GpuRuntime.replay}: same kernels, same buffers, same uniform values, without running
 * the code that recorded them. It owns the buffers that code acquired (its intermediates and outputs),
 * so nothing else is handed them until {@linkcode DispatchRecording.dispose}.
 *
 * @example Usage
 * ```ts
 * import { Engine, gelu } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.keep(engine.tensor(new Float32Array([-1, 0, 1]), [3]));
 * let y = x;
 * const recording = engine.runtime.record(() => {
 *   y = engine.keep(gelu(x));
 * });
 * x.write(new Float32Array([1, 2, 3]));
 * engine.runtime.replay(recording); // y = gelu([1, 2, 3])
 * console.log(await y.read());
 * recording.dispose();
 * ```
 */
export class DispatchRecording {
  #commands: readonly RecordedCommand[];
  #release: () => void;
  #disposed = false;
  #parent: DispatchRecording | null;

  /**
   * Made by {@linkcode GpuRuntime.record} (and {@linkcode GpuRuntime.rebind}).
   *
   * @param commands The dispatches.
   * @param release Gives the recording's buffers back.
   * @param parent The recording whose buffers and uniforms these dispatches use, if not their own: this
   * one is disposed with it.
   */
  constructor(
    commands: readonly RecordedCommand[],
    release: () => void,
    parent: DispatchRecording | null = null,
  ) {
    this.#commands = commands;
    this.#release = release;
    this.#parent = parent;
  }

  /** The number of dispatches (0 once disposed). */
  get size(): number {
    return this.commands.length;
  }

  /** Whether {@linkcode dispose} was called (on this recording, or on the one it was rebound from). */
  get disposed(): boolean {
    return this.#disposed || (this.#parent?.disposed ?? false);
  }

  /** The dispatches, for {@linkcode GpuRuntime.replay} (none once disposed). */
  get commands(): readonly RecordedCommand[] {
    return this.disposed ? [] : this.#commands;
  }

  /** Returns the recording's buffers to the pool (those no tensor still views) and forgets its dispatches. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#commands = [];
    this.#release();
  }
}

/**
 * Turns captured dispatches into a recording: their uniform values, fixed from now on, go into one
 * buffer of the recording's own, and each dispatch gets a bind group on it.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { makeRecording } from "./recording.ts";
 * const { device } = await getGpu();
 * const recording = makeRecording(device, [], () => 256, () => console.log("released"), (fn) => fn());
 * console.log(recording.size); // 0: nothing was captured
 * recording.dispose(); // "released"
 * ```
 * @param device The device.
 * @param dispatches What was captured, in order.
 * @param stride The uniform stride for the device's offset alignment.
 * @param release Gives the recording's buffers back.
 * @param afterSubmit Defers destroying the uniform buffer until work that binds it is submitted.
 * @returns The recording.
 */
export function makeRecording(
  device: GPUDevice,
  dispatches: readonly CapturedDispatch[],
  stride: (size: number) => number,
  release: () => void,
  afterSubmit: (fn: () => void) => void,
): DispatchRecording {
  const offsets: number[] = [];
  let total = 0;
  for (const d of dispatches) {
    offsets.push(total);
    if (d.uniforms) total += stride(d.entry.uniformSize);
  }
  const uniforms = total > 0
    ? device.createBuffer({
      size: total,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
      label: "recorded uniforms",
    })
    : null;
  if (uniforms) {
    const bytes = new Uint8Array(uniforms.getMappedRange());
    dispatches.forEach((d, i) => d.uniforms && bytes.set(d.uniforms, offsets[i]!));
    uniforms.unmap();
  }
  const commands = dispatches.map((d, i): RecordedCommand => {
    const bound = d.uniforms ? { buffer: uniforms!, size: d.entry.uniformSize } : null;
    return {
      name: d.name,
      pipeline: d.entry.pipeline,
      bindGroup: device.createBindGroup({
        layout: d.entry.layout,
        entries: bindGroupEntries(d.views, bound),
        label: d.name,
      }),
      offsets: d.uniforms ? [offsets[i]!] : [],
      x: d.grid[0],
      y: d.grid[1],
      z: d.grid[2],
      written: d.written,
      views: d.views,
      layout: d.entry.layout,
      uniforms: bound,
    };
  });
  return new DispatchRecording(commands, () => {
    release();
    // Work recorded but not yet submitted may still bind the uniforms.
    if (uniforms) afterSubmit(() => uniforms.destroy());
  });
}

/**
 * The dispatches of `recording` with every binding of the view `from` (same buffer, offset and length)
 * bound to `to` instead: one recording per step of a loop whose steps differ only in which rows of a
 * buffer they read (the sampler's time conditioning), without a copy into one place per step. The new
 * recording shares the original's buffers, uniforms and unchanged bind groups; disposing it releases
 * nothing, and it counts as disposed once the original is.
 *
 * @example Usage
 * ```ts
 * import { Engine, gelu } from "@difflm/core/kernels";
 * import { rebindRecording } from "./recording.ts";
 * const engine = await Engine.create();
 * const x = engine.keep(engine.tensor(new Float32Array(128), [2, 64])); // two rows of 256 bytes
 * let y = x;
 * const recording = engine.runtime.record(() => void (y = engine.keep(gelu(x.rows(0, 1)))));
 * const second = rebindRecording(engine.runtime.device, recording, x.rows(0, 1), x.rows(1, 1));
 * engine.runtime.replay(second); // y = gelu of the second row
 * console.log(await y.read());
 * recording.dispose();
 * ```
 * @param device The device.
 * @param recording The recording.
 * @param from A view the recording binds.
 * @param to The view to bind in its place (the same length; aligned as storage bindings must be).
 * @returns The rebound recording.
 */
export function rebindRecording(
  device: GPUDevice,
  recording: DispatchRecording,
  from: BufferView,
  to: BufferView,
): DispatchRecording {
  const same = (v: BufferView) =>
    v.buffer === from.buffer && v.byteOffset === from.byteOffset && v.byteLength === from.byteLength;
  const commands = recording.commands.map((c): RecordedCommand => {
    if (!c.views.some(same)) return c;
    const views = c.views.map((v) => same(v) ? to : v);
    return {
      ...c,
      views,
      bindGroup: device.createBindGroup({
        layout: c.layout,
        entries: bindGroupEntries(views, c.uniforms),
        label: c.name,
      }),
      // The written views are the last ones bound.
      written: views.slice(views.length - c.written.length).map((v) => v.buffer),
    };
  });
  return new DispatchRecording(commands, () => {}, recording);
}

/**
 * Appends a recording's dispatches to the stream: in one pass, setting each pipeline only when it
 * changes, or one timed pass per dispatch while profiling.
 *
 * @example Usage
 * ```ts
 * import { Engine, gelu } from "@difflm/core/kernels";
 * import { CommandStream } from "./command_stream.ts";
 * import { replayCommands } from "./recording.ts";
 * const engine = await Engine.create();
 * const x = engine.keep(engine.tensor(new Float32Array([-1, 0, 1]), [3]));
 * const recording = engine.runtime.record(() => void engine.keep(gelu(x)));
 * const stream = new CommandStream(engine.runtime.gpu);
 * replayCommands(stream, recording.commands);
 * await stream.submit("replay", () => {});
 * ```
 * @param stream Where to record.
 * @param commands The recording's dispatches.
 */
export function replayCommands(stream: CommandStream, commands: readonly RecordedCommand[]): void {
  if (stream.profiler) {
    for (const c of commands) {
      const pass = stream.pass(c.name);
      pass.setPipeline(c.pipeline);
      pass.setBindGroup(0, c.bindGroup, c.offsets);
      pass.dispatchWorkgroups(c.x, c.y, c.z);
      stream.endPass();
    }
  } else {
    let pass: GPUComputePassEncoder | null = null;
    let pipeline: GPUComputePipeline | null = null;
    for (const c of commands) {
      const next = stream.pass("difflm step");
      if (next !== pass) {
        pass = next;
        pipeline = null;
      }
      if (c.pipeline !== pipeline) next.setPipeline(pipeline = c.pipeline);
      next.setBindGroup(0, c.bindGroup, c.offsets);
      next.dispatchWorkgroups(c.x, c.y, c.z);
    }
  }
  stream.pending += commands.length;
}
