/**
 * Uniforms: the one writer of WGSL uniform structs. A kernel's `Params` struct holds 4-byte scalars
 * in the order of its spec's `uniforms`; a dispatch's values are packed into a host staging chunk at a
 * stride that meets the device's `minUniformBufferOffsetAlignment`, bound with a dynamic offset, and the
 * chunks are uploaded once per flush.
 *
 * @module
 */
import type { KernelSpec, UniformType } from "./kernel.ts";

/**
 * Pads a uniform struct of 4-byte scalars to WGSL's uniform size rule (a multiple of 16 bytes).
 *
 * @example Usage
 * ```ts
 * import { uniformByteSize } from "./uniforms.ts";
 * console.log(uniformByteSize({ name: "k", code: "", reads: [], writes: [], uniforms: { n: "u32" } })); // 16
 * ```
 * @param spec The kernel.
 * @returns The struct's size in bytes.
 */
export function uniformByteSize(spec: KernelSpec): number {
  const fields = Object.keys(spec.uniforms ?? {}).length;
  return Math.max(16, Math.ceil((fields * 4) / 16) * 16);
}

/**
 * Writes the uniform values of a dispatch into `view` at `byteOffset`, in the spec's field order.
 *
 * @example Usage
 * ```ts
 * import { packUniforms } from "./uniforms.ts";
 * const spec = { name: "k", code: "", reads: [], writes: [], uniforms: { n: "u32", x: "f32" } } as const;
 * const view = new DataView(new ArrayBuffer(16));
 * packUniforms(spec, Object.entries(spec.uniforms), { n: 3, x: 0.5 }, view, 0);
 * console.log(view.getUint32(0, true), view.getFloat32(4, true)); // 3 0.5
 * ```
 * @param spec The kernel (for messages).
 * @param fields The spec's uniform fields in order, as `Object.entries(spec.uniforms)`.
 * @param values One number per uniform field.
 * @param view Destination.
 * @param byteOffset Where the struct starts.
 * @throws {TypeError} If a field is missing, unknown or not a finite number.
 * @throws {RangeError} If a u32 field is negative, fractional or too large.
 */
export function packUniforms(
  spec: KernelSpec,
  fields: readonly (readonly [string, UniformType])[],
  values: Readonly<Record<string, number>>,
  view: DataView,
  byteOffset: number,
): void {
  let offset = byteOffset;
  let given = 0;
  for (const name in values) if (values[name] !== undefined) given++;
  if (given > fields.length) {
    const unknown = Object.keys(values).find((name) => !fields.some(([f]) => f === name));
    throw new TypeError(`Cannot run kernel "${spec.name}": unknown uniform "${unknown}"`);
  }
  for (let i = 0; i < fields.length; i++) {
    const [name, type] = fields[i]!;
    const value = values[name];
    if (value === undefined || !Number.isFinite(value)) {
      throw new TypeError(
        `Cannot run kernel "${spec.name}": uniform "${name}" is ${value}, expected a finite number`,
      );
    }
    if (type === "f32") view.setFloat32(offset, value, true);
    else if (type === "i32") view.setInt32(offset, value, true);
    else {
      if (value < 0 || value > 0xffffffff || !Number.isInteger(value)) {
        throw new RangeError(
          `Cannot run kernel "${spec.name}": uniform "${name}" is ${value}, expected a u32`,
        );
      }
      view.setUint32(offset, value, true);
    }
    offset += 4;
  }
}

/** One uniform buffer and its host staging copy. */
export interface UniformChunk {
  /** The GPU buffer bound with a dynamic offset. */
  readonly buffer: GPUBuffer;
  /** Host bytes, uploaded at the next flush. */
  readonly data: ArrayBuffer;
  /** A view of `data`. */
  readonly view: DataView;
  /** Bytes packed since the last upload. */
  used: number;
}

/** Where one dispatch's uniforms were packed. */
export interface UniformSlot {
  /** The chunk. */
  readonly chunk: UniformChunk;
  /** The dynamic offset in bytes. */
  readonly offset: number;
}

const CHUNK_BYTES = 64 * 1024;

/**
 * The uniform values of the dispatches recorded since the last flush, in 64 KiB chunks that are reused
 * from flush to flush.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { UniformChunks } from "./uniforms.ts";
 * const device = (await getGpu()).device;
 * const uniforms = new UniformChunks(device, 256);
 * console.log(uniforms.stride(48)); // 256
 * ```
 */
export class UniformChunks {
  #device: GPUDevice;
  #align: number;
  #chunks: UniformChunk[] = [];
  #index = 0;

  /**
   * Creates the staging with no chunk yet.
   *
   * @param device The device that owns the buffers.
   * @param align The device's `minUniformBufferOffsetAlignment`.
   */
  constructor(device: GPUDevice, align: number) {
    this.#device = device;
    this.#align = align;
  }

  /**
   * The distance between two structs of `size` bytes in a chunk.
   *
   * @param size The struct's size from {@linkcode uniformByteSize}.
   * @returns `size` rounded up to the offset alignment.
   */
  stride(size: number): number {
    return Math.ceil(size / this.#align) * this.#align;
  }

  /**
   * Packs one dispatch's values into the current chunk, starting a new chunk when it is full.
   *
   * @param spec The kernel.
   * @param fields Its uniform fields in order.
   * @param stride From {@linkcode stride}.
   * @param values One number per field.
   * @returns Where the values were packed.
   */
  pack(
    spec: KernelSpec,
    fields: readonly (readonly [string, UniformType])[],
    stride: number,
    values: Readonly<Record<string, number>>,
  ): UniformSlot {
    let chunk = this.#chunks[this.#index];
    if (chunk && chunk.used + stride > CHUNK_BYTES) {
      this.#index++;
      chunk = this.#chunks[this.#index];
    }
    if (!chunk) {
      const data = new ArrayBuffer(CHUNK_BYTES);
      chunk = {
        buffer: this.#device.createBuffer({
          size: CHUNK_BYTES,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          label: "uniforms",
        }),
        data,
        view: new DataView(data),
        used: 0,
      };
      this.#chunks.push(chunk);
    }
    const offset = chunk.used;
    packUniforms(spec, fields, values, chunk.view, offset);
    chunk.used += stride;
    return { chunk, offset };
  }

  /** Writes what was packed since the last upload to the GPU (queued before the next submission). */
  upload(): void {
    for (const chunk of this.#chunks) {
      if (chunk.used > 0) {
        this.#device.queue.writeBuffer(chunk.buffer, 0, chunk.data, 0, chunk.used);
        chunk.used = 0;
      }
    }
    this.#index = 0;
  }
}
