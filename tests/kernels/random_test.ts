import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randn } from "../_check.ts";
import {
  addScaledNoise,
  dropout,
  dropoutAdd,
  randomNormal,
  randomNormalInto,
  randomUniform,
  randomUniformInto,
} from "../../src/tensor/ops/random.ts";
import { dropoutMaskRef, normalRef, philox4x32, uniformRef } from "../ref/random.ts";

const MILLION = 1_000_000;

/** Mean, variance, skewness and excess kurtosis, in float64. */
function moments(x: ArrayLike<number>): { mean: number; variance: number; skew: number; kurtosis: number } {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let m2 = 0, m3 = 0, m4 = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - mean;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  return { mean, variance: m2, skew: m3 / m2 ** 1.5, kurtosis: m4 / (m2 * m2) - 3 };
}

/** Correlation of x[i] and x[i+1]. */
function lagCorrelation(x: ArrayLike<number>): number {
  const { mean, variance } = moments(x);
  let c = 0;
  for (let i = 0; i + 1 < x.length; i++) c += (x[i]! - mean) * (x[i + 1]! - mean);
  return c / (x.length - 1) / variance;
}

Deno.test("philox4x32 reference matches the Random123 known-answer vectors", () => {
  assert.deepEqual(philox4x32([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  assert.deepEqual(
    philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]),
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  );
  assert.deepEqual(
    philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  );
});

Deno.test({ name: "random_uniform matches the reference bit for bit at n=4099", ignore }, async () => {
  const engine = await testEngine();
  await engine.tidy(async () => {
    const seed = 0xdeadbeef;
    const t = randomUniform(engine, [4099], seed);
    assert.deepEqual([...await t.read()], [...uniformRef(seed, 4099)]);
  });
});

Deno.test(
  { name: "random_normal matches the float64 reference at shape [3,7,5] and n=4099", ignore },
  async () => {
    const engine = await testEngine();
    await engine.tidy(async () => {
      const a = engine.empty([3, 7, 5]);
      randomNormalInto(a, 17);
      // WGSL specifies sin/cos to 2^-11 absolute on [-pi, pi]; |z| <= 5.77.
      assertClose(await a.read(), normalRef(17, 105), { atol: 4e-3, rtol: 0, name: "normal [3,7,5]" });
      const b = randomNormal(engine, [4099], 0xffffffff);
      assertClose(await b.read(), normalRef(0xffffffff, 4099), { atol: 4e-3, rtol: 0, name: "normal 4099" });
    });
  },
);

Deno.test(
  { name: "random_uniform: 1e6 draws have the moments of U[0,1) and flat bins", ignore },
  async () => {
    const engine = await testEngine();
    const u = await engine.tidy(() => randomUniform(engine, [MILLION], 12345)).read();
    const { mean, variance } = moments(u);
    const sd = Math.sqrt(1 / 12);
    assert.ok(Math.abs(mean - 0.5) < 5 * sd / Math.sqrt(MILLION), `mean ${mean}`);
    // Var((u − ½)²) = 1/80 − 1/144 = 1/180.
    assert.ok(Math.abs(variance - 1 / 12) < 5 * Math.sqrt(1 / 180 / MILLION), `variance ${variance}`);
    assert.ok(u.every((v) => v >= 0 && v < 1));
    const bins = new Float64Array(16);
    for (const v of u) bins[Math.floor(v * 16)]!++;
    const expected = MILLION / 16;
    const chi2 = bins.reduce((s, b) => s + (b - expected) ** 2 / expected, 0);
    assert.ok(chi2 < 50, `chi-square ${chi2} with 15 degrees of freedom`);
    assert.ok(Math.abs(lagCorrelation(u)) < 5 / Math.sqrt(MILLION), "lag-1 correlation");
  },
);

Deno.test(
  { name: "random_normal: 1e6 draws have mean 0, variance 1, no skew, no excess kurtosis", ignore },
  async () => {
    const engine = await testEngine();
    const z = await engine.tidy(() => randomNormal(engine, [MILLION], 777)).read();
    const { mean, variance, skew, kurtosis } = moments(z);
    const s = Math.sqrt(MILLION);
    assert.ok(Math.abs(mean) < 5 / s, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 5 * Math.SQRT2 / s, `variance ${variance}`);
    assert.ok(Math.abs(skew) < 5 * Math.sqrt(6) / s, `skew ${skew}`);
    assert.ok(Math.abs(kurtosis) < 5 * Math.sqrt(24) / s, `excess kurtosis ${kurtosis}`);
    assert.ok(Math.abs(lagCorrelation(z)) < 5 / s, "lag-1 correlation");
    // Tail: P(|z| > 3) = 0.0026998.
    const tail = z.filter((v) => Math.abs(v) > 3).length / MILLION;
    assert.ok(Math.abs(tail - 0.0026998) < 5 * Math.sqrt(0.0027 / MILLION), `tail ${tail}`);
  },
);

Deno.test(
  { name: "the same seed reproduces bit for bit; other seeds and streams differ", ignore },
  async () => {
    const engine = await testEngine();
    await engine.tidy(async () => {
      const n = 100_003;
      const a = await randomUniform(engine, [n], 5).read();
      const b = engine.empty([n]);
      randomUniformInto(b, 5);
      assert.deepEqual(a, await b.read());
      const c = await randomUniform(engine, [n], 6).read();
      let same = 0;
      for (let i = 0; i < n; i++) if (a[i] === c[i]) same++;
      assert.ok(same <= 2, `${same} equal draws between seeds 5 and 6`);
      const z1 = await randomNormal(engine, [n], 5).read();
      const z2 = await randomNormal(engine, [n], 5).read();
      assert.deepEqual(z1, z2);
      // Normal draws use another stream: not a transform of the uniform draws of the same seed.
      const ref = normalRef(5, 8);
      const fromUniform = Array.from({ length: 4 }, (_, k) => {
        const u1 = a[2 * k]! + 2 ** -24, u2 = a[2 * k + 1]!;
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2 - Math.PI);
      });
      assert.notDeepEqual(fromUniform.map((v) => v.toFixed(3)), [0, 2, 4, 6].map((i) => ref[i]!.toFixed(3)));
    });
  },
);

