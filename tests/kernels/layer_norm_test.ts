import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randn } from "../_check.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { layerNormForwardSpec } from "../../kernels/layer_norm.ts";
import { layerNorm, layerNormFilm } from "../../src/tensor/ops/layer_norm.ts";
import { matmulInto, matmulResidual } from "../../src/tensor/ops/matmul.ts";
import { layerNormBackwardRef, layerNormRef, sumRowGroupsRef } from "../ref/layer_norm.ts";

const TOL = { atol: 2e-5, rtol: 1e-4 };

for (const [rows, cols] of [[1, 1], [37, 64], [5, 37], [300, 3], [7, 513]] as const) {
  Deno.test(
    {
      name: `layerNorm with weight and bias matches the float64 reference at rows=${rows} cols=${cols}`,
      ignore,
    },
    async () => {
      const engine = await testEngine();
      const x = randn(rows * cols, rows + cols, 2);
      // A large common offset checks that the variance does not cancel catastrophically.
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + 100;
      const w = randn(cols, 3);
      const b = randn(cols, 4);
      const dout = randn(rows * cols, 5);
      await engine.tidy(async () => {
        const xt = engine.tensor(x, [rows, cols]);
        const wt = engine.tensor(w, [cols]);
        const bt = engine.tensor(b, [cols]);
        for (const t of [xt, wt, bt]) t.requiresGrad = true;
        engine.startTape();
        const y = layerNorm(xt, { weight: wt, bias: bt });
        engine.backward(y, engine.tensor(dout, [rows, cols]));
        const ref = layerNormRef(x, cols, { scaleOf: (_, c) => w[c]!, shiftOf: (_, c) => b[c]! });
        // Inputs near 100 lose ~2^-17 relative precision in f32 before any arithmetic.
        assertClose(await y.read(), ref, { atol: 2e-4, rtol: 1e-4, name: "out" });
        const bwd = layerNormBackwardRef(x, dout, cols, { scaleOf: (_, c) => w[c]! });
        assertClose(await xt.grad!.read(), bwd.dx, { atol: 2e-3, rtol: 1e-3, name: "dx" });
        assertClose(await wt.grad!.read(), sumRowGroupsRef(bwd.doutXhat, cols, rows), {
          atol: 1e-3,
          rtol: 1e-3,
          name: "dweight",
        });
        assertClose(await bt.grad!.read(), sumRowGroupsRef(dout, cols, rows), { ...TOL, name: "dbias" });
      });
    },
  );
}

Deno.test({ name: "layerNorm without affine and with weight only match the reference", ignore }, async () => {
  const engine = await testEngine();
  const [rows, cols] = [29, 70];
  const x = randn(rows * cols, 11, 3);
  const w = randn(cols, 12);
  const dout = randn(rows * cols, 13);
  await engine.tidy(async () => {
    const xt = engine.tensor(x, [rows, cols]);
    const wt = engine.tensor(w, [cols]);
    xt.requiresGrad = true;
    wt.requiresGrad = true;
    engine.startTape();
    const plain = layerNorm(xt);
    const scaled = layerNorm(xt, { weight: wt, eps: 1e-3 });
    engine.backward(plain, engine.tensor(dout, [rows, cols]));
    assertClose(await plain.read(), layerNormRef(x, cols), { ...TOL, name: "plain" });
    assertClose(await xt.grad!.read(), layerNormBackwardRef(x, dout, cols).dx, { ...TOL, name: "dx plain" });
    assertClose(await scaled.read(), layerNormRef(x, cols, { eps: 1e-3, scaleOf: (_, c) => w[c]! }), {
      ...TOL,
      name: "weight only",
    });
  });
});

Deno.test(
  { name: "layerNorm on [B,L,E] normalises the last dim and its dweight is deterministic", ignore },
  async () => {
    const engine = await testEngine();
    const [batch, len, cols] = [3, 100, 64];
    const x = randn(batch * len * cols, 21);
    const w = randn(cols, 22);
    const dout = randn(batch * len * cols, 23);
    const run = () =>
      engine.tidy(async () => {
        const xt = engine.tensor(x, [batch, len, cols]);
        const wt = engine.tensor(w, [cols]);
        const bt = engine.zeros([cols]);
        wt.requiresGrad = true;
        bt.requiresGrad = true;
        engine.startTape();
        const y = layerNorm(xt, { weight: wt, bias: bt });
        assert.deepEqual(y.shape, [batch, len, cols]);
        engine.backward(y, engine.tensor(dout, y.shape));
        return [await wt.grad!.read(), await bt.grad!.read()];
      });
    const [dw1, db1] = await run();
    const [dw2, db2] = await run();
    const bwd = layerNormBackwardRef(x, dout, cols, { scaleOf: (_, c) => w[c]! });
    assertClose(dw1!, sumRowGroupsRef(bwd.doutXhat, cols, batch * len), {
      atol: 1e-4,
      rtol: 1e-4,
      name: "dw",
    });
    assert.deepEqual(dw1, dw2);
    assert.deepEqual(db1, db2);
  },
);

