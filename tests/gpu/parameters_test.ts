import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { gaussian, ParameterStore } from "../../src/tensor/parameters.ts";

Deno.test({
  name: "ParameterStore lays parameters out aligned, initialises them and round-trips values",
  ignore,
}, async () => {
  const engine = await testEngine();
  const store = new ParameterStore(engine);
  store.declare("a", [3, 5], { kind: "normal", std: 0.02 });
  store.declare("b", [7], { kind: "constant", value: 1 });
  store.declare("q", [64, 2], { kind: "constant", value: 0 });
  store.declare("k", [64, 2], { kind: "constant", value: 0.5 });
  store.allocate(3);
  assert.equal(store.count, 15 + 7 + 256);
  assert.equal(store.length, 64 + 64 + 256);
  const values = await store.read();
  assert.deepEqual([...values.get("b")!], Array(7).fill(1));
  const a = values.get("a")!;
  assert.ok(a.every((v) => Math.abs(v) < 0.2) && a.some((v) => v !== 0));
  assert.equal(store.get("a").byteOffset % 256, 0);
  assert.equal(store.get("b").byteOffset, 256);
  const qk = store.span(["q", "k"]);
  assert.deepEqual(qk.shape, [128, 2]);
  const both = await qk.read();
  assert.ok(both.slice(0, 128).every((v) => v === 0) && both.slice(128).every((v) => v === 0.5));
  assert.throws(() => store.span(["a", "b"]), /not contiguous/);
  values.set("b", new Float32Array([1, 2, 3, 4, 5, 6, 7]));
  store.write(values);
  assert.deepEqual([...(await store.get("b").read())], [1, 2, 3, 4, 5, 6, 7]);
  const grads = await store.read("grads");
  assert.ok([...grads.values()].every((g) => g.every((v) => v === 0)));
  assert.throws(() => store.write(new Map([["a", new Float32Array(15)]])), /"b" is missing/);
  store.dispose();
});

Deno.test("gaussian draws have mean 0 and variance 1 and repeat by seed", () => {
  const draw = gaussian(11);
  let s = 0, s2 = 0;
  const n = 200000;
  for (let i = 0; i < n; i++) {
    const x = draw();
    s += x;
    s2 += x * x;
  }
  assert.ok(Math.abs(s / n) < 5 / Math.sqrt(n));
  assert.ok(Math.abs(s2 / n - 1) < 0.02);
  assert.equal(gaussian(5)(), gaussian(5)());
});
