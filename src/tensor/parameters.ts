/**
 * `ParameterStore`: every trainable parameter as a named view into one flat parameter arena, with
 * gradient and AdamW moment arenas of the same layout, so that gradient clipping and the optimiser
 * are a few dispatches over contiguous memory instead of one per tensor.
 *
 * Vocabulary: an *arena* is one buffer holding all parameters (or all gradients, first moments,
 * second moments) back to back; each parameter starts at a multiple of 64 elements (256 bytes, the
 * largest storage-offset alignment WebGPU allows) and the gaps stay zero.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { Tensor } from "./tensor.ts";

/** How a parameter is initialised. */
export type Initializer =
  | { readonly kind: "normal"; readonly std: number; readonly mean?: number }
  | { readonly kind: "constant"; readonly value: number };

/**
 * An arena of a {@linkcode ParameterStore}: the weights, their gradients, AdamW's two moments, or the
 * moving average of the weights.
 *
 * @example Usage
 * ```ts
 * import type { ArenaName } from "@difflm/core/kernels";
 * const arena: ArenaName = "average";
 * console.log(arena); // "average"
 * ```
 */
export type ArenaName = "params" | "grads" | "m" | "v" | "average";

interface Entry {
  name: string;
  shape: number[];
  init: Initializer;
  offset: number;
  size: number;
}

const ALIGN = 64;

/**
 * Named parameters in flat arenas.
 *
 * @example Usage
 * ```ts
 * import { Engine, ParameterStore } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const store = new ParameterStore(engine);
 * store.declare("lm_head.weight", [8000, 512], { kind: "normal", std: 0.02 });
 * store.allocate(0);
 * console.log(store.get("lm_head.weight").shape);
 * ```
 */
export class ParameterStore {
  /** The engine that owns the arenas. */
  readonly engine: Engine;
  #entries = new Map<string, Entry>();
  #length = 0;
  #arenas: { params: Tensor; grads: Tensor; m: Tensor; v: Tensor; average?: Tensor } | null = null;
  #views = new Map<string, Tensor>();

  /**
   * Creates an empty store.
   *
   * @param engine The engine to allocate on.
   */
  constructor(engine: Engine) {
    this.engine = engine;
  }

