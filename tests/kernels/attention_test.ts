import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertClose, checkGradients, randn } from "../_check.ts";
import {
  ATTENTION_TILED_ROWS,
  attentionBackwardSpec,
  attentionBackwardTiledBytes,
  attentionBackwardTiledSpec,
  attentionForwardSpec,
  attentionForwardTiledBytes,
  attentionForwardTiledSpec,
  ropeTable,
} from "../../kernels/attention.ts";
import { grid1d } from "../../src/tensor/engine.ts";
import { attention, attentionBackward, attentionForward } from "../../src/tensor/ops/attention.ts";
import { linear, linearParts } from "../../src/tensor/ops/matmul.ts";
import {
  attentionBackwardRef,
  type AttentionCase,
  type AttentionDims,
  attentionRef,
  caseDims,
} from "../ref/attention.ts";

const TOL = { atol: 3e-5, rtol: 1e-4 };

const cases: AttentionCase[] = [
  { B: 3, H: 2, hd: 16, L: 7, rotaryDim: 8, lengths: [7, 1, 4] },
  { B: 3, H: 3, hd: 32, L: 37, lengths: [1, 37, 20] },
  { B: 2, H: 2, hd: 64, L: 64, rotaryDim: 32, lengths: [64, 29] },
  { B: 2, H: 1, hd: 16, L: 1, lengths: [1, 5] },
  { B: 2, H: 1, hd: 64, L: 100, lengths: [100, 1] },
  { B: 1, H: 2, hd: 32, L: 130, rotaryDim: 0, lengths: [77] },
];

for (const [c, kernel] of cases.flatMap((c) => [[c, "tiled"], [c, "simple"]] as const)) {
  Deno.test(
    {
      name: `attention forward and backward match the float64 reference at B=${c.B} H=${c.H} hd=${c.hd} ` +
        `L=${c.L} rotaryDim=${c.rotaryDim ?? 32} lengths=[${c.lengths}] kernel=${kernel}`,
      ignore,
    },
    async () => {
      const engine = await testEngine();
      const D = c.H * c.hd;
      const qkv = randn(c.B * c.L * 3 * D, c.L * 7 + c.hd);
      const dout = randn(c.B * c.L * D, c.L * 7 + c.hd + 1);
      const d = caseDims(c);
      await engine.tidy(async () => {
        const x = engine.tensor(qkv, [c.B, c.L, 3 * D]);
        x.requiresGrad = true;
        const lengths = engine.tensor(new Int32Array(c.lengths), [c.B]);
        engine.startTape();
        const y = attention(x, lengths, { heads: c.H, rotaryDim: c.rotaryDim ?? 32, kernel });
        engine.backward(y, engine.tensor(dout, [c.B, c.L, D]));
        assertClose(await y.read(), attentionRef(qkv, c.lengths, d), { ...TOL, name: "attention out" });
        assertClose(await x.grad!.read(), attentionBackwardRef(qkv, c.lengths, dout, d), {
          ...TOL,
          name: "attention dqkv",
        });
      });
    },
  );
}

Deno.test(
  {
    name: "the tiled kernels the launcher does not pick (forward 64 keys per tile, backward 32 keys per " +
      "block) match the float64 reference",
    ignore,
  },
  async () => {
    const engine = await testEngine();
    for (const c of [cases[0]!, cases[1]!, cases[2]!, cases[4]!, cases[5]!]) {
      const D = c.H * c.hd;
      const qkv = randn(c.B * c.L * 3 * D, c.L * 5 + c.hd);
      const dout = randn(c.B * c.L * D, c.L * 5 + c.hd + 1);
      const d = caseDims(c);
      await engine.tidy(async () => {
        const io = {
          qkv: engine.tensor(qkv, [c.B, c.L, 3 * D]),
          lengths: engine.tensor(new Int32Array(c.lengths), [c.B]),
          rope: engine.tensor(
            ropeTable({ seq: c.L, headDim: c.hd, rotaryDim: d.rotaryDim, theta: 10000 }),
            [c.L, c.hd / 4, 4],
          ),
          out: engine.empty([c.B, c.L, D]),
          lse: engine.empty([c.B, c.H, c.L]),
        };
        const qblocks = Math.ceil(c.L / ATTENTION_TILED_ROWS);
        engine.runtime.dispatch(
          attentionForwardTiledSpec(c.hd, 64),
          io,
          { batch: c.B, seq: c.L, heads: c.H, qblocks },
          grid1d(c.B * c.H * qblocks),
        );
        const dqkv = engine.zeros([c.B, c.L, 3 * D]);
        engine.runtime.dispatch(
          attentionBackwardTiledSpec(c.hd, 32),
          { ...io, dout: engine.tensor(dout, [c.B, c.L, D]), dqkv, dsum: engine.empty([c.B, c.H, c.L]) },
          { batch: c.B, seq: c.L, heads: c.H },
          grid1d(c.B * c.H),
        );
        assertClose(await io.out.read(), attentionRef(qkv, c.lengths, d), { ...TOL, name: `out L=${c.L}` });
        assertClose(await dqkv.read(), attentionBackwardRef(qkv, c.lengths, dout, d), {
          ...TOL,
          name: `dqkv L=${c.L}`,
        });
      });
    }
  },
);