for (const [batch, len, cols, slices] of [[1, 1, 1, 2], [3, 5, 37, 4], [2, 7, 300, 6]] as const) {
  Deno.test(
    {
      name: `layerNormFilm matches the float64 reference at B=${batch} L=${len} C=${cols} S=${slices}`,
      ignore,
    },
    async () => {
      const engine = await testEngine();
      const rows = batch * len;
      const x = randn(rows * cols, batch + len + cols, 1.5);
      const film = randn(batch * slices * cols, 31);
      const dout1 = randn(rows * cols, 32);
      const dout2 = randn(rows * cols, 33);
      const [g1, b1, g2, b2] = [0, slices - 1, slices - 1, 0];
      const at = (slice: number) => (r: number, c: number) =>
        film[Math.floor(r / len) * slices * cols + slice * cols + c]!;
      await engine.tidy(async () => {
        const xt = engine.tensor(x, [batch, len, cols]);
        const ft = engine.tensor(film, [batch, slices * cols]);
        xt.requiresGrad = true;
        ft.requiresGrad = true;
        // Two uses of one film tensor, as in an encoder layer (γ1/β1 and γ2/β2), accumulate.
        engine.startTape();
        const y1 = layerNormFilm(xt, ft, { gammaSlice: g1, betaSlice: b1 });
        engine.backward(y1, engine.tensor(dout1, y1.shape));
        engine.startTape();
        const y2 = layerNormFilm(xt, ft, { gammaSlice: g2, betaSlice: b2, eps: 1e-3 });
        engine.backward(y2, engine.tensor(dout2, y2.shape));
        assertClose(await y1.read(), layerNormRef(x, cols, { scaleOf: at(g1), shiftOf: at(b1) }), {
          ...TOL,
          name: "out1",
        });
        assertClose(
          await y2.read(),
          layerNormRef(x, cols, { eps: 1e-3, scaleOf: at(g2), shiftOf: at(b2) }),
          { ...TOL, name: "out2" },
        );
        const r1 = layerNormBackwardRef(x, dout1, cols, { scaleOf: at(g1) });
        const r2 = layerNormBackwardRef(x, dout2, cols, { eps: 1e-3, scaleOf: at(g2) });
        assertClose(await xt.grad!.read(), r1.dx.map((v, i) => v + r2.dx[i]!), { ...TOL, name: "dx" });
        const dfilm = new Float64Array(film.length);
        const put = (slice: number, sums: Float64Array) => {
          for (let b = 0; b < batch; b++) {
            for (let c = 0; c < cols; c++) {
              dfilm[b * slices * cols + slice * cols + c]! += sums[b * cols + c]!;
            }
          }
        };
        put(g1, sumRowGroupsRef(r1.doutXhat, cols, len));
        put(b1, sumRowGroupsRef(dout1, cols, len));
        put(g2, sumRowGroupsRef(r2.doutXhat, cols, len));
        put(b2, sumRowGroupsRef(dout2, cols, len));
        assertClose(await ft.grad!.read(), dfilm, { ...TOL, name: "dfilm" });
      });
    },
  );
}

