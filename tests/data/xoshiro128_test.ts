import assert from "node:assert/strict";
import { Xoshiro128 } from "../../src/data/xoshiro128.ts";
import { epochPermutation, permutation, shuffle } from "../../src/data/shuffle.ts";

Deno.test("Xoshiro128 matches the reference xoshiro128** outputs from state [1, 2, 3, 4]", () => {
  const rng = Xoshiro128.fromState([1, 2, 3, 4]);
  // Computed by hand from the reference C code: rotl(s1·5, 7)·9, then the state update.
  assert.deepEqual(Array.from({ length: 4 }, () => rng.nextUint32()), [11520, 0, 5927040, 70819200]);
});

Deno.test("Xoshiro128.fromState() continues the sequence of the saved generator", () => {
  const rng = new Xoshiro128(123, [4, 5]);
  for (let i = 0; i < 17; i++) rng.nextUint32();
  const copy = Xoshiro128.fromState(JSON.parse(JSON.stringify(rng.state())));
  for (let i = 0; i < 100; i++) assert.equal(copy.nextUint32(), rng.nextUint32());
});

Deno.test("Xoshiro128 gives unrelated sequences for nearby seeds and streams", () => {
  const first = (rng: Xoshiro128) => Array.from({ length: 4 }, () => rng.nextUint32());
  const seen = new Set<string>();
  for (const [seed, stream] of [[0, []], [1, []], [0, [0]], [0, [1]], [0, [1, 0]], [2 ** 32, []]] as const) {
    seen.add(first(new Xoshiro128(seed, stream)).join(","));
  }
  assert.equal(seen.size, 6);
  assert.deepEqual(first(new Xoshiro128(5, [1])), first(new Xoshiro128(5, [1])));
});

Deno.test("Xoshiro128.int() stays in range and hits every value; float() is in [0, 1)", () => {
  const rng = new Xoshiro128(9);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 7000; i++) counts[rng.int(0, 6)]++;
  for (const c of counts) assert.ok(c > 800 && c < 1200, `counts ${counts}`);
  assert.equal(rng.int(4, 4), 4);
  let sum = 0;
  for (let i = 0; i < 10000; i++) {
    const u = rng.float();
    assert.ok(u >= 0 && u < 1);
    sum += u;
  }
  assert.ok(Math.abs(sum / 10000 - 0.5) < 0.02);
});

Deno.test("Xoshiro128 rejects bad seeds, ranges and states", () => {
  assert.throws(() => new Xoshiro128(-1), RangeError);
  assert.throws(() => new Xoshiro128(1.5), RangeError);
  assert.throws(() => new Xoshiro128(0, [-2]), RangeError);
  assert.throws(() => new Xoshiro128(0).int(3, 2), RangeError);
  assert.throws(() => Xoshiro128.fromState([0, 0, 0, 0]), RangeError);
  assert.throws(() => Xoshiro128.fromState([1, 2, 3]), TypeError);
  assert.throws(() => Xoshiro128.fromState([1, 2, 3, 2 ** 32]), RangeError);
});

Deno.test("shuffle() and permutation() return permutations, reproducible by seed", () => {
  const p = permutation(1000, new Xoshiro128(1));
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  assert.deepEqual(permutation(1000, new Xoshiro128(1)), p);
  assert.notDeepEqual(permutation(1000, new Xoshiro128(2)), p);
  assert.deepEqual(permutation(0, new Xoshiro128(1)).length, 0);
  assert.deepEqual(shuffle(["x"], new Xoshiro128(1)), ["x"]);
  assert.throws(() => permutation(-1, new Xoshiro128(1)), RangeError);
});

Deno.test("shuffle() puts each item at each position about equally often", () => {
  const rng = new Xoshiro128(77);
  const counts = Array.from({ length: 4 }, () => new Array(4).fill(0));
  for (let t = 0; t < 8000; t++) {
    const items = shuffle([0, 1, 2, 3], rng);
    items.forEach((item, pos) => counts[item]![pos]++);
  }
  for (const row of counts) for (const c of row) assert.ok(c > 1800 && c < 2200, JSON.stringify(counts));
});

Deno.test("epochPermutation() depends on seed and epoch only", () => {
  const a = epochPermutation(50, { seed: 3, epoch: 0 });
  assert.deepEqual(epochPermutation(50, { seed: 3, epoch: 0 }), a);
  assert.notDeepEqual(epochPermutation(50, { seed: 3, epoch: 1 }), a);
  assert.notDeepEqual(epochPermutation(50, { seed: 4, epoch: 0 }), a);
});
