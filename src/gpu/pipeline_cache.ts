/**
 * The pipeline cache: one entry per kernel, keyed by the spec (its entry point and WGSL text, so that
 * specs built separately with equal text share one entry), holding the compiled pipeline and what a
 * dispatch needs of it; and the bind-group cache, keyed by the entry and the exact buffer ranges bound.
 * Sizes travel in uniforms, so a step with static shapes creates nothing here after its first run.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import type { BufferView } from "./buffer_pool.ts";
import { formatCompileError, type KernelSpec, type UniformType } from "./kernel.ts";
import { uniformByteSize } from "./uniforms.ts";

/** What a dispatch needs of a kernel, computed once per distinct spec. */
export interface KernelEntry {
  /** The compiled kernel. */
  readonly pipeline: GPUComputePipeline;
  /** Its bind-group layout: reads, writes, then the uniforms with a dynamic offset. */
  readonly layout: GPUBindGroupLayout;
  /** Storage binding names in binding order (reads, then writes). */
  readonly names: readonly string[];
  /** How many of `names` are read only. */
  readonly reads: number;
  /** A small number naming the entry in bind-group keys. */
  readonly id: number;
  /** Uniform fields in struct order. */
  readonly fields: readonly (readonly [string, UniformType])[];
  /** The uniform struct's size in bytes. */
  readonly uniformSize: number;
  /** Whether the compiler's messages were checked (by {@linkcode PipelineCache.compile}). */
  validated: boolean;
}

/**
 * Compiled kernels by spec.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { PipelineCache } from "./pipeline_cache.ts";
 * import { FILL } from "./fill.ts";
 * const cache = new PipelineCache((await getGpu()).device, 0);
 * await cache.compile(FILL);
 * console.log(cache.entry(FILL).names); // ["out"]
 * ```
 */
export class PipelineCache {
  #device: GPUDevice;
  #debug: number;
  #bySpec = new WeakMap<KernelSpec, KernelEntry>();
  #byText = new Map<string, KernelEntry>();
  #layouts = new Map<string, GPUBindGroupLayout>();
  #nextId = 1;

  /**
   * Creates an empty cache.
   *
   * @param device The device that compiles.
   * @param debug `DIFFLM_DEBUG` level; 2 logs every kernel when compiled.
   */
  constructor(device: GPUDevice, debug: number) {
    this.#device = device;
    this.#debug = debug;
  }

  /**
   * The entry of a kernel, created on first use without waiting for the compiler (errors then surface
   * at the next flush, labelled with the kernel's name).
   *
   * @param spec The kernel.
   * @returns Its entry.
   */
  entry(spec: KernelSpec): KernelEntry {
    let entry = this.#bySpec.get(spec);
    if (entry) return entry;
    const key = `${spec.name}\n${spec.code}`;
    entry = this.#byText.get(key);
    if (!entry) {
      const module = this.#device.createShaderModule({ code: spec.code, label: spec.name });
      entry = this.#create(spec, module);
      this.#byText.set(key, entry);
    }
    this.#bySpec.set(spec, entry);
    return entry;
  }

  /**
   * Compiles a kernel (once per distinct WGSL text) and checks the compiler's messages.
   *
   * @param spec The kernel.
   * @returns The pipeline.
   * @throws {GpuError} With the messages and the numbered source, if the WGSL does not compile.
   */
  async compile(spec: KernelSpec): Promise<GPUComputePipeline> {
    const key = `${spec.name}\n${spec.code}`;
    const known = this.#byText.get(key);
    if (known?.validated) return known.pipeline;
    this.#device.pushErrorScope("validation");
    const module = this.#device.createShaderModule({ code: spec.code, label: spec.name });
    const info = await module.getCompilationInfo();
    const entry = known ?? this.#create(spec, module);
    const error = await this.#device.popErrorScope();
    if (info.messages.some((m) => m.type === "error")) {
      throw new GpuError("compilation", spec.name, formatCompileError(spec, info.messages));
    }
    if (error) throw new GpuError("validation", spec.name, error.message);
    if (this.#debug >= 2) console.error(`difflm: compiled kernel "${spec.name}"\n${spec.code}`);
    entry.validated = true;
    this.#byText.set(key, entry);
    this.#bySpec.set(spec, entry);
    return entry.pipeline;
  }

  #create(spec: KernelSpec, module: GPUShaderModule): KernelEntry {
    const layout = this.#layout(spec);
    return {
      pipeline: this.#device.createComputePipeline({
        label: spec.name,
        layout: this.#device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: spec.name },
      }),
      layout,
      names: [...spec.reads, ...spec.writes],
      reads: spec.reads.length,
      id: this.#nextId++,
      fields: Object.entries(spec.uniforms ?? {}),
      uniformSize: uniformByteSize(spec),
      validated: false,
    };
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
      layout = this.#device.createBindGroupLayout({ entries, label: key });
      this.#layouts.set(key, layout);
    }
    return layout;
  }
}