Deno.test(
  { name: "layerNormFilm matches the reference at the model size B=16 L=64 C=512", ignore },
  async () => {
    const engine = await testEngine();
    const [batch, len, cols, slices, layer] = [16, 64, 512, 32, 3];
    const rows = batch * len;
    const x = randn(rows * cols, 41);
    const film = randn(batch * slices * cols, 42);
    const dout = randn(rows * cols, 43);
    const at = (slice: number) => (r: number, c: number) =>
      film[Math.floor(r / len) * slices * cols + slice * cols + c]!;
    await engine.tidy(async () => {
      const xt = engine.tensor(x, [batch, len, cols]);
      const ft = engine.tensor(film, [batch, slices * cols]);
      xt.requiresGrad = true;
      ft.requiresGrad = true;
      engine.startTape();
      const y = layerNormFilm(xt, ft, { gammaSlice: 4 * layer + 1, betaSlice: 4 * layer + 3 });
      engine.backward(y, engine.tensor(dout, y.shape));
      assertClose(await y.read(), layerNormRef(x, cols, { scaleOf: at(13), shiftOf: at(15) }), {
        ...TOL,
        name: "out",
      });
      const r = layerNormBackwardRef(x, dout, cols, { scaleOf: at(13) });
      assertClose(await xt.grad!.read(), r.dx, { ...TOL, name: "dx" });
      const dfilm = await ft.grad!.read();
      const dgamma = sumRowGroupsRef(r.doutXhat, cols, len);
      const got: number[] = [];
      for (let b = 0; b < batch; b++) {
        got.push(...dfilm.subarray(b * slices * cols + 13 * cols, b * slices * cols + 14 * cols));
      }
      assertClose(got, dgamma, { atol: 1e-4, rtol: 1e-4, name: "dgamma" });
    });
  },
);

for (const [batch, len, cols, splits, withBias] of [[2, 7, 37, 3, true], [1, 5, 512, 11, false]] as const) {
  Deno.test(
    {
      name: `layerNormFilm with a residual product adds it into x and matches the float64 reference ` +
        `at B=${batch} L=${len} C=${cols}, ${splits} partials${withBias ? " and a bias" : ""}`,
      ignore,
    },
    async () => {
      const engine = await testEngine();
      const rows = batch * len;
      const x = randn(rows * cols, 71 + cols, 1.5);
      const part = randn(splits * rows * cols, 72);
      const bias = randn(cols, 73);
      const film = randn(batch * 2 * cols, 74);
      const sum = new Float64Array(rows * cols);
      for (let i = 0; i < rows * cols; i++) {
        let s = 0;
        for (let k = 0; k < splits; k++) s += part[k * rows * cols + i]!;
        sum[i] = x[i]! + s + (withBias ? bias[i % cols]! : 0);
      }
      const want = layerNormRef(sum, cols, {
        scaleOf: (r, c) => film[Math.floor(r / len) * 2 * cols + c]!,
        shiftOf: (r, c) => film[Math.floor(r / len) * 2 * cols + cols + c]!,
      });
      await engine.tidy(async () => {
        const xt = engine.tensor(x, [batch, len, cols]);
        const residual = {
          part: engine.tensor(part, [splits, rows, cols]),
          splits,
          bias: withBias ? engine.tensor(bias, [cols]) : undefined,
        };
        const y = engine.noGrad(() =>
          layerNormFilm(xt, engine.tensor(film, [batch, 2 * cols]), {
            gammaSlice: 0,
            betaSlice: 1,
            residual,
          })
        );
        assertClose(await xt.read(), sum, { ...TOL, name: "x += residual" });
        assertClose(await y.read(), want, { ...TOL, name: "out" });
      });
    },
  );
}

Deno.test(
  { name: "a deferred residual product gives bit for bit what the reduction pass gives", ignore },
  async () => {
    const engine = await testEngine();
    // 64 rows and K = 2048: the launcher splits K (the sampler's FFN down-projection at batch 1).
    const [len, cols, hidden] = [64, 512, 2048];
    const x = randn(len * cols, 81), h = randn(len * hidden, 82, 0.1), w = randn(cols * hidden, 83, 0.03);
    const bias = randn(cols, 84), film = randn(2 * cols, 85);
    await engine.tidy(async () => {
      const run = async (defer: boolean) => {
        const xt = engine.tensor(x, [1, len, cols]);
        const ht = engine.tensor(h, [1, len, hidden]), wt = engine.tensor(w, [cols, hidden]);
        const bt = engine.tensor(bias, [cols]), ft = engine.tensor(film, [1, 2 * cols]);
        const y = engine.noGrad(() => {
          let residual;
          if (defer) {
            residual = matmulResidual(xt, ht, wt, { transB: true, bias: bt }) ?? undefined;
            assert.ok(residual, "expected the product to stay split");
          } else matmulInto(xt, ht, wt, { transB: true, bias: bt, accumulate: true });
          return layerNormFilm(xt, ft, { gammaSlice: 0, betaSlice: 1, residual });
        });
        return [await xt.read(), await y.read()];
      };
      const [x1, y1] = await run(false), [x2, y2] = await run(true);
      assert.deepEqual(x2, x1);
      assert.deepEqual(y2, y1);
    });
  },
);

