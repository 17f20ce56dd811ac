/**
 * `Tensor`: a GPU buffer view with a shape and a dtype, plus what reverse-mode autograd needs (a
 * `requiresGrad` flag and a lazily allocated gradient). Ops live in `src/tensor/ops/`; the tape and the
 * memory scopes live in `Engine`.
 *
 * @module
 */
import type { BufferView } from "../gpu/runtime.ts";
import type { Engine } from "./engine.ts";

/** Element types: `f32` for values, `i32`/`u32` for ids, lengths and masks. */
export type DType = "f32" | "i32" | "u32";

/** Host arrays matching each dtype. */
export type HostArray = Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>;

/**
 * An n-dimensional array on the GPU: a view of a buffer (`buffer`, `byteOffset`) with a shape and a
 * dtype. Elements are 4 bytes, row-major.
 *
 * @example Usage
 * ```ts
 * import { Engine } from "@difflm/core";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * console.log(await x.read()); // Float32Array [1, 2, 3, 4]
 * ```
 */
export class Tensor implements BufferView {
  /** The engine that owns this tensor's memory and records its ops. */
  readonly engine: Engine;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** The GPU buffer holding the elements. */
  readonly buffer: GPUBuffer;
  /** Byte offset of element 0 in `buffer`. */
  readonly byteOffset: number;
  /** Name shown in errors and memory tables. */
  readonly label: string;
  /** Whether gradients flow to this tensor. */
  requiresGrad = false;
  /** The gradient, allocated by the first backward op that reaches this tensor. */
  grad: Tensor | null = null;
  /** Set for tensors whose buffer came from the pool and goes back on {@linkcode dispose}. */
  readonly pooled: boolean;
  /** The memory scope that releases this tensor, if any (maintained by `Engine`). */
  scope: Set<Tensor> | null = null;
  #disposed = false;

  /**
   * Wraps a buffer view. Most code calls `engine.empty`, `engine.tensor` or an op instead.
   *
   * @param engine The owning engine.
   * @param view Buffer, offset and shape.
   */
  constructor(
    engine: Engine,
    view: {
      buffer: GPUBuffer;
      byteOffset: number;
      shape: readonly number[];
      dtype: DType;
      label: string;
      pooled: boolean;
    },
  ) {
    for (const d of view.shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new TypeError(`Cannot create tensor: shape [${view.shape}] is invalid`);
      }
    }
    this.engine = engine;
    this.buffer = view.buffer;
    this.byteOffset = view.byteOffset;
    this.shape = Object.freeze([...view.shape]);
    this.dtype = view.dtype;
    this.label = view.label;
    this.pooled = view.pooled;
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Bytes of the elements (4 per element). */
  get byteLength(): number {
    return this.size * 4;
  }

  /** Whether {@linkcode dispose} has run. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Copies the elements to the host, after all work recorded so far.
   *
   * @returns A typed array of the tensor's dtype.
   */
  async read(): Promise<HostArray> {
    const bytes = await this.engine.runtime.read(this);
    if (this.dtype === "f32") return new Float32Array(bytes);
    if (this.dtype === "i32") return new Int32Array(bytes);
    return new Uint32Array(bytes);
  }

  /**
   * Overwrites the elements with host data, ordered after all work recorded so far.
   *
   * @param data Exactly `size` elements.
   */
  write(data: HostArray | readonly number[]): void {
    if (data.length !== this.size) {
      throw new TypeError(
        `Cannot write tensor "${this.label}": got ${data.length} elements, expected ${this.size}`,
      );
    }
    const typed = data instanceof Float32Array || data instanceof Int32Array || data instanceof Uint32Array
      ? data
      : this.dtype === "f32"
      ? new Float32Array(data)
      : this.dtype === "i32"
      ? new Int32Array(data)
      : new Uint32Array(data);
    this.engine.runtime.write(this, typed);
  }

  /**
   * A tensor of another shape over the same elements (no copy, no autograd link: use the `reshape`
   * op when gradients must flow).
   *
   * @param shape New dimensions with the same element count.
   * @returns The view.
   */
  viewAs(shape: readonly number[]): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== this.size) {
      throw new TypeError(`Cannot view tensor "${this.label}" of shape [${this.shape}] as [${shape}]`);
    }
    return new Tensor(this.engine, {
      buffer: this.buffer,
      byteOffset: this.byteOffset,
      shape,
      dtype: this.dtype,
      label: this.label,
      pooled: false,
    });
  }

  /**
   * Rows `start … start+count−1` of the outermost dimension, as a view (no copy). The byte offset must
   * meet the device's storage alignment to be bound by a kernel.
   *
   * @param start First row.
   * @param count Number of rows.
   * @returns The view.
   */
  rows(start: number, count: number): Tensor {
    const [outer = 0, ...inner] = this.shape;
    if (start < 0 || count < 0 || start + count > outer) {
      throw new RangeError(
        `Cannot slice rows ${start}…${start + count} of tensor "${this.label}" with ${outer} rows`,
      );
    }
    const rowBytes = inner.reduce((a, b) => a * b, 1) * 4;
    return new Tensor(this.engine, {
      buffer: this.buffer,
      byteOffset: this.byteOffset + start * rowBytes,
      shape: [count, ...inner],
      dtype: this.dtype,
      label: this.label,
      pooled: false,
    });
  }

  /** Returns a pooled buffer to the engine (no-op for views); the tensor must not be used afterwards. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.pooled) this.engine.runtime.release(this.buffer);
    if (this.grad && this.grad.pooled) this.grad.dispose();
  }

  /** Same as {@linkcode dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
