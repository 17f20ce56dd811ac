/**
 * `Engine`: tensor allocation, memory scopes and the reverse-mode autograd tape, over one
 * {@linkcode GpuRuntime}.
 *
 * Vocabulary: a *node* is one recorded op with its inputs, outputs and a `backward` that adds (+=) the
 * gradients of its inputs from those of its outputs; the *tape* is the list of nodes since
 * {@linkcode Engine.startTape}; a *scope* ({@linkcode Engine.tidy}) returns every tensor allocated
 * inside it to the pool when it ends, except what it returns or `keep`s.
 *
 * @module
 */
import { getGpu, type GpuProvider } from "../gpu/device.ts";
import { GpuRuntime } from "../gpu/runtime.ts";
import { type DType, type HostArray, Tensor } from "./tensor.ts";

/**
 * Arithmetic of the matrix products: `f32` (f32 operands and accumulation, the parity reference) or
 * `mixed` (operands rounded to f16, f32 accumulation: tensor cores where the device has subgroup
 * matrices, else the same numerics on the f32 kernels). Everything else (master weights, optimiser state,
 * layer norm, softmax, losses) is f32 in both.
 */
export type Precision = "f32" | "mixed";

/** Options of {@linkcode Engine.create}. */
export interface EngineOptions {
  /**
   * The WebGPU implementation (see {@linkcode GpuProvider}).
   * @default {"deno"}
   */
  gpu?: GpuProvider;
  /**
   * Product arithmetic; `mixed` where the device has tensor cores (subgroup matrices), else `f32`.
   */
  precision?: Precision;
}

/** One recorded op: `backward` accumulates into the gradients of `inputs` that require them. */
export interface TapeNode {
  /** Op name, for debugging. */
  readonly name: string;
  /** Tensors the op read. */
  readonly inputs: readonly Tensor[];
  /** Tensors the op wrote. */
  readonly outputs: readonly Tensor[];
  /** Records the backward dispatches. */
  backward(): void;
}

/** Folds a workgroup count over x and y so no dimension exceeds 65535 (kernels index `x + y·nx`). */
export function grid1d(workgroups: number): [number, number, number] {
  if (workgroups <= 65535) return [workgroups, 1, 1];
  const y = Math.ceil(workgroups / 65535);
  return [Math.ceil(workgroups / y), y, 1];
}

/**
 * Allocates tensors, records the autograd tape and runs backward.
 *
 * @example Usage
 * ```ts
 * import { Engine } from "@difflm/core";
 * const engine = await Engine.create();
 * const x = engine.tensor(new Float32Array([1, 2, 3]), [3]);
 * console.log(await x.read());
 * ```
 */
export class Engine {
  /** The runtime that owns the device, the pool and the recorder. */
  readonly runtime: GpuRuntime;
  /** Arithmetic of the matrix products (see {@linkcode Precision}). */
  readonly precision: Precision;
  /** When true, every new tensor is filled with NaN first (tests use it to catch unwritten outputs). */
  poison = false;
  #tape: TapeNode[] | null = null;
  #scopes: Set<Tensor>[] = [];
  #gradEnabled = true;
  #seedCounter = 0;

  /**
   * Wraps a runtime. {@linkcode Engine.create} is the usual entry.
   *
   * @param runtime The GPU runtime.
   * @param precision Product arithmetic; `mixed` where the device has subgroup matrices, else `f32`.
   */
  constructor(runtime: GpuRuntime, precision?: Precision) {
    this.runtime = runtime;
    if (precision !== undefined && precision !== "f32" && precision !== "mixed") {
      throw new RangeError(`Cannot create engine: precision "${precision}" is not one of f32, mixed`);
    }
    this.precision = precision ?? (runtime.gpu.features.subgroupMatrix ? "mixed" : "f32");
  }

