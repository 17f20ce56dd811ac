/**
 * The GPU runtime: a buffer pool, pipeline and bind-group caches, and the recorder that appends
 * dispatches to one command encoder until `flush()` submits it inside error scopes.
 *
 * Vocabulary: a *view* is a byte range of a GPUBuffer (what a kernel binds); the *pool* hands out
 * buffers by size and takes them back, so a step with static shapes allocates nothing after its first
 * run; *flush* submits everything recorded so far as one command buffer. Nothing here knows about
 * tensors or models.
 *
 * @module
 */
import { COPY, FILL } from "../../kernels/fill.ts";
import { GpuError } from "../errors.ts";
import { assertAlive, type Gpu, readEnv } from "./device.ts";
import {
  formatCompileError,
  type KernelSpec,
  packUniforms,
  uniformByteSize,
  type UniformType,
} from "./kernel.ts";

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

/** One kernel's GPU time in one profiled flush. */
export interface KernelTiming {
  /** Kernel name. */
  name: string;
  /** Nanoseconds between the start and end timestamps of its pass. */
  ns: number;
}

const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const UNIFORM_CHUNK = 64 * 1024;

interface UniformChunk {
  buffer: GPUBuffer;
  data: ArrayBuffer;
  view: DataView;
  used: number;
}

/** What a dispatch needs of a kernel, computed once per spec. */
interface SpecInfo {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  names: string[];
  id: number;
  fields: [string, UniformType][];
  uniformSize: number;
  uniformStride: number;
}

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
}

/** A dispatch as seen while recording, before the recording has its own uniform buffer. */
interface CapturedDispatch {
  readonly info: SpecInfo;
  readonly name: string;
  readonly views: BufferView[];
  readonly uniforms: Uint8Array | null;
  readonly grid: readonly [number, number, number];
}