Deno.test(
  { name: "attentionBackward accumulates into dqkv at B=2 H=2 hd=32 L=23", ignore },
  async () => {
    const engine = await testEngine();
    const [B, L, H, hd] = [2, 23, 2, 32];
    const D = H * hd;
    const qkv = randn(B * L * 3 * D, 11);
    const dout = randn(B * L * D, 12);
    const prior = randn(B * L * 3 * D, 13);
    const lengths = [9, 23];
    const d: AttentionDims = { B, L, H, hd, rotaryDim: 32, theta: 10000 };
    await engine.tidy(async () => {
      const io = {
        qkv: engine.tensor(qkv, [B, L, 3 * D]),
        lengths: engine.tensor(new Int32Array(lengths), [B]),
        out: engine.empty([B, L, D]),
        lse: engine.empty([B, H, L]),
      };
      attentionForward(io, { heads: H });
      const dqkv = engine.tensor(prior, [B, L, 3 * D]);
      const dsum = engine.empty([B, H, L]);
      attentionBackward({ ...io, dout: engine.tensor(dout, [B, L, D]), dqkv, dsum }, { heads: H });
      const want = attentionBackwardRef(qkv, lengths, dout, d).map((v, i) => v + prior[i]!);
      assertClose(await dqkv.read(), want, { ...TOL, name: "dqkv" });
    });
  },
);

Deno.test({ name: "attention gradient matches finite differences", ignore }, async () => {
  const [B, L, H, hd] = [2, 5, 2, 8];
  await checkGradients(await testEngine(), {
    name: "attention",
    inputs: { qkv: { data: randn(B * L * 3 * H * hd, 21), shape: [B, L, 3 * H * hd] } },
    wrt: ["qkv"],
    constants: (engine) => ({ lengths: engine.tensor(new Int32Array([5, 3]), [B]) }),
    forward: ({ qkv, lengths }) => attention(qkv!, lengths!, { heads: H, rotaryDim: 4 }),
    probes: 24,
  });
});

Deno.test(
  { name: "attention without a tape records nothing and matches the reference", ignore },
  async () => {
    const engine = await testEngine();
    const [B, L, H, hd] = [2, 9, 1, 16];
    const qkv = randn(B * L * 3 * H * hd, 31);
    await engine.tidy(async () => {
      const x = engine.tensor(qkv, [B, L, 3 * H * hd]);
      const y = engine.noGrad(() =>
        attention(x, engine.tensor(new Int32Array([9, 4]), [B]), { heads: H, rotaryDim: 16, theta: 500 })
      );
      const d: AttentionDims = { B, L, H, hd, rotaryDim: 16, theta: 500 };
      assertClose(await y.read(), attentionRef(qkv, [9, 4], d), { ...TOL, name: "attention out" });
      assertEquals(y.requiresGrad, false);
    });
  },
);

