import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randint, randn, rng } from "../_check.ts";
import {
  add,
  addScaled,
  argmax,
  concat,
  l2Norm,
  maskedFill,
  mean,
  mixRows,
  mul,
  reshape,
  scale,
  split,
  sum,
  sumOfSquares,
} from "../../src/tensor/ops/elementwise.ts";
import {
  argmaxRef,
  binaryRef,
  columnsRef,
  concatRef,
  maskedFillRef,
  mixRowsRef,
  sumRowsRef,
  sumsRef,
} from "../ref/elementwise.ts";

const TOL = { atol: 1e-5, rtol: 1e-5 };
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

for (
  const [aShape, bShape] of [
    [[3, 5, 7], [7]],
    [[37, 65], [37, 65]],
    [[300, 3], [3]],
    [[2, 9, 11], [9, 11]],
    [[5], []],
  ] as const
) {
  for (const op of ["add", "mul"] as const) {
    Deno.test(
      { name: `${op} matches the float64 reference for a [${aShape}] and b [${bShape}]`, ignore },
      async () => {
        const engine = await testEngine();
        const a = randn(size(aShape), 1);
        const b = randn(size(bShape), 2);
        const dout = randn(a.length, 3);
        await engine.tidy(async () => {
          const at = engine.tensor(a, aShape);
          const bt = engine.tensor(b, bShape);
          at.requiresGrad = true;
          bt.requiresGrad = true;
          engine.startTape();
          const y = (op === "add" ? add : mul)(at, bt);
          engine.backward(y, engine.tensor(dout, aShape));
          assert.deepEqual(y.shape, aShape);
          assertClose(await y.read(), binaryRef(op, a, b), { ...TOL, name: op });
          const da = op === "add" ? dout : binaryRef("mul", dout, b);
          assertClose(await at.grad!.read(), da, { ...TOL, name: "da" });
          const db = sumRowsRef(dout, b.length, op === "add" ? undefined : a);
          assertClose(await bt.grad!.read(), db, { atol: 1e-4, rtol: 1e-5, name: "db" });
        });
      },
    );
  }
}

Deno.test({ name: "scale and addScaled match the reference, forward and backward", ignore }, async () => {
  const engine = await testEngine();
  const n = 7 * 10001;
  const a = randn(n, 4);
  const b = randn(n, 5);
  const dout = randn(n, 6);
  await engine.tidy(async () => {
    const at = engine.tensor(a, [7, n / 7]);
    const bt = engine.tensor(b, [7, n / 7]);
    at.requiresGrad = true;
    bt.requiresGrad = true;
    engine.startTape();
    const s = scale(at, -0.75);
    engine.backward(s, engine.tensor(dout, s.shape));
    assertClose(await s.read(), a.map((v) => -0.75 * v), { ...TOL, name: "scale" });
    assertClose(await at.grad!.read(), dout.map((v) => -0.75 * v), { ...TOL, name: "dscale" });
    engine.startTape();
    const y = addScaled(at, bt, 0.6, -1.5);
    engine.backward(y, engine.tensor(dout, y.shape));
    assertClose(await y.read(), a.map((v, i) => 0.6 * v - 1.5 * b[i]!), { ...TOL, name: "addScaled" });
    // a's gradient accumulates over both tapes.
    assertClose(await at.grad!.read(), dout.map((v) => -0.15 * v), { ...TOL, name: "da" });
    assertClose(await bt.grad!.read(), dout.map((v) => -1.5 * v), { ...TOL, name: "db" });
  });
});

Deno.test(
  { name: "mixRows matches the reference at B=5 L=7 E=3, forward and backward", ignore },
  async () => {
    const engine = await testEngine();
    const shape = [5, 7, 3];
    const n = size(shape);
    const a = randn(n, 7);
    const b = randn(n, 8);
    const r = rng(9);
    const gammas = Array.from({ length: 5 }, () => r());
    const alpha = Float32Array.from(gammas, (g) => Math.sqrt(g));
    const beta = Float32Array.from(gammas, (g) => Math.sqrt(1 - g));
    const dout = randn(n, 10);
    await engine.tidy(async () => {
      const at = engine.tensor(a, shape);
      const bt = engine.tensor(b, shape);
      at.requiresGrad = true;
      bt.requiresGrad = true;
      engine.startTape();
      const y = mixRows(at, bt, engine.tensor(alpha, [5]), engine.tensor(beta, [5]));
      engine.backward(y, engine.tensor(dout, shape));
      assertClose(await y.read(), mixRowsRef(a, b, alpha, beta), { ...TOL, name: "mix" });
      const zeros = new Float32Array(n);
      assertClose(await at.grad!.read(), mixRowsRef(dout, zeros, alpha, alpha), { ...TOL, name: "da" });
      assertClose(await bt.grad!.read(), mixRowsRef(zeros, dout, beta, beta), { ...TOL, name: "db" });
    });
  },
);