/**
 * A sequence of dispatches recorded once by {@linkcode GpuRuntime.record} and issued again, as recorded,
 * by {@linkcode GpuRuntime.replay}: same kernels, same buffers, same uniform values, without running
 * the code that recorded them. It owns the buffers that code acquired (its intermediates and outputs),
 * so nothing else is handed them until {@linkcode DispatchRecording.dispose}.
 *
 * @example Usage
 * ```ts ignore
 * import { Engine, gelu } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const x = engine.keep(engine.tensor(new Float32Array([-1, 0, 1]), [3]));
 * let y!: ReturnType<typeof gelu>;
 * const recording = engine.runtime.record(() => { y = engine.keep(gelu(x)); });
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

  /**
   * Made by {@linkcode GpuRuntime.record}.
   *
   * @param commands The dispatches.
   * @param release Gives the recording's buffers back.
   */
  constructor(commands: readonly RecordedCommand[], release: () => void) {
    this.#commands = commands;
    this.#release = release;
  }

  /** The number of dispatches (0 once disposed). */
  get size(): number {
    return this.#commands.length;
  }

  /** Whether {@linkcode dispose} was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** The dispatches, for {@linkcode GpuRuntime.replay}. */
  get commands(): readonly RecordedCommand[] {
    return this.#commands;
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
 * Owns GPU memory and records work. One runtime per device; `Engine` (src/tensor) builds on it.
 *
 * @example Usage
 * ```ts ignore
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
  #free = new Map<number, GPUBuffer[]>();
  #stats: PoolStats = { created: 0, bytes: 0, inUse: 0, free: 0 };
  #pipelines = new Map<string, GPUComputePipeline>();
  #specs = new WeakMap<KernelSpec, SpecInfo>();
  /** Spec info by entry point and text: a builder that returns a fresh spec object per call still maps
   * to one id, so its dispatches find their cached bind groups. */
  #specsByText = new Map<string, SpecInfo>();
  #nextSpecId = 1;
  #maxGroups: number;
  #maxBinding: number;
  #validated = new WeakSet<GPUComputePipeline>();
  #layouts = new Map<string, GPUBindGroupLayout>();
  #bindGroups = new Map<string, GPUBindGroup>();
  #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #passKernels: string[] = [];
  #uniformChunks: UniformChunk[] = [];
  #chunkIndex = 0;
  #uniformAlign: number;
  #storageAlign: number;
  #profile: { querySet: GPUQuerySet; names: string[]; capacity: number } | null = null;
  #timings: Promise<KernelTiming[]>[] = [];
  #unsubmittedTimings: (() => Promise<KernelTiming[]>)[] = [];
  #afterSubmit: (() => void)[] = [];
  #pending = 0;
  #capture: { dispatches: CapturedDispatch[]; acquired: Set<GPUBuffer> } | null = null;
  /** Buffers a recording owns, mapped to the set of those among them that no tensor views any more. */
  #owners = new Map<GPUBuffer, Set<GPUBuffer>>();

  /**
   * Creates a runtime on a device.
   *
   * @param gpu The adapter and device from {@linkcode getGpu}.
   */
  constructor(gpu: Gpu) {
    this.gpu = gpu;
    this.device = gpu.device;
    this.debug = Number(readEnv("DIFFLM_DEBUG") ?? "0") || 0;
    this.#uniformAlign = gpu.limits.minUniformBufferOffsetAlignment;
    this.#storageAlign = gpu.limits.minStorageBufferOffsetAlignment;
    this.#maxGroups = gpu.limits.maxComputeWorkgroupsPerDimension;
    this.#maxBinding = gpu.limits.maxStorageBufferBindingSize;
  }

  /** Required alignment in bytes for the offset of a bound storage view. */
  get storageAlignment(): number {
    return this.#storageAlign;
  }

  /** Pool counters. */
  get stats(): Readonly<PoolStats> {
    return { ...this.#stats };
  }

  /** Number of dispatches recorded since the last flush. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Takes a storage buffer of at least `byteLength` bytes from the pool, or creates one.
   *
   * @param byteLength Bytes needed.
   * @param label Name used in out-of-memory errors.
   * @returns A buffer usable as storage, copy source and copy destination.
   */
  acquire(byteLength: number, label = "tensor"): GPUBuffer {
    const size = Math.max(256, Math.ceil(byteLength / 256) * 256);
    const list = this.#free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.#stats.free--;
      this.#stats.inUse++;
      this.#capture?.acquired.add(reused);
      return reused;
    }
    if (size > this.gpu.limits.maxBufferSize) {
      throw new GpuError(
        "out-of-memory",
        label,
        `a buffer of ${size} bytes exceeds the device's maxBufferSize ${this.gpu.limits.maxBufferSize}`,
      );
    }
    this.device.pushErrorScope("out-of-memory");
    const buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE, label });
    this.device.popErrorScope().then((error) => {
      if (error) {
        console.error(`difflm: out of GPU memory allocating ${size} bytes for "${label}": ${error.message}`);
      }
    });
    this.#stats.created++;
    this.#stats.bytes += size;
    this.#stats.inUse++;
    this.#capture?.acquired.add(buffer);
    return buffer;
  }

  /**
   * Returns a buffer to the pool. Work already recorded that uses it stays correct: later writes are
   * ordered after it on the queue.
   *
   * @param buffer A buffer from {@linkcode acquire}.
   */
  release(buffer: GPUBuffer): void {
    const capture = this.#capture;
    if (capture && !capture.acquired.has(buffer)) {
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
    this.#bindGroups.clear();
  }

  #bufferId(buffer: GPUBuffer): number {
    let id = this.#bufferIds.get(buffer);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(buffer, id);
    }
    return id;
  }

  #layout(spec: KernelSpec): GPUBindGroupLayout {
    const key = `${spec.reads.length}|${spec.writes.length}|${spec.uniforms ? 1 : 0}`;
    let layout = this.#layouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      let binding = 0;
      for (const _ of spec.reads) {
        entries.push({
          binding: binding++,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: "read-only-storage" },
        });
      }
      for (const _ of spec.writes) {
        entries.push({ binding: binding++, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } });
      }
      if (spec.uniforms) {
        entries.push({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: "uniform", hasDynamicOffset: true },
        });
      }
      layout = this.device.createBindGroupLayout({ entries, label: key });
      this.#layouts.set(key, layout);
    }
    return layout;
  }

  /**
   * Compiles a kernel (once per distinct WGSL text) and checks the compiler's messages.
   *
   * @param spec The kernel.
   * @returns The pipeline.
   * @throws {GpuError} With the messages and the numbered source, if the WGSL does not compile.
   */
  async compile(spec: KernelSpec): Promise<GPUComputePipeline> {
    const cached = this.#pipelines.get(spec.code + spec.name);
    if (cached && this.#validated.has(cached)) return cached;
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ code: spec.code, label: spec.name });
    const info = await module.getCompilationInfo();
    const pipeline = this.device.createComputePipeline({
      label: spec.name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [this.#layout(spec)] }),
      compute: { module, entryPoint: spec.name },
    });
    const error = await this.device.popErrorScope();
    if (info.messages.some((m) => m.type === "error")) {
      throw new GpuError("compilation", spec.name, formatCompileError(spec, info.messages));
    }
    if (error) throw new GpuError("validation", spec.name, error.message);
    if (this.debug >= 2) console.error(`difflm: compiled kernel "${spec.name}"\n${spec.code}`);
    this.#pipelines.set(spec.code + spec.name, pipeline);
    this.#validated.add(pipeline);
    return pipeline;
  }

  #pipelineSync(spec: KernelSpec): GPUComputePipeline {
    const cached = this.#pipelines.get(spec.code + spec.name);
    if (cached) return cached;
    // First use without a prior compile(): create synchronously; errors surface at flush with the label.
    const module = this.device.createShaderModule({ code: spec.code, label: spec.name });
    const pipeline = this.device.createComputePipeline({
      label: spec.name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [this.#layout(spec)] }),
      compute: { module, entryPoint: spec.name },
    });
    this.#pipelines.set(spec.code + spec.name, pipeline);
    return pipeline;
  }

  #uniformSlot(
    spec: KernelSpec,
    info: SpecInfo,
    values: Readonly<Record<string, number>>,
  ): { chunk: UniformChunk; offset: number } {
    const stride = info.uniformStride;
    let chunk = this.#uniformChunks[this.#chunkIndex];
    if (chunk && chunk.used + stride > UNIFORM_CHUNK) {
      this.#chunkIndex++;
      chunk = this.#uniformChunks[this.#chunkIndex];
    }
    if (!chunk) {
      const data = new ArrayBuffer(UNIFORM_CHUNK);
      chunk = {
        buffer: this.device.createBuffer({
          size: UNIFORM_CHUNK,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          label: "uniforms",
        }),
        data,
        view: new DataView(data),
        used: 0,
      };
      this.#uniformChunks.push(chunk);
    }
    const offset = chunk.used;
    packUniforms(spec, info.fields, values, chunk.view, offset);
    chunk.used += stride;
    return { chunk, offset };
  }

  #encoderNow(): GPUCommandEncoder {
    assertAlive(this.gpu, "command encoder");
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder({ label: "difflm" });
    return this.#encoder;
  }

  #endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
  }

  #info(spec: KernelSpec): SpecInfo {
    let info = this.#specs.get(spec);
    if (info) return info;
    const text = `${spec.name}\n${spec.code}`;
    info = this.#specsByText.get(text);
    if (!info) {
      const fields = Object.entries(spec.uniforms ?? {}) as [string, UniformType][];
      const size = uniformByteSize(spec);
      info = {
        pipeline: this.#pipelineSync(spec),
        layout: this.#layout(spec),
        names: [...spec.reads, ...spec.writes],
        id: this.#nextSpecId++,
        fields,
        uniformSize: size,
        uniformStride: Math.ceil(size / this.#uniformAlign) * this.#uniformAlign,
      };
      this.#specsByText.set(text, info);
    }
    this.#specs.set(spec, info);
    return info;
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
    const maxGroups = this.#maxGroups;
    if (gx > maxGroups || gy > maxGroups || gz > maxGroups) {
      throw new GpuError(
        "validation",
        spec.name,
        `grid [${gx},${gy},${gz}] exceeds ${maxGroups} per dimension`,
      );
    }
    const info = this.#info(spec);
    const names = info.names;
    const reads = spec.reads.length;
    // The bind-group key: kernel, then (buffer id, offset, size) per binding, then the uniform chunk.
    let key = `${info.id}`;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const view = views[name];
      if (!view) throw new GpuError("validation", spec.name, `no buffer bound to "${name}"`);
      if (i < reads) {
        for (let w = reads; w < names.length; w++) {
          if (views[names[w]!]?.buffer === view.buffer) {
            throw new GpuError(
              "validation",
              spec.name,
              `"${name}" is read from a buffer that the same dispatch writes; bind it once as read_write`,
            );
          }
        }
      }
      if (view.byteOffset % this.#storageAlign !== 0) {
        throw new GpuError("validation", spec.name, `"${name}" offset ${view.byteOffset} is not aligned`);
      }
      if (view.byteLength > this.#maxBinding) {
        throw new GpuError(
          "validation",
          spec.name,
          `"${name}" binds ${view.byteLength} bytes, over maxStorageBufferBindingSize ${this.#maxBinding}`,
        );
      }
      key += `|${this.#bufferId(view.buffer)},${view.byteOffset},${view.byteLength}`;
    }
    let chunk: UniformChunk | null = null;
    let offset = 0;
    if (spec.uniforms) {
      ({ chunk, offset } = this.#uniformSlot(spec, info, uniforms));
      key += `|u${this.#bufferId(chunk.buffer)}`;
    }
    let bindGroup = this.#bindGroups.get(key);
    if (!bindGroup) {
      if (this.#bindGroups.size > 20000) this.#bindGroups.clear();
      const entries: GPUBindGroupEntry[] = names.map((name, binding) => {
        const view = views[name]!;
        return {
          binding,
          resource: { buffer: view.buffer, offset: view.byteOffset, size: Math.max(4, view.byteLength) },
        };
      });
      if (chunk) {
        entries.push({
          binding: names.length,
          resource: { buffer: chunk.buffer, offset: 0, size: info.uniformSize },
        });
      }
      bindGroup = this.device.createBindGroup({ layout: info.layout, entries, label: spec.name });
      this.#bindGroups.set(key, bindGroup);
    }
    const capture = this.#capture;
    if (capture) {
      capture.dispatches.push({
        info,
        name: spec.name,
        views: names.map((name) => views[name]!),
        uniforms: chunk ? new Uint8Array(chunk.data, offset, info.uniformSize).slice() : null,
        grid: [gx, gy, gz],
      });
    }
    const pass = this.#passFor(spec.name);
    pass.setPipeline(info.pipeline);
    if (chunk) pass.setBindGroup(0, bindGroup, [offset]);
    else pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (this.#profile) this.#endPass();
    this.#pending++;
    if (this.debug >= 1 && !capture) void this.flush(spec.name);
  }

  /** The open compute pass, or a new one; under {@linkcode profile}, a timed pass for one kernel. */
  #passFor(name: string): GPUComputePassEncoder {
    let pass = this.#pass;
    if (this.#profile) {
      this.#endPass();
      const index = this.#passKernels.length;
      if (2 * index + 2 > this.#profile.capacity) this.#flushProfileBatch();
      const slot = this.#passKernels.length;
      pass = this.#encoderNow().beginComputePass({
        label: name,
        timestampWrites: {
          querySet: this.#profile.querySet,
          beginningOfPassWriteIndex: 2 * slot,
          endOfPassWriteIndex: 2 * slot + 1,
        },
      });
      this.#passKernels.push(name);
    } else if (!pass) {
      pass = this.#encoderNow().beginComputePass({ label: "difflm step" });
    }
    this.#pass = pass;
    return pass;
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
    if (this.#capture) throw new GpuError("validation", "record", "recordings cannot nest");
    const capture = { dispatches: [] as CapturedDispatch[], acquired: new Set<GPUBuffer>() };
    this.#capture = capture;
    try {
      fn();
    } finally {
      this.#capture = null;
    }
    // Take back from the pool what `fn` acquired and released, so no one else is handed it.
    const owned = [...capture.acquired];
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
    // The uniform values, fixed from now on, in a buffer of the recording's own.
    const offsets: number[] = [];
    let total = 0;
    for (const d of capture.dispatches) {
      offsets.push(total);
      if (d.uniforms) total += d.info.uniformStride;
    }
    const uniforms = total > 0
      ? this.device.createBuffer({
        size: total,
        usage: GPUBufferUsage.UNIFORM,
        mappedAtCreation: true,
        label: "recorded uniforms",
      })
      : null;
    if (uniforms) {
      const bytes = new Uint8Array(uniforms.getMappedRange());
      capture.dispatches.forEach((d, i) => d.uniforms && bytes.set(d.uniforms, offsets[i]!));
      uniforms.unmap();
    }
    const commands = capture.dispatches.map((d, i): RecordedCommand => {
      const entries: GPUBindGroupEntry[] = d.views.map((view, binding) => ({
        binding,
        resource: { buffer: view.buffer, offset: view.byteOffset, size: Math.max(4, view.byteLength) },
      }));
      if (d.uniforms) {
        entries.push({
          binding: d.views.length,
          resource: { buffer: uniforms!, offset: 0, size: d.info.uniformSize },
        });
      }
      return {
        name: d.name,
        pipeline: d.info.pipeline,
        bindGroup: this.device.createBindGroup({ layout: d.info.layout, entries, label: d.name }),
        offsets: d.uniforms ? [offsets[i]!] : [],
        x: d.grid[0],
        y: d.grid[1],
        z: d.grid[2],
      };
    });
    return new DispatchRecording(commands, () => {
      for (const buffer of owned) this.#owners.delete(buffer);
      for (const buffer of parked) this.release(buffer);
      // Work recorded but not yet submitted may still bind the uniforms.
      if (uniforms && this.#encoder) this.#afterSubmit.push(() => uniforms.destroy());
      else uniforms?.destroy();
    });
  }

  /**
   * Records again the dispatches of a recording, after everything recorded so far.
   *
   * @param recording From {@linkcode record}.
   * @throws {GpuError} If the recording was disposed, or a recording is being made.
   */
  replay(recording: DispatchRecording): void {
    if (recording.disposed) throw new GpuError("validation", "replay", "the recording was disposed");
    if (this.#capture) throw new GpuError("validation", "replay", "cannot replay while recording");
    const commands = recording.commands;
    if (this.#profile) {
      for (const c of commands) {
        const pass = this.#passFor(c.name);
        pass.setPipeline(c.pipeline);
        pass.setBindGroup(0, c.bindGroup, c.offsets);
        pass.dispatchWorkgroups(c.x, c.y, c.z);
        this.#endPass();
      }
    } else if (commands.length > 0) {
      const pass = this.#passFor("difflm step");
      let pipeline: GPUComputePipeline | null = null;
      for (const c of commands) {
        if (c.pipeline !== pipeline) pass.setPipeline(pipeline = c.pipeline);
        pass.setBindGroup(0, c.bindGroup, c.offsets);
        pass.dispatchWorkgroups(c.x, c.y, c.z);
      }
    }
    this.#pending += commands.length;
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
      this.#endPass();
      this.#encoderNow().copyBufferToBuffer(
        source.buffer,
        source.byteOffset,
        target.buffer,
        target.byteOffset,
        words * 4,
      );
      this.#pending++;
      return;
    }
    for (let done = 0; done < words;) {
      const n = Math.min(words - done, this.#maxWordsPerBinding);
      const src = this.#binding(source.buffer, source.byteOffset + 4 * done, n);
      const dst = this.#binding(target.buffer, target.byteOffset + 4 * done, n);
      this.dispatch(
        COPY,
        { src: src.view, dst: dst.view },
        { n, srcStart: src.start, dstStart: dst.start },
        this.#grid(n),
      );
      done += n;
    }
  }

  /**
   * Records writing one 32-bit pattern into every word of a view.
   *
   * @param target The bytes to fill (rounded up to whole words).
   * @param bits The word, e.g. a float's bits from a `DataView`.
   */
  fill(target: BufferView, bits: number): void {
    const words = Math.ceil(target.byteLength / 4);
    for (let done = 0; done < words;) {
      const n = Math.min(words - done, this.#maxWordsPerBinding);
      const out = this.#binding(target.buffer, target.byteOffset + 4 * done, n);
      this.dispatch(FILL, { out: out.view }, { n, start: out.start, bits }, this.#grid(n));
      done += n;
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
    if (this.#capture) {
      throw new GpuError("validation", "record", `${what} cannot be replayed; do it outside the recording`);
    }
  }

  /** Words that one binding may cover whatever the offset's remainder to the storage alignment. */
  get #maxWordsPerBinding(): number {
    return Math.floor((this.#maxBinding - this.#storageAlign) / 4);
  }

  /** A bindable view covering `words` words at `byteOffset`, and the word where they start in it. */
  #binding(buffer: GPUBuffer, byteOffset: number, words: number): { view: BufferView; start: number } {
    const lead = byteOffset % this.#storageAlign;
    return {
      view: { buffer, byteOffset: byteOffset - lead, byteLength: lead + 4 * words },
      start: lead / 4,
    };
  }

  /** The grid of a one-word-per-invocation kernel (256 per workgroup), folded into 2-D past the limit. */
  #grid(words: number): [number, number] {
    const groups = Math.ceil(words / 256);
    const y = Math.ceil(groups / this.#maxGroups);
    return [Math.ceil(groups / y), y];
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
    if (this.#encoder) void this.flush("write");
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
  async flush(what = "flush"): Promise<void> {
    if (!this.#encoder) return;
    this.#endPass();
    const encoder = this.#encoder;
    this.#encoder = null;
    this.#pending = 0;
    for (const chunk of this.#uniformChunks) {
      if (chunk.used > 0) {
        this.device.queue.writeBuffer(chunk.buffer, 0, chunk.data, 0, chunk.used);
        chunk.used = 0;
      }
    }
    this.#chunkIndex = 0;
    if (this.#profile && this.#passKernels.length > 0) this.#resolveProfile(encoder);
    this.device.pushErrorScope("validation");
    this.device.pushErrorScope("out-of-memory");
    this.device.queue.submit([encoder.finish()]);
    // Timestamp read-backs may only map once the copies into them are submitted.
    for (const start of this.#unsubmittedTimings.splice(0)) this.#timings.push(start());
    for (const start of this.#afterSubmit.splice(0)) start();
    const oom = await this.device.popErrorScope();
    const invalid = await this.device.popErrorScope();
    const error = invalid ?? oom;
    if (error) {
      const match = /label[^"']*["']([^"']+)["']/.exec(error.message);
      throw new GpuError(invalid ? "validation" : "out-of-memory", match?.[1] ?? what, error.message);
    }
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
    const size = Math.ceil(source.byteLength / 4) * 4;
    const staging = this.device.createBuffer({
      size: Math.max(4, size),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: "read-back",
    });
    const encoder = this.device.createCommandEncoder({ label: "read-back" });
    encoder.copyBufferToBuffer(source.buffer, source.byteOffset, staging, 0, size);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0, source.byteLength);
    staging.unmap();
    staging.destroy();
    return copy;
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
    this.#endPass();
    const size = Math.max(4, Math.ceil(source.byteLength / 4) * 4);
    const staging = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: "read-back",
    });
    this.#encoderNow().copyBufferToBuffer(source.buffer, source.byteOffset, staging, 0, size);
    this.#pending++;
    return new Promise((resolve, reject) => {
      this.#afterSubmit.push(() => {
        staging.mapAsync(GPUMapMode.READ).then(() => {
          const copy = staging.getMappedRange().slice(0, source.byteLength);
          staging.unmap();
          staging.destroy();
          resolve(copy);
        }, reject);
      });
    });
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
    const capacity = 4096;
    this.#profile = {
      querySet: this.device.createQuerySet({ type: "timestamp", count: capacity }),
      names: [],
      capacity,
    };
    this.#passKernels = [];
    this.#timings = [];
    try {
      await fn();
      await this.flush("profile");
    } finally {
      this.#profile.querySet.destroy();
      this.#profile = null;
    }
    return (await Promise.all(this.#timings)).flat();
  }

  #flushProfileBatch(): void {
    const encoder = this.#encoderNow();
    this.#endPass();
    this.#resolveProfile(encoder);
  }

  #resolveProfile(encoder: GPUCommandEncoder): void {
    const profile = this.#profile!;
    const names = this.#passKernels;
    this.#passKernels = [];
    const bytes = names.length * 16;
    const resolved = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const staging = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.resolveQuerySet(profile.querySet, 0, names.length * 2, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
    this.#unsubmittedTimings.push(async () => {
      await staging.mapAsync(GPUMapMode.READ);
      const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      resolved.destroy();
      return names.map((name, i) => ({ name, ns: Number(stamps[2 * i + 1]! - stamps[2 * i]!) }));
    });
  }
}
