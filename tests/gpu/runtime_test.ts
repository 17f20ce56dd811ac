import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { GpuError } from "../../src/errors.ts";
import type { KernelSpec } from "../../src/gpu/kernel.ts";
import { parseBindings } from "../../src/gpu/kernel.ts";
import { GpuRuntime } from "../../src/gpu/runtime.ts";
import { FILL } from "../../src/gpu/fill.ts";
import { addScaled, scale } from "../../src/tensor/ops/elementwise.ts";
import { gelu } from "../../src/tensor/ops/gelu.ts";

/** out[0] = inp[0]: the smallest kernel with one read and one written binding. */
const COPY_ONE: KernelSpec = {
  name: "copy_one",
  reads: ["inp"],
  writes: ["out"],
  code: `@group(0) @binding(0) var<storage, read> inp: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn copy_one() { out[0] = inp[0]; }`,
};

Deno.test({ name: "fill writes every element, including past 65535 workgroups", ignore }, async () => {
  const engine = await testEngine();
  const n = 256 * 65535 + 300;
  const t = engine.empty([n], "f32");
  engine.fill(t, 2.5);
  const host = await t.read();
  assert.equal(host.length, n);
  assert.ok(host.every((v) => v === 2.5));
  t.dispose();
});

/** A runtime on the test device whose storage bindings may cover at most `maxBinding` bytes. */
async function runtimeWithBindingLimit(maxBinding: number): Promise<GpuRuntime> {
  const gpu = (await testEngine()).runtime.gpu;
  const l = gpu.limits;
  const limits = {
    minUniformBufferOffsetAlignment: l.minUniformBufferOffsetAlignment,
    minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxBufferSize: l.maxBufferSize,
    maxStorageBufferBindingSize: maxBinding,
  } as GPUSupportedLimits;
  return new GpuRuntime({ ...gpu, limits });
}

Deno.test({
  name: "fill, clear and copy touch exactly their words: unaligned offsets, odd lengths, split bindings",
  ignore,
}, async () => {
  const align = (await testEngine()).runtime.storageAlignment;
  // 2·align bytes per binding: the ranges below need several dispatches each.
  for (const maxBinding of [undefined, 2 * align]) {
    const engine = await testEngine();
    const runtime = maxBinding === undefined ? engine.runtime : await runtimeWithBindingLimit(maxBinding);
    const n = 1000;
    const a = engine.empty([n], "f32"), b = engine.empty([n], "f32");
    await engine.runtime.flush(); // the poison, recorded by the engine's runtime
    const source = Float32Array.from({ length: n }, (_, i) => i + 0.5);
    runtime.write(b, source);
    const at = (t: typeof a, word: number, words: number) => ({
      buffer: t.buffer,
      byteOffset: t.byteOffset + 4 * word,
      byteLength: 4 * words,
    });
    runtime.clear(at(a, 3, 37));
    runtime.fill(at(a, 101, 299), new Uint32Array(new Float32Array([-2.25]).buffer)[0]!);
    runtime.copy(at(b, 7, 411), at(a, 500, 411));
    const host = new Float32Array(await runtime.read(a));
    for (let i = 0; i < n; i++) {
      const expected = i >= 3 && i < 40
        ? 0
        : i >= 101 && i < 400
        ? -2.25
        : i >= 500 && i < 911
        ? source[i - 500 + 7]
        : NaN;
      assert.ok(Object.is(host[i], expected), `word ${i}: ${host[i]} (binding limit ${maxBinding})`);
    }
    a.dispose();
    b.dispose();
  }
});

Deno.test({ name: "poisoned tensors read back as NaN", ignore }, async () => {
  const engine = await testEngine();
  const t = engine.empty([37]);
  assert.ok((await t.read()).every(Number.isNaN));
  t.dispose();
});

Deno.test({ name: "a WGSL error names the kernel and shows the numbered source", ignore }, async () => {
  const engine = await testEngine();
  const broken: KernelSpec = { ...FILL, name: "fill", code: FILL.code.replace("params.bits", "params.bitz") };
  const error = await engine.runtime.compile(broken).catch((e) => e);
  assert.ok(error instanceof GpuError);
  assert.match(error.message, /Cannot compile kernel "fill"/);
  assert.match(error.message, /\d+ \| /);
});

Deno.test({
  name: "reading and writing one buffer in one dispatch is refused with the kernel's name",
  ignore,
}, async () => {
  const engine = await testEngine();
  const t = engine.zeros([64]);
  assert.throws(() => engine.runtime.dispatch(COPY_ONE, { inp: t, out: t }, {}, [1]), /copy_one/);
  t.dispose();
});

Deno.test({ name: "the pool reuses buffers: a repeated scope allocates nothing new", ignore }, async () => {
  const engine = await testEngine();
  const work = () =>
    engine.tidy(() => {
      const a = engine.zeros([1000]);
      const b = engine.zeros([333]);
      engine.fill(a, 1);
      engine.fill(b, 2);
    });
  work();
  const after1 = engine.runtime.stats;
  work();
  work();
  assert.deepEqual(engine.runtime.stats, after1);
  await engine.runtime.sync();
});

