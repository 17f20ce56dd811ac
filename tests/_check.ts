/**
 * Numeric test helpers: seeded random inputs, closeness checks against float64 references, and
 * finite-difference gradient checks of GPU ops.
 */
import { AssertionError } from "node:assert";
import { type KernelSpec, parseBindings } from "../src/gpu/kernel.ts";
import type { Engine } from "../src/tensor/engine.ts";
import type { Tensor } from "../src/tensor/tensor.ts";

/** A small seeded generator (mulberry32) so that test inputs are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` standard-normal draws (Box–Muller) times `scale`. */
export function randn(n: number, seed: number, scale = 1): Float32Array<ArrayBuffer> {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return out;
}

/** `n` integers uniform in [lo, hi). */
export function randint(n: number, lo: number, hi: number, seed: number): Int32Array<ArrayBuffer> {
  const r = rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + Math.floor(r() * (hi - lo));
  return out;
}

/**
 * Asserts `|actual − expected| <= atol + rtol·|expected|` elementwise; NaN never passes. The message
 * names the first failing index and the worst error.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  options: { atol?: number; rtol?: number; name?: string } = {},
): void {
  const { atol = 1e-5, rtol = 1e-4, name = "value" } = options;
  if (actual.length !== expected.length) {
    throw new AssertionError({ message: `${name}: length ${actual.length}, expected ${expected.length}` });
  }
  let worst = 0;
  let worstIndex = -1;
  let failures = 0;
  let first = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const err = Math.abs(a - e);
    const ok = err <= atol + rtol * Math.abs(e);
    if (!ok || Number.isNaN(a) || Number.isNaN(e)) {
      failures++;
      if (first < 0) first = i;
    }
    const scaled = err / (atol + rtol * Math.abs(e));
    if (!(scaled <= worst)) {
      worst = scaled;
      worstIndex = i;
    }
  }
  if (failures > 0) {
    throw new AssertionError({
      message: `${name}: ${failures}/${actual.length} elements differ; first at ${first}: ` +
        `got ${actual[first]}, expected ${expected[first]}; worst at ${worstIndex}: got ${
          actual[worstIndex]
        }, ` +
        `expected ${expected[worstIndex]} (atol ${atol}, rtol ${rtol})`,
    });
  }
}

/**
 * Finite-difference check of an op's gradients. `forward` builds the op from host inputs and returns
 * its output; the objective is `sum(out · w)` with fixed random weights `w`. For `probes` random
 * elements of each input marked in `wrt`, the analytic gradient from `engine.backward` is compared
 * with the central difference `(f(x+h) − f(x−h)) / 2h`, evaluated in float64 on the host from
 * float32 GPU outputs.
 */
export async function checkGradients(
  engine: Engine,
  options: {
    name: string;
    inputs: Record<string, { data: Float32Array<ArrayBuffer>; shape: number[] }>;
    wrt: string[];
    forward: (t: Record<string, Tensor>) => Tensor;
    /** Extra non-differentiable inputs (ids, masks), passed as-is. */
    constants?: (engine: Engine) => Record<string, Tensor>;
    probes?: number;
    h?: number;
    atol?: number;
    rtol?: number;
    seed?: number;
  },
): Promise<void> {
  const { probes = 12, h = 1e-2, atol = 2e-3, rtol = 2e-2, seed = 7 } = options;
  const evaluate = async (inputs: Record<string, Float32Array<ArrayBuffer>>, grad: boolean) => {
    return await engine.tidy(() => {
      const tensors: Record<string, Tensor> = { ...(options.constants?.(engine) ?? {}) };
      for (const [name, { shape }] of Object.entries(options.inputs)) {
        const t = engine.tensor(inputs[name]!, shape);
        t.requiresGrad = grad && options.wrt.includes(name);
        tensors[name] = t;
      }
      if (grad) engine.startTape();
      const out = options.forward(tensors);
      const w = engine.tensor(randn(out.size, seed + 1), out.shape);
      const reads: Promise<unknown>[] = [out.read()];
      if (grad) {
        engine.backward(out, w);
        for (const name of options.wrt) reads.push(engine.gradOf(tensors[name]!).read());
      }
      return Promise.all(reads);
    });
  };
  const base: Record<string, Float32Array<ArrayBuffer>> = {};
  for (const [name, { data }] of Object.entries(options.inputs)) base[name] = data;
  const results = await evaluate(base, true);
  const out0 = results[0] as Float32Array;
  const weights = randn(out0.length, seed + 1);
  const objective = (out: Float32Array) => {
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i]! * weights[i]!;
    return s;
  };
  const r = rng(seed);
  for (const [k, name] of options.wrt.entries()) {
    const analytic = results[k + 1] as Float32Array;
    const data = base[name]!;
    const got: number[] = [];
    const want: number[] = [];
    for (let p = 0; p < Math.min(probes, data.length); p++) {
      const i = Math.floor(r() * data.length);
      const plus = new Float32Array(data);
      const minus = new Float32Array(data);
      plus[i] = data[i]! + h;
      minus[i] = data[i]! - h;
      const [fp] = await evaluate({ ...base, [name]: plus }, false) as [Float32Array];
      const [fm] = await evaluate({ ...base, [name]: minus }, false) as [Float32Array];
      want.push((objective(fp) - objective(fm)) / (plus[i]! - minus[i]!));
      got.push(analytic[i]!);
    }
    assertClose(got, want, { atol, rtol, name: `${options.name}: d/d${name}` });
  }
}

/**
 * Compiles a kernel (failing on any compiler error) and checks that its WGSL declares exactly the spec's
 * bindings: storage names in order reads then writes, with read / read_write access, at bindings 0…n−1,
 * and the uniform struct `Params` with the spec's fields and types at binding n (none without uniforms).
 */
export async function assertKernelSpec(engine: Engine, spec: KernelSpec): Promise<void> {
  await engine.runtime.compile(spec);
  const { storage, uniforms } = parseBindings(spec.code);
  const expect = (actual: unknown, expected: unknown, what: string) => {
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      throw new AssertionError({
        message: `${spec.name}: ${what} ${JSON.stringify(actual)}, spec says ${JSON.stringify(expected)}`,
      });
    }
  };
  expect(storage.map((s) => s.name), [...spec.reads, ...spec.writes], "storage bindings");
  expect(
    storage.map((s) => s.access),
    [...spec.reads.map(() => "read"), ...spec.writes.map(() => "read_write")],
    "access modes",
  );
  expect(storage.map((s) => s.binding), storage.map((_, i) => i), "binding indices");
  if (spec.uniforms) {
    expect(uniforms?.fields, Object.entries(spec.uniforms), "uniform fields");
    expect(uniforms?.binding, storage.length, "uniform binding");
  } else {
    expect(uniforms, null, "uniform struct");
  }
}