for (const invert of [false, true]) {
  Deno.test(
    { name: `maskedFill matches the reference on [B,L,E] and [N,E] with invert=${invert}`, ignore },
    async () => {
      const engine = await testEngine();
      for (const shape of [[3, 11, 5], [37, 64]]) {
        const n = size(shape);
        const cols = shape.at(-1)!;
        const x = randn(n, 11);
        const mask = Uint32Array.from(randint(n / cols, 0, 2, 12));
        const dout = randn(n, 13);
        await engine.tidy(async () => {
          const xt = engine.tensor(x, shape);
          xt.requiresGrad = true;
          engine.startTape();
          const y = maskedFill(xt, engine.tensor(mask, shape.slice(0, -1)), -2.5, { invert });
          engine.backward(y, engine.tensor(dout, shape));
          assertClose(await y.read(), maskedFillRef(x, mask, cols, -2.5, invert), { ...TOL, name: "fill" });
          assertClose(await xt.grad!.read(), maskedFillRef(dout, mask, cols, 0, invert), {
            ...TOL,
            name: "dx",
          });
        });
      }
    },
  );
}

Deno.test(
  { name: "concat and split along the last dim match the reference, forward and backward", ignore },
  async () => {
    const engine = await testEngine();
    const lead = [3, 7];
    const rows = size(lead);
    const widths = [5, 1, 64];
    const total = 70;
    const parts = widths.map((w, k) => randn(rows * w, 20 + k));
    const dout = randn(rows * total, 30);
    await engine.tidy(async () => {
      const ts = parts.map((p, k) => engine.tensor(p, [...lead, widths[k]!]));
      ts[0]!.requiresGrad = true;
      ts[2]!.requiresGrad = true;
      engine.startTape();
      const y = concat(ts);
      assert.deepEqual(y.shape, [...lead, total]);
      engine.backward(y, engine.tensor(dout, y.shape));
      const expected = concatRef(parts, widths, rows);
      assertClose(await y.read(), expected, { ...TOL, name: "concat" });
      assertClose(await ts[0]!.grad!.read(), columnsRef(dout, total, 0, 5), { ...TOL, name: "d0" });
      assert.equal(ts[1]!.grad, null);
      assertClose(await ts[2]!.grad!.read(), columnsRef(dout, total, 6, 64), { ...TOL, name: "d2" });

      const x = engine.tensor(Float32Array.from(expected), [...lead, total]);
      x.requiresGrad = true;
      engine.startTape();
      const pieces = split(x, [2, 67, 1]);
      assert.deepEqual(pieces.map((p) => p.shape), [[...lead, 2], [...lead, 67], [...lead, 1]]);
      const d1 = randn(rows * 67, 31);
      engine.backward(pieces[1]!, engine.tensor(d1, pieces[1]!.shape));
      assertClose(await pieces[0]!.read(), columnsRef(expected, total, 0, 2), { ...TOL, name: "piece 0" });
      assertClose(await pieces[1]!.read(), columnsRef(expected, total, 2, 67), { ...TOL, name: "piece 1" });
      assertClose(await pieces[2]!.read(), columnsRef(expected, total, 69, 1), { ...TOL, name: "piece 2" });
      const dx = concatRef([new Float32Array(rows * 2), d1, new Float32Array(rows)], [2, 67, 1], rows);
      assertClose(await x.grad!.read(), dx, { ...TOL, name: "dx" });
    });
  },
);

Deno.test(
  { name: "concat of more inputs than one dispatch reads, one repeated, matches the reference", ignore },
  async () => {
    const engine = await testEngine();
    const rows = 37;
    const widths = [3, 1, 8, 2, 5, 3];
    const total = widths.reduce((a, b) => a + b, 0);
    const allTotal = total + 1;
    const parts = widths.map((w, k) => randn(rows * w, 50 + k));
    const dout = randn(rows * allTotal, 60);
    await engine.tidy(async () => {
      const ts = parts.map((p, k) => engine.tensor(p, [rows, widths[k]!]));
      ts[1]!.requiresGrad = true;
      engine.startTape();
      // The second input again in last place: its gradient adds both column blocks.
      const all = [...ts.slice(0, 5), ts[1]!, ts[5]!];
      const y = concat(all);
      engine.backward(y, engine.tensor(dout, y.shape));
      const allWidths = [3, 1, 8, 2, 5, 1, 3];
      const expected = concatRef([...parts.slice(0, 5), parts[1]!, parts[5]!], allWidths, rows);
      assertClose(await y.read(), expected, { ...TOL, name: "concat of 7" });
      const d1 = columnsRef(dout, allTotal, 3, 1).map((v, r) => v + columnsRef(dout, allTotal, 19, 1)[r]!);
      assertClose(await ts[1]!.grad!.read(), d1, { ...TOL, name: "d1" });
    });
  },
);