Deno.test({ name: "layerNormFilm refuses a residual product while a tape records", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    const xt = engine.zeros([1, 2, 4]);
    const residual = { part: engine.zeros([2, 2, 4]), splits: 2 };
    engine.startTape();
    try {
      assert.throws(
        () => layerNormFilm(xt, engine.zeros([1, 8]), { gammaSlice: 0, betaSlice: 1, residual }),
        /no tape may record/,
      );
    } finally {
      engine.backward(xt); // ends the tape
    }
  });
});

Deno.test({ name: "layerNorm gradients match finite differences", ignore }, async () => {
  await checkGradients(await testEngine(), {
    name: "layerNorm",
    inputs: {
      x: { data: randn(5 * 7, 51), shape: [5, 7] },
      weight: { data: randn(7, 52), shape: [7] },
      bias: { data: randn(7, 53), shape: [7] },
    },
    wrt: ["x", "weight", "bias"],
    forward: ({ x, weight, bias }) => layerNorm(x!, { weight: weight!, bias: bias! }),
    h: 1e-3,
  });
});

Deno.test({ name: "layerNormFilm gradients match finite differences", ignore }, async () => {
  await checkGradients(await testEngine(), {
    name: "layerNormFilm",
    inputs: {
      x: { data: randn(2 * 3 * 5, 61), shape: [2, 3, 5] },
      film: { data: randn(2 * 3 * 5, 62), shape: [2, 15] },
    },
    wrt: ["x", "film"],
    forward: ({ x, film }) => layerNormFilm(x!, film!, { gammaSlice: 2, betaSlice: 0 }),
    h: 1e-3,
    probes: 16,
  });
});

Deno.test({ name: "layerNorm and layerNormFilm reject wrong shapes", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    const x = engine.zeros([2, 3, 4]);
    assert.throws(() => layerNorm(x, { weight: engine.zeros([5]) }), TypeError);
    assert.throws(
      () => layerNormFilm(engine.zeros([6, 4]), engine.zeros([2, 8]), { gammaSlice: 0, betaSlice: 1 }),
      TypeError,
    );
    assert.throws(() => layerNormFilm(x, engine.zeros([3, 8]), { gammaSlice: 0, betaSlice: 1 }), TypeError);
    assert.throws(() => layerNormFilm(x, engine.zeros([2, 8]), { gammaSlice: 2, betaSlice: 1 }), RangeError);
  });
});

Deno.test({
  name: "layer_norm_forward built for a fixed column count gives bit for bit what the looping kernel gives",
  ignore,
}, async () => {
  const engine = await testEngine();
  for (
    const [rows, cols, wg, splits] of [[5, 512, 128, 16], [3, 300, 128, 6], [4, 37, 64, 3], [
      2,
      130,
      32,
      0,
    ]] as const
  ) {
    await engine.tidy(async () => {
      const x = randn(rows * cols, cols + 1), w = randn(cols, cols + 2), b = randn(cols, cols + 3);
      const parts = randn(Math.max(splits, 1) * rows * cols, cols + 4, 0.3);
      const outputs: Float32Array[][] = [];
      for (const fixed of [undefined, cols]) {
        const inp = engine.tensor(x, [rows, cols]);
        const views: Record<string, Tensor> = {
          inp,
          weight: engine.tensor(w, [cols]),
          bias: engine.tensor(b, [cols]),
          out: engine.empty([rows, cols]),
          mean: engine.empty([rows]),
          rstd: engine.empty([rows]),
        };
        if (splits > 0) {
          views.part = engine.tensor(parts, [splits, rows, cols]);
          views.rbias = engine.tensor(b, [cols]);
        }
        const spec = layerNormForwardSpec({
          weight: true,
          bias: true,
          wg,
          residual: splits > 0,
          residualBias: splits > 0,
          cols: fixed,
        });
        engine.runtime.dispatch(spec, views, {
          rows,
          cols,
          eps: 1e-5,
          group_rows: 1,
          w_stride: 0,
          w_off: 0,
          b_stride: 0,
          b_off: 0,
          ...(splits > 0 ? { splits, part_stride: rows * cols } : {}),
        }, [rows]);
        outputs.push(
          await Promise.all(["out", "mean", "rstd", "inp"].map((n) => views[n]!.read())) as Float32Array[],
        );
      }
      assert.deepEqual(outputs[1], outputs[0], `rows=${rows} cols=${cols} wg=${wg} splits=${splits}`);
      assert.ok(outputs[0]![0]!.every(Number.isFinite));
    });
  }
  assert.throws(() => layerNormForwardSpec({ weight: false, wg: 32, cols: 32 * 32 + 1 }), RangeError);
});