Deno.test(
  { name: "dropout keeps about 1 − p, scales by 1/(1 − p), and matches the reference mask", ignore },
  async () => {
    const engine = await testEngine();
    for (const [n, p] of [[MILLION, 0.1], [4099, 0.37]] as const) {
      const x = randn(n, n, 1);
      for (let i = 0; i < n; i++) if (x[i] === 0) x[i] = 1;
      await engine.tidy(async () => {
        const y = await dropout(engine.tensor(x, [n]), p, 99).read();
        const scale = Math.fround(1 / (1 - p));
        let kept = 0;
        for (let i = 0; i < n; i++) {
          if (y[i] !== 0) {
            kept++;
            assert.equal(y[i], Math.fround(x[i]! * scale));
          }
        }
        assert.ok(
          Math.abs(kept / n - (1 - p)) < 5 * Math.sqrt(p * (1 - p) / n),
          `kept ${kept / n}, expected ${1 - p}`,
        );
        if (n < 10000) {
          const mask = dropoutMaskRef(99, n, p);
          assert.deepEqual(Uint8Array.from(y, (v) => (v !== 0 ? 1 : 0)), mask);
        }
      });
    }
  },
);

Deno.test({ name: "dropout backward regenerates the same mask and accumulates", ignore }, async () => {
  const engine = await testEngine();
  const n = 1001, p = 0.25, seed = 4242;
  const x = randn(n, 1, 1);
  const dout = randn(n, 2, 1);
  const mask = dropoutMaskRef(seed, n, p);
  await engine.tidy(async () => {
    const xt = engine.tensor(x, [n]);
    xt.requiresGrad = true;
    engine.startTape();
    const y = dropout(xt, p, seed);
    engine.fill(engine.gradOf(xt), 0.5);
    engine.backward(y, engine.tensor(dout, [n]));
    const expected = Float64Array.from(dout, (d, i) => 0.5 + (mask[i] ? d / (1 - p) : 0));
    assertClose(await xt.grad!.read(), expected, { atol: 1e-6, rtol: 1e-6, name: "ddropout" });
  });
});