Deno.test({ name: "reshape is a view and passes gradients through", ignore }, async () => {
  const engine = await testEngine();
  const x = randn(24, 40);
  const dout = randn(24, 41);
  await engine.tidy(async () => {
    const xt = engine.tensor(x, [2, 3, 4]);
    xt.requiresGrad = true;
    engine.startTape();
    const y = reshape(xt, [6, -1]);
    assert.deepEqual(y.shape, [6, 4]);
    assert.equal(y.buffer, xt.buffer);
    const z = scale(y, 2);
    engine.backward(z, engine.tensor(dout, [6, 4]));
    assertClose(await y.read(), x, { ...TOL, name: "view" });
    assertClose(await xt.grad!.read(), dout.map((v) => 2 * v), { ...TOL, name: "dx" });
    assert.throws(() => reshape(xt, [5, -1]), TypeError);
    assert.throws(() => reshape(xt, [-1, -1]), TypeError);
  });
});

for (const n of [1, 37, 4097, 70001, 4096 * 4097 + 3]) {
  Deno.test(
    { name: `sum, mean, sumOfSquares and l2Norm match the reference at n=${n}`, ignore },
    async () => {
      const engine = await testEngine();
      const r = rng(n);
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) x[i] = 2 * r() - 1;
      const ref = sumsRef(x);
      await engine.tidy(async () => {
        const xt = engine.tensor(x, [n]);
        const [s, m, q, l] = await Promise.all(
          [sum(xt), mean(xt), sumOfSquares(xt), l2Norm(xt)].map((t) => t.read()),
        );
        // f32 tree sums: error grows with Σ|x|, not with the (small) signed total.
        const atol = 1e-6 * ref.abs + 1e-7;
        assertClose(s!, [ref.sum], { atol, rtol: 0, name: "sum" });
        assertClose(m!, [ref.sum / n], { atol: atol / n, rtol: 0, name: "mean" });
        assertClose(q!, [ref.squares], { atol: 0, rtol: 1e-5, name: "sumOfSquares" });
        assertClose(l!, [Math.sqrt(ref.squares)], { atol: 0, rtol: 1e-5, name: "l2Norm" });
        // Fixed-order reduction: the same input gives the same bits.
        assert.deepEqual(await sum(xt).read(), s);
      });
    },
  );
}

Deno.test(
  { name: "reductions of a tensor larger than one storage binding run in chunks", ignore },
  async () => {
    const engine = await testEngine();
    const limit = engine.runtime.gpu.limits.maxStorageBufferBindingSize / 4;
    if (limit > 2 ** 26) return; // only where bindings are small (lavapipe: 128 MiB); a real GPU would need GiBs here
    const n = limit + 12345;
    engine.poison = false; // the poison fill binds the whole tensor, which is what this test exceeds
    try {
      await engine.tidy(async () => {
        const x = engine.tensor(new Float32Array(n).fill(1), [n]);
        x.requiresGrad = true;
        engine.startTape();
        const norm = l2Norm(x);
        engine.backward(norm);
        assert.deepEqual(await sum(x).read(), new Float32Array([n]));
        assert.deepEqual(await sumOfSquares(x).read(), new Float32Array([n]));
        assertClose(await norm.read(), [Math.sqrt(n)], { atol: 0, rtol: 1e-6, name: "l2Norm" });
        const dx = await x.grad!.read();
        for (const i of [0, limit - 1, limit, n - 1]) {
          assertClose([dx[i]!], [1 / Math.sqrt(n)], { atol: 0, rtol: 1e-5, name: `dx[${i}]` });
        }
      });
    } finally {
      engine.poison = true;
    }
  },
);

Deno.test({
  name: "argmax matches the reference on 8003-wide rows and resolves ties to the lowest index",
  ignore,
}, async () => {
  const engine = await testEngine();
  const [rows, cols] = [37, 8003];
  const x = randn(rows * cols, 50);
  const r = rng(51);
  for (let row = 0; row < rows; row++) {
    // Plant an exact tie between two random columns above everything else.
    const i = Math.floor(r() * cols), j = Math.floor(r() * cols);
    x[row * cols + i] = 10;
    x[row * cols + j] = 10;
  }
  x.fill(-Infinity, 0, cols); // a row of -inf: index 0
  await engine.tidy(async () => {
    const idx = argmax(engine.tensor(x, [rows, cols]));
    assert.equal(idx.dtype, "i32");
    assert.deepEqual(await idx.read(), argmaxRef(x, cols));
    const small = randn(3 * 5 * 7, 52);
    const idx3 = argmax(engine.tensor(small, [3, 5, 7]));
    assert.deepEqual(idx3.shape, [3, 5]);
    assert.deepEqual(await idx3.read(), argmaxRef(small, 7));
  });
});

