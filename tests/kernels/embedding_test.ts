import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randint, randn, rng } from "../_check.ts";
import { embedding } from "../../src/tensor/ops/embedding.ts";
import { embeddingBackwardRef, embeddingRef } from "../ref/embedding.ts";

/** Ids as a batch has them: a pad id for a share `pad` of positions, the rest skewed towards small ids. */
function batchIds(n: number, vocab: number, pad: number, seed: number): Int32Array<ArrayBuffer> {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => (r() < pad ? 2 : Math.floor(vocab * r() ** 3)));
}

async function checkBoth(
  label: string,
  ids: Int32Array<ArrayBuffer>,
  idsShape: number[],
  vocab: number,
  cols: number,
  tolerance: { atol: number; rtol: number },
): Promise<void> {
  const engine = await testEngine();
  const n = ids.length;
  const table = randn(vocab * cols, vocab + cols, 1);
  const dout = randn(n * cols, n + 3, 1);
  await engine.tidy(async () => {
    const tt = engine.tensor(table, [vocab, cols]);
    tt.requiresGrad = true;
    engine.startTape();
    const out = embedding(tt, engine.tensor(ids, idsShape));
    assert.deepEqual(out.shape, [...idsShape, cols]);
    engine.fill(engine.gradOf(tt), 0.5); // backward must add to what is there
    engine.backward(out, engine.tensor(dout, out.shape));
    assertClose(await out.read(), embeddingRef(table, ids, vocab, cols), {
      atol: 0,
      rtol: 0,
      name: `${label} out`,
    });
    const ref = embeddingBackwardRef(dout, ids, vocab, cols).map((g) => g + 0.5);
    assertClose(await tt.grad!.read(), ref, { ...tolerance, name: `${label} dtable` });
  });
}

Deno.test(
  { name: "embedding matches the float64 reference at N=29 V=37 E=5 with out-of-range ids", ignore },
  async () => {
    const ids = randint(29, 0, 37, 1);
    ids[3] = -1;
    ids[7] = 37;
    ids[11] = 1 << 30;
    ids[12] = ids[13]!;
    await checkBoth("small", ids, [29], 37, 5, { atol: 1e-6, rtol: 1e-6 });
  },
);

Deno.test({
  name: "embedding backward sums many duplicates across segments at ids [8,125], V=7, E=3",
  ignore,
}, async () => {
  await checkBoth("duplicates", randint(1000, 0, 7, 2), [8, 125], 7, 3, { atol: 1e-4, rtol: 1e-5 });
});

Deno.test({
  name: "embedding backward sums in position order, segment by segment: the exact float32 bits",
  ignore,
}, async () => {
  const engine = await testEngine();
  // Ids spread over [0, 600): two radix passes, so stability across passes matters too.
  const n = 1000, vocab = 600, cols = 3, segment = 64;
  const ids = randint(n, 0, 7, 12).map((id) => id * 97);
  const dout = randn(n * cols, 13, 1);
  // Emulate the kernels' order: runs of one id within a segment of the sorted order (stable: by
  // position), each summed in float32, then the run sums of an id in order.
  const expected = new Float32Array(vocab * cols);
  let offset = 0;
  for (let v = 0; v < vocab; v++) {
    const positions = [...ids.keys()].filter((t) => ids[t] === v);
    for (let e = 0; e < cols; e++) {
      let total = 0, run = 0;
      for (const [i, t] of positions.entries()) {
        if (i > 0 && (offset + i) % segment === 0) {
          total = Math.fround(total + run);
          run = 0;
        }
        run = Math.fround(run + dout[t * cols + e]!);
      }
      expected[v * cols + e] = Math.fround(total + run);
    }
    offset += positions.length;
  }
  await engine.tidy(async () => {
    const table = engine.zeros([vocab, cols]);
    table.requiresGrad = true;
    engine.startTape();
    const out = embedding(table, engine.tensor(ids, [n]));
    engine.backward(out, engine.tensor(dout, out.shape));
    assert.deepEqual(await table.grad!.read(), expected);
  });
});

Deno.test(
  { name: "embedding backward with one id everywhere and runs ending on segment edges", ignore },
  async () => {
    await checkBoth("one id", new Int32Array(701).fill(1), [701], 3, 2, { atol: 1e-4, rtol: 1e-5 });
    const edges = Int32Array.from({ length: 512 }, (_, t) => Math.floor(t / 64) % 4);
    await checkBoth("edges", edges, [2, 256], 4, 5, { atol: 1e-4, rtol: 1e-5 });
  },
);

Deno.test(
  { name: "embedding with one radix pass (V=200) and three (V=70000) at odd N", ignore },
  async () => {
    await checkBoth("V=200", batchIds(513, 200, 0.3, 3), [513], 200, 4, { atol: 1e-5, rtol: 1e-5 });
    await checkBoth("V=70000", batchIds(300, 70000, 0.2, 4), [300], 70000, 3, { atol: 1e-5, rtol: 1e-5 });
  },
);

Deno.test(
  { name: "embedding backward at N=16384 V=8000 E=64 (40% pads) is right and deterministic", ignore },
  async () => {
    const engine = await testEngine();
    const n = 16384, vocab = 8000, cols = 64;
    const ids = batchIds(n, vocab, 0.4, 5);
    const dout = randn(n * cols, 6, 1);
    const run = () =>
      engine.tidy(async () => {
        const table = engine.zeros([vocab, cols]);
        table.requiresGrad = true;
        engine.startTape();
        const out = embedding(table, engine.tensor(ids, [64, 256]));
        engine.backward(out, engine.tensor(dout, out.shape));
        return await table.grad!.read();
      });
    const first = await run();
    const second = await run();
    assert.deepEqual(first, second);
    assertClose(first, embeddingBackwardRef(dout, ids, vocab, cols), {
      atol: 1e-4,
      rtol: 1e-5,
      name: "dtable",
    });
  },
);

Deno.test({ name: "embedding gradient matches finite differences", ignore }, async () => {
  const ids = new Int32Array([1, 4, 1, 0, 1, 3, 4]);
  await checkGradients(await testEngine(), {
    name: "embedding",
    inputs: { table: { data: randn(5 * 3, 9), shape: [5, 3] } },
    wrt: ["table"],
    constants: (engine) => ({ ids: engine.tensor(ids, [7]) }),
    forward: ({ table, ids }) => embedding(table!, ids!),
  });
});

Deno.test({ name: "embedding rejects a table that is not 2-D f32 and float ids", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    assert.throws(
      () => embedding(engine.zeros([4]), engine.zeros([2], "i32")),
      (e: Error) => e instanceof TypeError && /Cannot run embedding: table has shape \[4\]/.test(e.message),
    );
    assert.throws(() => embedding(engine.zeros([4, 2]), engine.zeros([2])), TypeError);
  });
});
