/**
 * The `embedding` op: a row gather with a deterministic scatter-add backward (a stable GPU radix sort
 * of the ids, then segmented sums; kernels/embedding.ts explains why not float atomics).
 *
 * @module
 */
import {
  EMBEDDING_BACKWARD_BOUNDS,
  EMBEDDING_BACKWARD_PARTIAL,
  EMBEDDING_BACKWARD_SUM,
  EMBEDDING_FORWARD,
  EMBEDDING_SORT_BLOCK,
  EMBEDDING_SORT_HISTOGRAM,
  EMBEDDING_SORT_SCAN,
  EMBEDDING_SORT_SCATTER,
} from "../../../kernels/embedding.ts";
import { type Engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { elementGrid } from "./_shared.ts";

/**
 * Records dtable += scatter-add of dout [N, E] by ids [N] (ids outside [0, V) skipped), deterministically.
 * Scratch: 4·N + 256·⌈N/256⌉ + 2·V words and N·E floats, released once recorded.
 */
function scatterAdd(
  engine: Engine,
  ids: Tensor,
  dout: Tensor,
  dtable: Tensor,
  vocab: number,
  cols: number,
): void {
  const n = ids.size;
  if (n === 0 || cols === 0 || vocab === 0) return;
  const rt = engine.runtime;
  const blocks = Math.ceil(n / EMBEDDING_SORT_BLOCK);
  const bits = 32 - Math.clz32(vocab); // enough for the key `vocab` that marks out-of-range ids
  const passes = Math.max(1, Math.ceil(bits / 8));
  const scratch = {
    keys: [engine.empty([n], "u32", "embedding keys"), engine.empty([n], "u32", "embedding keys")],
    vals: [engine.empty([n], "u32", "embedding positions"), engine.empty([n], "u32", "embedding positions")],
    hist: engine.empty([256 * blocks], "u32", "embedding histogram"),
    bounds: engine.empty([2 * vocab], "u32", "embedding bounds"),
    partial: engine.empty([n, cols], "f32", "embedding partial sums"),
  };
  const blockGrid = grid1d(blocks);
  let keysIn: Tensor = ids;
  let valsIn: Tensor = ids;
  for (let pass = 0; pass < passes; pass++) {
    const keysOut = scratch.keys[pass % 2]!;
    const valsOut = scratch.vals[pass % 2]!;
    const shift = 8 * pass;
    rt.dispatch(
      EMBEDDING_SORT_HISTOGRAM,
      { keys: keysIn, hist: scratch.hist },
      { n, blocks, shift, vocab },
      blockGrid,
    );
    rt.dispatch(EMBEDDING_SORT_SCAN, { hist: scratch.hist }, { m: 256 * blocks }, [1]);
    rt.dispatch(
      EMBEDDING_SORT_SCATTER,
      { keys_in: keysIn, vals_in: valsIn, hist: scratch.hist, keys_out: keysOut, vals_out: valsOut },
      { n, blocks, shift, vocab, first: pass === 0 ? 1 : 0 },
      blockGrid,
    );
    keysIn = keysOut;
    valsIn = valsOut;
  }
  rt.clear(scratch.bounds);
  rt.dispatch(
    EMBEDDING_BACKWARD_BOUNDS,
    { keys: keysIn, bounds: scratch.bounds },
    { n, vocab },
    elementGrid(n),
  );
  rt.dispatch(
    EMBEDDING_BACKWARD_PARTIAL,
    { keys: keysIn, vals: valsIn, dout, partial: scratch.partial },
    { n, cols, vocab },
    elementGrid(n * cols),
  );
  rt.dispatch(
    EMBEDDING_BACKWARD_SUM,
    { bounds: scratch.bounds, partial: scratch.partial, dtable },
    { vocab, cols },
    elementGrid(vocab * cols),
  );
  for (const t of [...scratch.keys, ...scratch.vals, scratch.hist, scratch.bounds, scratch.partial]) {
    t.dispose();
  }
}

/**
 * Embedding lookup: row `ids[...]` of `table`. Ids outside [0, V) give zero rows and no gradient.
 * Backward adds into the table's gradient; duplicate ids sum, in a fixed order (same bits every run).
 *
 * @example Usage
 * ```ts
 * import { embedding, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const table = engine.tensor(new Float32Array([0, 0, 1, 1, 2, 2]), [3, 2]);
 * const ids = engine.tensor(new Int32Array([2, 0, 2]), [3]);
 * console.log(await embedding(table, ids).read()); // [2, 2, 0, 0, 2, 2]
 * ```
 * @param table f32 [V, E].
 * @param ids i32 (or u32) of any shape [...].
 * @returns f32 [..., E].
 * @throws {TypeError} If `table` is not 2-D f32 or `ids` is not i32/u32.
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  const engine = table.engine;
  if (table.shape.length !== 2 || table.dtype !== "f32") {
    throw new TypeError(
      `Cannot run embedding: table has shape [${table.shape.join(",")}] (${table.dtype}), expected f32 [V,E]`,
    );
  }
  if (ids.dtype === "f32") {
    throw new TypeError(`Cannot run embedding: ids has dtype f32, expected i32`);
  }
  const [vocab, cols] = table.shape as [number, number];
  const out = engine.empty([...ids.shape, cols], "f32", "embedding");
  const n = ids.size * cols;
  if (n > 0) {
    engine.runtime.dispatch(EMBEDDING_FORWARD, { table, ids, out }, { n, cols, vocab }, elementGrid(n));
  }
  engine.record({
    name: "embedding",
    inputs: [table],
    outputs: [out],
    backward: () => {
      if (!table.requiresGrad) return;
      scatterAdd(engine, ids, engine.gradOf(out), engine.gradOf(table), vocab, cols);
    },
  });
  return out;
}
