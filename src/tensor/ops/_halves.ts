/**
 * f16 copies of matmul operands, for the tensor-core products that read `halves` (kernels/matmul_tc.ts):
 * made by `TO_HALVES` and reused by every product that reads the same bytes unchanged before the next
 * flush — a weight in the forward and the input-gradient products, an activation in the forward and
 * the weight-gradient products, an output gradient in both backward products. A copy is valid while the
 * runtime's write count of its source buffer ({@linkcode GpuRuntime.version}) is the one seen when it
 * was made; the copies are released once the flush that submits their work has happened. While a
 * recording is made nothing is reused or kept: a replay must redo the conversions it reads.
 *
 * @module
 */
import { TO_HALVES } from "../../../kernels/matmul_tc.ts";
import type { GpuRuntime } from "../../gpu/runtime.ts";
import { type Engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";

interface Copy {
  readonly byteOffset: number;
  readonly byteLength: number;
  readonly version: number;
  readonly copy: Tensor;
}

/** Per runtime: the copies made since the last flush, by source buffer. */
const caches = new WeakMap<GpuRuntime, Map<GPUBuffer, Copy[]>>();

/**
 * Records writing the f16 values of `x` into `copy` (two per u32 word; `copy` holds ⌈size/2⌉ words).
 *
 * @param engine The engine.
 * @param x An f32 tensor.
 * @param copy Where the f16 values go.
 */
export function writeHalves(engine: Engine, x: Tensor, copy: Tensor): void {
  engine.runtime.dispatch(TO_HALVES, { inp: x, out: copy }, { n: x.size }, grid1d(Math.ceil(x.size / 512)));
}

function convert(engine: Engine, x: Tensor): Tensor {
  const copy = engine.empty([Math.ceil(x.size / 2)], "u32", "f16 operand");
  writeHalves(engine, x, copy);
  return copy;
}

/**
 * The f16 copy of `x` (two values per u32 word), made now or reused.
 *
 * @param engine The engine.
 * @param x An f32 tensor.
 * @returns The copy, and `release`, to call once the product that reads it is recorded.
 */
export function halvesOf(engine: Engine, x: Tensor): { copy: Tensor; release: () => void } {
  const runtime = engine.runtime;
  if (runtime.recording) {
    const copy = convert(engine, x);
    return { copy, release: () => copy.dispose() };
  }
  let cache = caches.get(runtime);
  if (!cache) caches.set(runtime, cache = new Map());
  const version = runtime.version(x.buffer);
  const copies = cache.get(x.buffer) ?? [];
  const found = copies.find((c) =>
    c.byteOffset === x.byteOffset && c.byteLength === x.byteLength && c.version === version
  );
  if (found) return { copy: found.copy, release: () => {} };
  const copy = engine.keep(convert(engine, x));
  if (cache.size === 0) {
    const flushed = cache;
    runtime.afterFlush(() => {
      for (const list of flushed.values()) for (const c of list) c.copy.dispose();
      flushed.clear();
    });
  }
  copies.push({ byteOffset: x.byteOffset, byteLength: x.byteLength, version, copy });
  cache.set(x.buffer, copies);
  return { copy, release: () => {} };
}