Deno.test(
  { name: "dropout with p=0 is a copy with identity gradient; p=1 gives zeros", ignore },
  async () => {
    const engine = await testEngine();
    const n = 37;
    const x = randn(n, 3, 1);
    const dout = randn(n, 4, 1);
    await engine.tidy(async () => {
      const xt = engine.tensor(x, [n]);
      xt.requiresGrad = true;
      engine.startTape();
      const y = dropout(xt, 0, 1);
      engine.backward(y, engine.tensor(dout, [n]));
      assert.deepEqual(await y.read(), x);
      assert.deepEqual(await xt.grad!.read(), dout);
      assert.ok((await dropout(xt, 1, 1).read()).every((v) => v === 0));
    });
  },
);

Deno.test(
  { name: "addScaledNoise is alpha·x + beta·(randomNormal's draws) at odd sizes, against float64", ignore },
  async () => {
    const engine = await testEngine();
    for (const n of [1, 5, 4099]) {
      await engine.tidy(async () => {
        const x = randn(n, 40 + n);
        const seed = 2024 + n;
        const out = addScaledNoise(engine.tensor(x, [n]), 0.8, -0.6, seed);
        const z = normalRef(seed, n);
        const want = Float64Array.from(x, (v, i) => 0.8 * v - 0.6 * z[i]!);
        // The draws' error bound (sin/cos to 2^-11 on the angle), times |beta|.
        assertClose(await out.read(), want, { atol: 3e-3, rtol: 1e-6, name: `noisy axpby n=${n}` });
        // The same draws as randomNormal, element for element.
        const separate = await engine.tidy(() => randomNormal(engine, [n], seed)).read();
        const fused = await out.read();
        for (let i = 0; i < n; i++) {
          assert.ok(
            Math.abs(fused[i]! - (Math.fround(0.8 * x[i]!) - 0.6 * separate[i]!)) < 1e-5,
            `element ${i}`,
          );
        }
      });
    }
  },
);

Deno.test({ name: "addScaledNoise into a given tensor writes what it would return", ignore }, async () => {
  const engine = await testEngine();
  await engine.tidy(async () => {
    const x = engine.tensor(randn(77, 5), [7, 11]);
    const target = engine.empty([77]); // poisoned: every element must be written
    const returned = addScaledNoise(x, 0.3, 1.7, 11, target);
    assert.equal(returned, target);
    assert.deepEqual(await target.read(), await addScaledNoise(x, 0.3, 1.7, 11).read());
    assert.throws(() => addScaledNoise(x, 1, 1, 1, engine.empty([76])), /77 elements/);
    assert.throws(() => addScaledNoise(x, 1, 1, 1, x), /another buffer/);
  });
});

Deno.test({ name: "addScaledNoise gradient matches finite differences", ignore }, async () => {
  await checkGradients(await testEngine(), {
    name: "addScaledNoise",
    inputs: { x: { data: randn(29, 9, 1), shape: [29] } },
    wrt: ["x"],
    forward: ({ x }) => addScaledNoise(x!, 0.7, 0.5, 99),
  });
});

Deno.test({ name: "dropout gradient matches finite differences", ignore }, async () => {
  await checkGradients(await testEngine(), {
    name: "dropout",
    inputs: { x: { data: randn(29, 8, 1), shape: [29] } },
    wrt: ["x"],
    forward: ({ x }) => dropout(x!, 0.3, 31337),
  });
});