  /**
   * Declares a parameter. Parameters declared one after another with sizes that are multiples of 64
   * are contiguous, so {@linkcode span} can view them as one tensor (e.g. w_q, w_k, w_v as [3D, D]).
   *
   * @param name The parameter's name, as in the PyTorch state dict.
   * @param shape Its shape, as PyTorch stores it.
   * @param init How to initialise it.
   */
  declare(name: string, shape: readonly number[], init: Initializer): void {
    if (this.#arenas) throw new Error(`Cannot declare parameter "${name}": the store is already allocated`);
    if (this.#entries.has(name)) throw new TypeError(`Cannot declare parameter "${name}": the name is taken`);
    const size = shape.reduce((a, b) => a * b, 1);
    this.#entries.set(name, { name, shape: [...shape], init, offset: this.#length, size });
    this.#length += Math.ceil(size / ALIGN) * ALIGN;
  }

  /** Parameter names in declaration order. */
  get names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Shape of each parameter, by name. */
  shapeOf(name: string): readonly number[] {
    return this.#entry(name).shape;
  }

  /** Total trainable elements (without padding). */
  get count(): number {
    let n = 0;
    for (const e of this.#entries.values()) n += e.size;
    return n;
  }

  /** Arena length in elements (with padding). */
  get length(): number {
    return this.#length;
  }

  /**
   * The four arenas, and the moving average of the weights once {@linkcode keepAverage} was called;
   * available after {@linkcode allocate}.
   */
  get arenas(): { params: Tensor; grads: Tensor; m: Tensor; v: Tensor; average?: Tensor } {
    if (!this.#arenas) throw new Error("Cannot use parameters before allocate()");
    return this.#arenas;
  }

  #entry(name: string): Entry {
    const e = this.#entries.get(name);
    if (!e) throw new TypeError(`Cannot find parameter "${name}"`);
    return e;
  }

  /**
   * Allocates the arenas, initialises every parameter on the host from `seed` and uploads them; the
   * gradient and moment arenas start at zero.
   *
   * @param seed Seed of the initialisation.
   */
  allocate(seed: number): void {
    const engine = this.engine;
    const length = Math.max(ALIGN, this.#length);
    const make = (label: string) => engine.keep(engine.zeros([length], "f32", label));
    this.#arenas = {
      params: make("parameters"),
      grads: make("gradients"),
      m: make("adam m"),
      v: make("adam v"),
    };
    const host = new Float32Array(length);
    const normal = gaussian(seed);
    for (const e of this.#entries.values()) {
      const view = host.subarray(e.offset, e.offset + e.size);
      if (e.init.kind === "constant") view.fill(e.init.value);
      else for (let i = 0; i < view.length; i++) view[i] = (e.init.mean ?? 0) + e.init.std * normal();
    }
    this.#arenas.params.write(host);
    for (const e of this.#entries.values()) {
      const view = this.#view(this.#arenas.params, e.offset, e.shape, e.name);
      view.requiresGrad = true;
      view.grad = this.#view(this.#arenas.grads, e.offset, e.shape, `grad of ${e.name}`);
      this.#views.set(e.name, view);
    }
  }

  #view(arena: Tensor, offset: number, shape: readonly number[], label: string): Tensor {
    return new Tensor(this.engine, {
      buffer: arena.buffer,
      byteOffset: arena.byteOffset + offset * 4,
      shape,
      dtype: "f32",
      label,
      pooled: false,
    });
  }

  /**
   * The parameter tensor (a view into the arena, `requiresGrad` set, `grad` the view into the
   * gradient arena).
   *
   * @param name The parameter's name.
   * @returns Its tensor.
   */
  get(name: string): Tensor {
    const t = this.#views.get(name);
    if (!t) {
      throw new TypeError(`Cannot find parameter "${name}"${this.#arenas ? "" : " (store not allocated)"}`);
    }
    return t;
  }

  /**
   * One tensor viewing several parameters that are contiguous in the arena, concatenated along the
   * first dimension (they must share their inner dimensions and have no padding between them).
   *
   * @param names The parameters, in arena order.
   * @returns A view of shape [Σ rows, …inner], whose gradient is the matching view of the gradient arena.
   */
  span(names: readonly string[]): Tensor {
    const entries = names.map((n) => this.#entry(n));
    const first = entries[0]!;
    const inner = first.shape.slice(1);
    let rows = 0;
    let next = first.offset;
    for (const e of entries) {
      if (e.offset !== next || e.shape.slice(1).join() !== inner.join()) {
        throw new TypeError(`Cannot view parameters ${names.join(", ")} as one tensor: not contiguous`);
      }
      next = e.offset + e.size;
      rows += e.shape[0]!;
    }
    const shape = [rows, ...inner];
    const view = this.#view(this.arenas.params, first.offset, shape, names.join("+"));
    view.requiresGrad = true;
    view.grad = this.#view(this.arenas.grads, first.offset, shape, `grad of ${names.join("+")}`);
    return view;
  }

  /**
   * Allocates the arena of a moving average of the weights (see `emaUpdate`), starting as a copy of the
   * current weights; does nothing if it exists.
   */
  keepAverage(): void {
    const arenas = this.arenas;
    if (arenas.average) return;
    arenas.average = this.engine.keep(this.engine.empty([arenas.params.size], "f32", "weight average"));
    this.engine.runtime.copy(arenas.params, arenas.average);
  }

  /** Records zeroing the gradient arena (after an optimiser step). */
  zeroGrads(): void {
    this.engine.runtime.clear(this.arenas.grads);
  }

  /**
   * Reads one arena back and splits it by parameter.
   *
   * @param arena Which arena: `params`, `grads`, `m`, `v` or `average`.
   * @returns A map from parameter name to its values.
   */
  async read(arena: ArenaName = "params"): Promise<Map<string, Float32Array<ArrayBuffer>>> {
    const all = await this.#arena(arena).read() as Float32Array<ArrayBuffer>;
    const out = new Map<string, Float32Array<ArrayBuffer>>();
    for (const e of this.#entries.values()) out.set(e.name, all.slice(e.offset, e.offset + e.size));
    return out;
  }

  /**
   * Overwrites one arena from values by parameter name; every parameter must be present with its size.
   *
   * @param values Values by parameter name.
   * @param arena Which arena to write.
   * @param source Names the origin of the values in errors (e.g. a file path).
   */
  write(
    values: ReadonlyMap<string, ArrayLike<number>>,
    arena: ArenaName = "params",
    source = "values",
  ): void {
    const target = this.#arena(arena);
    const host = new Float32Array(target.size);
    for (const e of this.#entries.values()) {
      const v = values.get(e.name);
      if (!v) throw new TypeError(`Cannot load ${source}: parameter "${e.name}" is missing`);
      if (v.length !== e.size) {
        throw new TypeError(
          `Cannot load ${source}: parameter "${e.name}" has ${v.length} values, expected ${e.size}`,
        );
      }
      host.set(v, e.offset);
    }
    target.write(host);
  }

  #arena(name: ArenaName): Tensor {
    const arena = this.arenas[name];
    if (!arena) throw new Error(`Cannot use the ${name} arena: keepAverage() was not called`);
    return arena;
  }

  /** Returns the arenas to the pool. */
  dispose(): void {
    if (!this.#arenas) return;
    for (const t of Object.values(this.#arenas)) t.dispose();
    this.#arenas = null;
    this.#views.clear();
  }
}

/** A seeded standard-normal generator (mulberry32 + Box–Muller), for reproducible initialisation. */
export function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const theta = 2 * Math.PI * uniform();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };
}