/**
 * The views of a dispatch in binding order, checked: every binding given, no buffer both read and
 * written, offsets aligned, lengths within the binding size limit.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { COPY } from "./fill.ts";
 * import { boundViews, PipelineCache } from "./pipeline_cache.ts";
 * const { device } = await getGpu();
 * const cache = new PipelineCache(device, 0);
 * const view = (size: number) => ({
 *   buffer: device.createBuffer({ size, usage: GPUBufferUsage.STORAGE }),
 *   byteOffset: 0,
 *   byteLength: size,
 * });
 * const views = boundViews(COPY, cache.entry(COPY), { src: view(64), dst: view(64) }, {
 *   storageAlign: 256,
 *   maxBinding: 1 << 27,
 * });
 * console.log(views.length); // 2, in binding order: src, dst
 * ```
 * @param spec The kernel (for messages).
 * @param entry Its cache entry.
 * @param views One view per binding name.
 * @param limits The device's storage offset alignment and binding size limit.
 * @returns The views in binding order.
 * @throws {GpuError} If a binding is missing or misplaced.
 */
export function boundViews(
  spec: KernelSpec,
  entry: KernelEntry,
  views: Readonly<Record<string, BufferView>>,
  limits: { readonly storageAlign: number; readonly maxBinding: number },
): BufferView[] {
  const names = entry.names;
  const bound: BufferView[] = [];
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const view = views[name];
    if (!view) throw new GpuError("validation", spec.name, `no buffer bound to "${name}"`);
    if (i < entry.reads) {
      for (let w = entry.reads; w < names.length; w++) {
        if (views[names[w]!]?.buffer === view.buffer) {
          throw new GpuError(
            "validation",
            spec.name,
            `"${name}" is read from a buffer that the same dispatch writes; bind it once as read_write`,
          );
        }
      }
    }
    if (view.byteOffset % limits.storageAlign !== 0) {
      throw new GpuError("validation", spec.name, `"${name}" offset ${view.byteOffset} is not aligned`);
    }
    if (view.byteLength > limits.maxBinding) {
      throw new GpuError(
        "validation",
        spec.name,
        `"${name}" binds ${view.byteLength} bytes, over maxStorageBufferBindingSize ${limits.maxBinding}`,
      );
    }
    bound.push(view);
  }
  return bound;
}

/**
 * The bind-group entries of a dispatch: one per storage view in binding order, then the uniforms.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { bindGroupEntries } from "./pipeline_cache.ts";
 * const { device } = await getGpu();
 * const buffer = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE });
 * const uniforms = device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM });
 * const entries = bindGroupEntries([{ buffer, byteOffset: 0, byteLength: 1024 }], { buffer: uniforms, size: 16 });
 * console.log(entries.length); // 2: the storage view at binding 0, the uniforms at binding 1
 * ```
 * @param views The storage views in binding order.
 * @param uniforms The uniform buffer and struct size, if the kernel takes uniforms.
 * @returns The entries for `createBindGroup`.
 */
export function bindGroupEntries(
  views: readonly BufferView[],
  uniforms: { buffer: GPUBuffer; size: number } | null,
): GPUBindGroupEntry[] {
  const entries: GPUBindGroupEntry[] = views.map((view, binding) => ({
    binding,
    resource: { buffer: view.buffer, offset: view.byteOffset, size: Math.max(4, view.byteLength) },
  }));
  if (uniforms) {
    entries.push({
      binding: views.length,
      resource: { buffer: uniforms.buffer, offset: 0, size: uniforms.size },
    });
  }
  return entries;
}

/**
 * Bind groups by kernel entry and bound ranges: the key is the entry's id, then (buffer id, offset,
 * size) per binding, then the uniform buffer's id.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { FILL } from "./fill.ts";
 * import { BindGroupCache, PipelineCache } from "./pipeline_cache.ts";
 * const { device } = await getGpu();
 * const entry = new PipelineCache(device, 0).entry(FILL);
 * const view = { buffer: device.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE }), byteOffset: 0, byteLength: 64 };
 * const groups = new BindGroupCache(device);
 * const uniforms = device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM });
 * const group = groups.get(entry, [view], uniforms, "fill");
 * console.log(groups.get(entry, [view], uniforms, "fill") === group); // true: the same ranges, the same group
 * ```
 */
export class BindGroupCache {
  #device: GPUDevice;
  #groups = new Map<string, GPUBindGroup>();
  #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;

  /**
   * Creates an empty cache.
   *
   * @param device The device that creates the groups.
   */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /**
   * The bind group of one dispatch, created on first use.
   *
   * @param entry The kernel.
   * @param views Its storage views in binding order.
   * @param uniforms The uniform buffer, if the kernel takes uniforms.
   * @param label The kernel's name.
   * @returns The bind group.
   */
  get(
    entry: KernelEntry,
    views: readonly BufferView[],
    uniforms: GPUBuffer | null,
    label: string,
  ): GPUBindGroup {
    let key = `${entry.id}`;
    for (const view of views) key += `|${this.#bufferId(view.buffer)},${view.byteOffset},${view.byteLength}`;
    if (uniforms) key += `|u${this.#bufferId(uniforms)}`;
    let group = this.#groups.get(key);
    if (!group) {
      if (this.#groups.size > 20000) this.#groups.clear();
      const entries = bindGroupEntries(views, uniforms && { buffer: uniforms, size: entry.uniformSize });
      group = this.#device.createBindGroup({ layout: entry.layout, entries, label });
      this.#groups.set(key, group);
    }
    return group;
  }

  /** Forgets every bind group (after buffers were destroyed). */
  clear(): void {
    this.#groups.clear();
  }

  #bufferId(buffer: GPUBuffer): number {
    let id = this.#bufferIds.get(buffer);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(buffer, id);
    }
    return id;
  }
}