type TestEngine = Awaited<ReturnType<typeof testEngine>>;

/**
 * Runs `work` and flushes it with the device's `method` replaced by `wrap(original)`, then puts the
 * original back.
 */
async function withDeviceMethod<K extends "createBindGroup" | "createCommandEncoder">(
  engine: TestEngine,
  method: K,
  wrap: (original: GPUDevice[K]) => GPUDevice[K],
  work: () => void,
): Promise<void> {
  const device = engine.runtime.device;
  const original = device[method];
  device[method] = wrap(original.bind(device) as GPUDevice[K]);
  try {
    work();
    await engine.runtime.sync();
  } finally {
    device[method] = original;
  }
}

/** Runs `work` and returns how many bind groups the device created meanwhile. */
async function bindGroupsCreated(engine: TestEngine, work: () => void): Promise<number> {
  let created = 0;
  await withDeviceMethod(engine, "createBindGroup", (create) => (descriptor) => {
    created++;
    return create(descriptor);
  }, work);
  return created;
}

Deno.test(
  { name: "a repeated scope gets its buffers back in order and creates no bind groups", ignore },
  async () => {
    const engine = await testEngine();
    // A chain a → b → c binds ordered pairs of buffers: handed out in another order, it needs new groups.
    const work = () =>
      engine.tidy(() => {
        const [a, b, c] = [engine.zeros([77]), engine.empty([77]), engine.empty([77])];
        engine.runtime.dispatch(COPY_ONE, { inp: a, out: b }, {}, [1]);
        engine.runtime.dispatch(COPY_ONE, { inp: b, out: c }, {}, [1]);
      });
    await bindGroupsCreated(engine, work);
    assert.equal(await bindGroupsCreated(engine, work), 0);
  },
);

/** Runs `work`, flushes, and returns how many compute passes the flush's encoders began. */
async function passesBegun(engine: TestEngine, work: () => void): Promise<number> {
  let passes = 0;
  await withDeviceMethod(engine, "createCommandEncoder", (create) => (descriptor) => {
    const encoder = create(descriptor);
    const begin = encoder.beginComputePass.bind(encoder);
    encoder.beginComputePass = (pass) => {
      passes++;
      return begin(pass);
    };
    return encoder;
  }, work);
  return passes;
}

Deno.test({
  name: "compute passes hold at most dispatchesPerPass dispatches, recorded or replayed",
  ignore,
}, async () => {
  const engine = await testEngine();
  const runtime = engine.runtime;
  await runtime.sync();
  const [a, b, c] = [
    engine.keep(engine.zeros([5])),
    engine.keep(engine.empty([5])),
    engine.keep(engine.empty([5])),
  ];
  a.write(new Float32Array([7, 0, 0, 0, 0]));
  // Five dispatches, each reading what the one before wrote: a pass begun without its pipeline, or one
  // that lost a dispatch, would leave c[0] unset.
  const chain = () => {
    for (const [inp, out] of [[a, b], [b, c], [c, b], [b, c], [c, b]] as const) {
      runtime.dispatch(COPY_ONE, { inp, out }, {}, [1]);
    }
    runtime.dispatch(COPY_ONE, { inp: b, out: c }, {}, [1]);
  };
  try {
    assert.equal(runtime.dispatchesPerPass, Infinity);
    assert.equal(await passesBegun(engine, chain), 1);
    for (const [limit, passes] of [[1, 6], [2, 3], [4, 2]] as const) {
      runtime.dispatchesPerPass = limit;
      engine.fill(b, NaN);
      engine.fill(c, NaN);
      await runtime.sync();
      assert.equal(await passesBegun(engine, chain), passes, `${limit} per pass`);
      assert.equal((await c.read())[0], 7);
      const recording = runtime.record(chain);
      engine.fill(c, NaN);
      await runtime.sync();
      assert.equal(
        await passesBegun(engine, () => runtime.replay(recording)),
        passes,
        `replayed, ${limit} per pass`,
      );
      assert.equal((await c.read())[0], 7);
      recording.dispose();
    }
    assert.throws(() => runtime.dispatchesPerPass = 0, RangeError);
  } finally {
    runtime.dispatchesPerPass = Infinity;
    for (const t of [a, b, c]) t.dispose();
  }
});

Deno.test(
  { name: "equal specs built separately share one pipeline and their bind groups", ignore },
  async () => {
    const engine = await testEngine();
    const spec = (): KernelSpec => ({
      name: "fill_seven",
      reads: [],
      writes: ["out"],
      code: `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn fill_seven() { out[0] = 7.0; }`,
    });
    const t = engine.zeros([4]);
    assert.equal(
      await bindGroupsCreated(engine, () => engine.runtime.dispatch(spec(), { out: t }, {}, [1])),
      1,
    );
    assert.equal(
      await bindGroupsCreated(engine, () => engine.runtime.dispatch(spec(), { out: t }, {}, [1])),
      0,
    );
    assert.equal((await t.read())[0], 7);
    t.dispose();
  },
);