Deno.test({ name: "elementwise ops reject wrong shapes and dtypes", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    const x = engine.zeros([2, 3, 4]);
    assert.throws(() => add(x, engine.zeros([3])), TypeError);
    assert.throws(() => mul(x, engine.zeros([2, 3, 4, 1])), TypeError);
    assert.throws(() => addScaled(x, engine.zeros([24]), 1, 1), TypeError);
    assert.throws(() => mixRows(x, x, engine.zeros([3]), engine.zeros([2])), TypeError);
    assert.throws(() => maskedFill(x, engine.zeros([2, 4], "u32"), 0), TypeError);
    assert.throws(() => maskedFill(x, engine.zeros([2, 3]), 0), TypeError);
    assert.throws(() => concat([x, engine.zeros([2, 4, 4])]), TypeError);
    assert.throws(() => concat([]), TypeError);
    assert.throws(() => split(x, [1, 2]), TypeError);
    assert.throws(() => argmax(engine.zeros([3, 0])), TypeError);
    assert.throws(() => mean(engine.zeros([0])), RangeError);
  });
});

const GRADS: {
  name: string;
  inputs: Record<string, number[]>;
  forward: Parameters<typeof checkGradients>[1]["forward"];
  constants?: Parameters<typeof checkGradients>[1]["constants"];
}[] = [
  { name: "add broadcast", inputs: { a: [3, 2, 5], b: [5] }, forward: ({ a, b }) => add(a!, b!) },
  { name: "mul broadcast", inputs: { a: [40, 3], b: [3] }, forward: ({ a, b }) => mul(a!, b!) },
  { name: "mul", inputs: { a: [4, 3], b: [4, 3] }, forward: ({ a, b }) => mul(a!, b!) },
  { name: "scale", inputs: { a: [7] }, forward: ({ a }) => scale(a!, 1.7) },
  { name: "addScaled", inputs: { a: [2, 5], b: [2, 5] }, forward: ({ a, b }) => addScaled(a!, b!, 0.3, -2) },
  {
    name: "mixRows",
    inputs: { a: [3, 2, 2], b: [3, 2, 2] },
    constants: (e) => ({
      alpha: e.tensor(new Float32Array([0.9, 0.5, 0.1]), [3]),
      beta: e.tensor(new Float32Array([0.2, -1, 0.7]), [3]),
    }),
    forward: ({ a, b, alpha, beta }) => mixRows(a!, b!, alpha!, beta!),
  },
  {
    name: "maskedFill",
    inputs: { a: [2, 3, 4] },
    constants: (e) => ({ mask: e.tensor(new Uint32Array([1, 0, 0, 1, 1, 0]), [2, 3]) }),
    forward: ({ a, mask }) => maskedFill(a!, mask!, 3, { invert: true }),
  },
  { name: "concat", inputs: { a: [2, 3], b: [2, 2] }, forward: ({ a, b }) => concat([b!, a!, b!]) },
  {
    name: "split",
    inputs: { a: [3, 5] },
    forward: ({ a }) => {
      const [p, q] = split(a!, [2, 3]);
      return concat([q!, p!]);
    },
  },
  {
    name: "reshape",
    inputs: { a: [2, 6] },
    forward: ({ a }) => mul(reshape(a!, [3, 4]), reshape(a!, [3, 4])),
  },
  { name: "sum", inputs: { a: [3, 7] }, forward: ({ a }) => sum(a!) },
  { name: "mean", inputs: { a: [3, 7] }, forward: ({ a }) => mean(a!) },
  { name: "sumOfSquares", inputs: { a: [11] }, forward: ({ a }) => sumOfSquares(a!) },
  { name: "l2Norm", inputs: { a: [11] }, forward: ({ a }) => l2Norm(a!) },
];

for (const [k, g] of GRADS.entries()) {
  Deno.test({ name: `${g.name} gradient matches finite differences`, ignore }, async () => {
    const inputs: Record<string, { data: Float32Array<ArrayBuffer>; shape: number[] }> = {};
    for (const [name, shape] of Object.entries(g.inputs)) {
      inputs[name] = { data: randn(size(shape), 100 + k * 10 + name.length), shape };
    }
    await checkGradients(await testEngine(), {
      name: g.name,
      inputs,
      wrt: Object.keys(g.inputs),
      forward: g.forward,
      ...(g.constants ? { constants: g.constants } : {}),
      h: 1e-2,
    });
  });
}