  /**
   * Creates an engine on the shared GPU of the provider asked for.
   *
   * @param options Provider and product precision.
   * @returns The engine.
   * @throws {GpuUnavailableError} If no adapter is found or the provider asked for cannot be used.
   */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    return new Engine(new GpuRuntime(await getGpu({ provider: options.gpu })), options.precision);
  }

  /**
   * A new tensor with unspecified contents (NaN when {@linkcode poison} is set).
   *
   * @param shape Dimensions.
   * @param dtype Element type.
   * @param label Name for errors.
   * @returns The tensor, owned by the innermost scope if any.
   */
  empty(shape: readonly number[], dtype: DType = "f32", label = "tensor"): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    const buffer = this.runtime.acquire(size * 4, label);
    const t = new Tensor(this, { buffer, byteOffset: 0, shape, dtype, label, pooled: true });
    const scope = this.#scopes.at(-1);
    if (scope) {
      scope.add(t);
      t.scope = scope;
    }
    if (this.poison) this.fill(t, NaN);
    return t;
  }

  /**
   * A new tensor of zeros.
   *
   * @param shape Dimensions.
   * @param dtype Element type.
   * @param label Name for errors.
   * @returns The tensor.
   */
  zeros(shape: readonly number[], dtype: DType = "f32", label = "zeros"): Tensor {
    const t = this.empty(shape, dtype, label);
    this.runtime.clear(t);
    return t;
  }

  /**
   * A new tensor holding host data.
   *
   * @param data The elements, row-major.
   * @param shape Dimensions (element count must match).
   * @param dtype Element type; inferred from the typed array when omitted.
   * @returns The tensor.
   */
  tensor(data: HostArray | readonly number[], shape: readonly number[], dtype?: DType): Tensor {
    const kind: DType = dtype ??
      (data instanceof Int32Array ? "i32" : data instanceof Uint32Array ? "u32" : "f32");
    const t = this.empty(shape, kind, "host data");
    t.write(data);
    return t;
  }

  /**
   * Records filling a tensor with one value.
   *
   * @param target The tensor to fill.
   * @param value A number (written as the tensor's dtype).
   */
  fill(target: Tensor, value: number): void {
    const word = new DataView(new ArrayBuffer(4));
    if (target.dtype === "f32") word.setFloat32(0, value, true);
    else if (target.dtype === "i32") word.setInt32(0, value, true);
    else word.setUint32(0, value, true);
    this.runtime.fill(target, word.getUint32(0, true));
  }

  /**
   * Runs `fn` in a memory scope: tensors allocated inside go back to the pool when it ends, except the
   * ones it returns (a tensor, an array or an object of tensors) and those passed to {@linkcode keep}.
   * An async body is released when its promise settles; tensors it allocates after its first `await`
   * belong to no scope.
   *
   * @param fn The work.
   * @returns What `fn` returned.
   */
  tidy<T>(fn: () => T): T {
    const scope = new Set<Tensor>();
    this.#scopes.push(scope);
    let result: T;
    try {
      result = fn();
    } finally {
      this.#scopes.pop();
    }
    const outer = this.#scopes.at(-1) ?? null;
    const release = (value: unknown) => {
      const keep = new Set<Tensor>();
      collectTensors(value, keep);
      // Newest first: the pool hands buffers out last-in first-out, so the next scope that allocates in
      // the same order gets the same buffers back, and its dispatches find their bind groups cached.
      for (const t of [...scope].reverse()) {
        if (keep.has(t)) {
          outer?.add(t);
          t.scope = outer;
        } else t.dispose();
      }
    };
    if (result instanceof Promise) {
      // An async body: release once it settles, so reads inside it still see live buffers.
      return result.then((value) => {
        release(value);
        return value;
      }, (error) => {
        release(undefined);
        throw error;
      }) as T;
    }
    release(result);
    return result;
  }

  /**
   * Moves a tensor out of every scope so that no `tidy` releases it.
   *
   * @param t The tensor to keep.
   * @returns `t`.
   */
  keep(t: Tensor): Tensor {
    for (const scope of this.#scopes) scope.delete(t);
    t.scope = null;
    return t;
  }

  /** Whether ops currently record onto the tape. */
  get recording(): boolean {
    return this.#tape !== null && this.#gradEnabled;
  }

  /** Starts a new tape: ops on tensors that require gradients are recorded until {@linkcode backward}. */
  startTape(): void {
    this.#tape = [];
  }

  /**
   * Runs `fn` without recording (the self-conditioning pass, sampling, evaluation).
   *
   * @param fn The work.
   * @returns What `fn` returned.
   */
  noGrad<T>(fn: () => T): T {
    const before = this.#gradEnabled;
    this.#gradEnabled = false;
    try {
      return fn();
    } finally {
      this.#gradEnabled = before;
    }
  }

  /**
   * Records an op on the tape if any input requires a gradient; then its outputs require one too.
   *
   * @param node The op and its backward.
   */
  record(node: TapeNode): void {
    if (!this.recording || !node.inputs.some((t) => t.requiresGrad)) return;
    for (const out of node.outputs) out.requiresGrad = true;
    this.#tape!.push(node);
  }

  /**
   * The gradient of `t`, allocated and zeroed on first use (backward kernels add into it).
   *
   * @param t A tensor that requires a gradient.
   * @returns Its gradient, same shape.
   */
  gradOf(t: Tensor): Tensor {
    if (!t.grad) {
      const grad = this.#newGrad(t);
      this.runtime.clear(grad);
      return grad;
    }
    return t.grad;
  }

  /**
   * The gradient of `t` for a backward kernel that writes every element of it: on first use it is
   * allocated without zeroing and `accumulate` is false, so the kernel overwrites it; afterwards the
   * kernel adds into it. This saves a zero-fill per intermediate gradient; kernels that write only part
   * of a gradient use {@linkcode gradOf}.
   *
   * @param t A tensor that requires a gradient.
   * @returns Its gradient, same shape, and whether to add into it.
   */
  gradTarget(t: Tensor): { grad: Tensor; accumulate: boolean } {
    if (t.grad) return { grad: t.grad, accumulate: true };
    return { grad: this.#newGrad(t), accumulate: false };
  }

  #newGrad(t: Tensor): Tensor {
    const grad = this.empty(t.shape, "f32", `grad of ${t.label}`);
    if (t.pooled) {
      // The gradient lives as long as its tensor: same scope, or freed by the tensor's dispose().
      grad.scope?.delete(grad);
      grad.scope = t.scope;
      t.scope?.add(grad);
    }
    t.grad = grad;
    return grad;
  }

  /**
   * Reverse pass over the tape: seeds `loss.grad` with ones (or `seed`) and runs each recorded node's
   * backward in reverse order, then clears the tape.
   *
   * @param loss The scalar (or any tensor) to differentiate.
   * @param seed Gradient of the final objective with respect to `loss`; ones when omitted.
   */
  backward(loss: Tensor, seed?: Tensor): void {
    const tape = this.#tape;
    if (!tape) throw new Error("Cannot run backward: no tape was started (call engine.startTape() first)");
    if (seed) {
      this.runtime.copy(seed, this.gradOf(loss));
    } else {
      loss.grad = this.empty(loss.shape, "f32", "loss seed");
      this.fill(loss.grad, 1);
    }
    for (let i = tape.length - 1; i >= 0; i--) {
      const node = tape[i]!;
      if (node.outputs.some((t) => t.grad !== null)) node.backward();
    }
    this.#tape = null;
  }

  /**
   * A fresh 32-bit seed for a random kernel: a counter mixed with `base`, so that replaying the same
   * sequence of calls from the same base gives the same numbers.
   *
   * @param base The run's seed.
   * @returns A seed for one dispatch.
   */
  nextSeed(base = 0): number {
    this.#seedCounter = (this.#seedCounter + 1) >>> 0;
    return mixSeed(base, this.#seedCounter);
  }

  /** The counter behind {@linkcode nextSeed}, saved in checkpoints so a resumed run draws the same numbers. */
  get seedCounter(): number {
    return this.#seedCounter;
  }

  set seedCounter(value: number) {
    this.#seedCounter = value >>> 0;
  }
}

/**
 * A 32-bit seed for draw number `counter` of a stream seeded with `base` (a fixed mix, so a stream
 * depends only on its base and position).
 *
 * @example Usage
 * ```ts
 * import { mixSeed } from "@difflm/core/kernels";
 * console.log(mixSeed(1, 2) === mixSeed(1, 2)); // true
 * ```
 * @param base The stream's seed.
 * @param counter The draw's position in the stream.
 * @returns The seed of that draw.
 */
export function mixSeed(base: number, counter: number): number {
  let h = (Math.imul(base ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(counter >>> 0, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

function collectTensors(value: unknown, into: Set<Tensor>): void {
  if (value instanceof Tensor) {
    into.add(value);
    if (value.grad) into.add(value.grad);
  } else if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, into);
  } else if (value && typeof value === "object" && !(ArrayBuffer.isView(value))) {
    for (const v of Object.values(value)) collectTensors(v, into);
  }
}