Deno.test("parseBindings reads storage bindings and the Params struct", () => {
  const parsed = parseBindings(FILL.code);
  assert.deepEqual(parsed.storage, [{ binding: 0, name: "out", access: "read_write" }]);
  assert.deepEqual(parsed.uniforms, {
    binding: 1,
    fields: [["n", "u32"], ["start", "u32"], ["bits", "u32"]],
  });
});

Deno.test({
  name: "a recording replays its dispatches on new input and keeps its buffers from the pool",
  ignore,
}, async () => {
  const engine = await testEngine();
  const runtime = engine.runtime;
  const n = 37;
  const x = engine.keep(engine.tensor(Float32Array.from({ length: n }, (_, i) => i - 10), [n]));
  const y = engine.keep(engine.empty([n], "f32"));
  // Several ops with intermediates of y's size: a replay must find them where it left them.
  const intermediates = new Set<GPUBuffer>();
  const step = () =>
    engine.tidy(() => {
      const parts = [gelu(x), scale(x, 3)];
      const sum = addScaled(parts[0]!, parts[1]!, 1, -0.5);
      for (const t of [...parts, sum]) intermediates.add(t.buffer);
      runtime.copy(sum, y);
    });
  const freeBefore = runtime.stats.free;
  const recording = runtime.record(step);
  assert.ok(recording.size >= 4, `${recording.size} dispatches recorded`);
  // The intermediates now belong to the recording: the pool has fewer free buffers and hands out others.
  assert.ok(runtime.stats.free < freeBefore + 3);
  const owned = await engine.tidy(async () => {
    const taken = [engine.empty([n]), engine.empty([n]), engine.empty([n])];
    for (const t of taken) assert.ok(!intermediates.has(t.buffer), "the pool handed out a recorded buffer");
    const input = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 4);
    x.write(input);
    engine.fill(y, NaN);
    runtime.replay(recording);
    runtime.replay(recording);
    const replayed = await y.read();
    assert.ok(replayed.every(Number.isFinite));
    step(); // the same work recorded as usual
    assert.deepEqual(replayed, await y.read());
    return runtime.stats.inUse;
  });
  assert.ok(owned > 0);
  const inUse = runtime.stats.inUse;
  recording.dispose();
  assert.ok(runtime.stats.inUse < inUse, "dispose returns the recording's buffers");
  assert.throws(() => runtime.replay(recording), GpuError);
  x.dispose();
  y.dispose();
});

Deno.test(
  { name: "a rebound recording reads another view in place of one it bound, and goes with it", ignore },
  async () => {
    const engine = await testEngine();
    const runtime = engine.runtime;
    const row = runtime.storageAlignment / 4; // floats per aligned row
    const x = engine.keep(
      engine.tensor(Float32Array.from({ length: 3 * row }, (_, i) => i / row - 1.5), [3, row]),
    );
    let y!: ReturnType<typeof gelu>;
    const recording = runtime.record(() => void (y = engine.keep(scale(gelu(x.rows(0, 1)), 2))));
    const rebound = [1, 2].map((r) => runtime.rebind(recording, x.rows(0, 1), x.rows(r, 1)));
    for (const [r, replayed] of [[2, rebound[1]!], [0, recording], [1, rebound[0]!]] as const) {
      engine.fill(y, NaN);
      runtime.replay(replayed);
      const got = await y.read();
      const want = await engine.tidy(() => scale(gelu(x.rows(r, 1)), 2)).read();
      assert.deepEqual(got, want, `row ${r}`);
    }
    assert.throws(() => runtime.rebind(recording, x.rows(0, 1), x.rows(0, 2)), /same length/);
    const unaligned = engine.keep(engine.zeros([row + 1]));
    const shifted = { buffer: unaligned.buffer, byteOffset: 4, byteLength: row * 4 };
    assert.throws(() => runtime.rebind(recording, x.rows(0, 1), shifted), /offset a multiple/);
    const inUse = runtime.stats.inUse;
    rebound[0]!.dispose(); // releases nothing: the buffers are the original's
    assert.equal(runtime.stats.inUse, inUse);
    runtime.replay(rebound[1]!);
    await runtime.sync();
    for (const t of [y, unaligned]) t.dispose();
    recording.dispose();
    assert.ok(rebound.every((r) => r.disposed && r.size === 0));
    assert.throws(() => runtime.replay(rebound[1]!), GpuError);
    assert.throws(() => runtime.rebind(recording, x.rows(0, 1), x.rows(1, 1)), /disposed/);
    x.dispose();
  },
);

Deno.test({ name: "a recording refuses what a replay could not repeat", ignore }, async () => {
  const engine = await testEngine();
  const runtime = engine.runtime;
  const outside = engine.keep(engine.zeros([4]));
  assert.throws(() => runtime.record(() => outside.write(new Float32Array(4))), /writing host data/);
  assert.throws(() => runtime.record(() => void runtime.readLater(outside)), /reading back/);
  assert.throws(() => runtime.record(() => outside.dispose()), /did not acquire/);
  assert.throws(() => runtime.record(() => runtime.record(() => {})), /nest/);
  // The runtime still works after the refusals.
  engine.fill(outside, 2);
  assert.deepEqual([...await outside.read()], [2, 2, 2, 2]);
  outside.dispose();
});