Deno.test(
  { name: "attention on split-K partial products sums them as the reduction does, to the bit", ignore },
  async () => {
    const engine = await testEngine();
    // qkv = x·Wᵀ with M = 26 rows, N = 48, K = 300: a short grid, so the product is split over K.
    const [B, L, H, hd, K] = [2, 13, 2, 8, 300];
    const x = randn(B * L * K, 41), w = randn(3 * H * hd * K, 42);
    for (const kernel of ["tiled", "simple"] as const) {
      await engine.tidy(async () => {
        const xt = engine.tensor(x, [B, L, K]), wt = engine.tensor(w, [3 * H * hd, K]);
        const lengths = engine.tensor(new Int32Array([13, 6]), [B]);
        const options = { heads: H, rotaryDim: 8, kernel };
        const parts = linearParts(xt, wt);
        if (!("part" in parts)) throw new Error("expected the product to be split over K");
        // The sum the kernel must see: partial products added in split order in f32, as matmul_reduce adds.
        const host = await parts.part.read();
        const n = B * L * 3 * H * hd, summed = new Float32Array(n);
        for (let s = 0; s < parts.splits; s++) {
          for (let i = 0; i < n; i++) summed[i] = Math.fround(summed[i]! + host[s * n + i]!);
        }
        const got = await attention(parts, lengths, options).read();
        assertEquals(
          got,
          await attention(engine.tensor(summed, [B, L, 3 * H * hd]), lengths, options).read(),
        );
        // And it is the attention of the product.
        assertClose(got, await attention(linear(xt, wt), lengths, options).read(), { ...TOL, name: kernel });
        // A short K is not split: the product itself comes back.
        assertEquals(
          "part" in linearParts(xt.viewAs([B * L * 75, 4]), wt.viewAs([3 * H * hd * 75, 4])),
          false,
        );
      });
    }
    // A tape needs qkv whole for the backward.
    await engine.tidy(async () => {
      const xt = engine.tensor(x, [B, L, K]), wt = engine.tensor(w, [3 * H * hd, K]);
      const lengths = engine.tensor(new Int32Array([13, 6]), [B]);
      const parts = linearParts(xt, wt);
      engine.startTape();
      try {
        assertThrows(() => linearParts(xt, wt), /tape/);
        assertThrows(() => attention(parts, lengths, { heads: H }), /tape/);
      } finally {
        engine.backward(engine.zeros([1]));
      }
      assertThrows(
        () => attention(parts, engine.tensor(new Int32Array([13, 6, 1]), [3]), { heads: H }),
        /partial products/,
      );
      await engine.runtime.sync();
    });
  },
);

Deno.test({ name: "attention rejects bad shapes and options", ignore }, async () => {
  const engine = await testEngine();
  engine.tidy(() => {
    const lengths = engine.tensor(new Int32Array([4, 4]), [2]);
    assertThrows(() => attention(engine.empty([2, 4, 96]), lengths, { heads: 3 }), TypeError); // hd 32/3
    assertThrows(() => attention(engine.empty([2, 4, 100]), lengths, { heads: 1 }), TypeError); // 3D
    assertThrows(() => attention(engine.empty([2, 4, 3 * 128]), lengths, { heads: 1 }), TypeError); // hd 128
    assertThrows(() => attention(engine.empty([3, 4, 96]), lengths, { heads: 2 }), TypeError); // lengths [2]
    assertThrows(() => attention(engine.empty([2, 4, 96]), lengths, { heads: 2, rotaryDim: 7 }), RangeError);
    assertThrows(() => attention(engine.empty([2, 4, 96]), lengths, { heads: 2, theta: 0 }), RangeError);
  });
});

Deno.test("ropeTable matches float32 angles with identity past the rotary dims", () => {
  const t = ropeTable({ seq: 3, headDim: 8, rotaryDim: 4, theta: 10000 });
  const f = Math.fround;
  // pos 2, pair 1: freq = 1/10000^(2/4) = 0.01, angle f32(2 · f32(0.01)).
  const a = f(2 * f(1 / f(10000 ** 0.5)));
  assertClose([t[2 * 8 + 2]!, t[2 * 8 + 3]!], [Math.cos(a), Math.sin(a)], { atol: 1e-7, rtol: 0 });
  assertEquals([...t.subarray(2 * 8 + 4, 3 * 8)], [1, 0, 1, 0]);
  assertEquals([...t.subarray(0, 8)], [1, 0, 1, 0, 1, 0, 1, 0]);
});

Deno.test("the tiled attention kernels' workgroup memory and the builders' range checks", () => {
  assertEquals(attentionForwardTiledBytes(64), 28288);
  assertEquals(attentionForwardTiledBytes(64, 32), 19584);
  assertThrows(() => attentionForwardTiledSpec(64, 16), RangeError);
  assertEquals(attentionBackwardTiledBytes(64), 30848);
  assertEquals(attentionBackwardTiledBytes(64, 16), 19840);
  assertThrows(() => attentionBackwardTiledSpec(0), RangeError);
  assertThrows(() => attentionBackwardTiledSpec(64, 8), RangeError);
  assertThrows(() => attentionForwardTiledSpec(66), RangeError);
  assertThrows(() => attentionForwardSpec(12 + 1), RangeError);
  assertThrows(() => attentionBackwardSpec(128), RangeError);
});