Deno.test(
  { name: "dropoutAdd is residual + the reference's dropout mask, at odd sizes and p = 0, 0.37, 1", ignore },
  async () => {
    const engine = await testEngine();
    for (const [n, p] of [[1, 0.37], [4099, 0.37], [37, 0], [37, 1]] as const) {
      await engine.tidy(async () => {
        const x = randn(n, 60 + n, 1), residual = randn(n, 70 + n, 1);
        const out = await dropoutAdd(engine.tensor(residual, [n]), engine.tensor(x, [n]), p, 77).read();
        const mask = dropoutMaskRef(77, n, p);
        const scale = p < 1 ? Math.fround(1 / (1 - p)) : 0;
        for (let i = 0; i < n; i++) {
          // f32 arithmetic, as the kernel: the survivor scaled, then added.
          const kept = mask[i] ? Math.fround(x[i]! * scale) : 0;
          assert.equal(out[i], Math.fround(residual[i]! + kept), `n=${n} p=${p} element ${i}`);
        }
      });
    }
  },
);

Deno.test({ name: "dropoutAdd gradient matches finite differences in both inputs", ignore }, async () => {
  await checkGradients(await testEngine(), {
    name: "dropoutAdd",
    inputs: { residual: { data: randn(29, 10, 1), shape: [29] }, x: { data: randn(29, 11, 1), shape: [29] } },
    wrt: ["residual", "x"],
    forward: ({ residual, x }) => dropoutAdd(residual!, x!, 0.3, 4321),
  });
});

Deno.test(
  {
    name: "dropoutAdd's backward adds into gradients already written, and handles one tensor as both inputs",
    ignore,
  },
  async () => {
    const engine = await testEngine();
    const n = 29, p = 0.3, seed = 4321;
    const residual = randn(n, 10, 1), x = randn(n, 11, 1), dout = randn(n, 12, 1);
    const keep = await engine.tidy(async () =>
      Float32Array.from(await dropout(engine.tensor(new Float32Array(n).fill(1), [n]), p, seed).read())
    );
    await engine.tidy(async () => {
      const rt = engine.tensor(residual, [n]), xt = engine.tensor(x, [n]);
      rt.requiresGrad = xt.requiresGrad = true;
      engine.startTape();
      const out = dropoutAdd(rt, xt, p, seed);
      engine.fill(engine.gradOf(rt), 1);
      engine.fill(engine.gradOf(xt), 2);
      engine.backward(out, engine.tensor(dout, [n]));
      const [dr, dx] = [await rt.grad!.read(), await xt.grad!.read()];
      for (let i = 0; i < n; i++) {
        assert.equal(dr[i], Math.fround(1 + dout[i]!), `residual ${i}`);
        assert.equal(dx[i], Math.fround(2 + Math.fround(dout[i]! * keep[i]!)), `x ${i}`);
      }
      // x + dropout(x): the gradient is dout + mask·dout·scale, accumulated in two passes.
      const yt = engine.tensor(x, [n]);
      yt.requiresGrad = true;
      engine.startTape();
      engine.backward(dropoutAdd(yt, yt, p, seed), engine.tensor(dout, [n]));
      const dy = await yt.grad!.read();
      for (let i = 0; i < n; i++) {
        assert.equal(dy[i], Math.fround(dout[i]! + Math.fround(dout[i]! * keep[i]!)), `both ${i}`);
      }
    });
  },
);

Deno.test({ name: "random ops reject bad seeds and probabilities", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    assert.throws(() => randomUniform(engine, [4], -1), RangeError);
    assert.throws(() => randomNormal(engine, [4], 2 ** 32), RangeError);
    assert.throws(() => randomNormalInto(engine.zeros([4]), 1.5), RangeError);
    assert.throws(() => dropout(engine.zeros([4]), 1.5, 1), /Cannot run dropout: p is 1.5/);
    assert.throws(() => dropout(engine.zeros([4]), NaN, 1), RangeError);
    assert.throws(() => dropoutAdd(engine.zeros([4]), engine.zeros([4]), -0.1, 1), /dropoutAdd: p is -0.1/);
    assert.throws(() => dropoutAdd(engine.zeros([3]), engine.zeros([4]), 0.1, 1), /residual is f32 \[3\]/);
    assert.throws(() => addScaledNoise(engine.zeros([4]), 1, 1, -3), /Cannot run addScaledNoise: seed is -3/);
  });
});
