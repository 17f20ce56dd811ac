import assert from "node:assert/strict";
import { type Batch, type BatchTokenizer, collateIds, Collator } from "../../src/data/collate.ts";
import { Xoshiro128 } from "../../src/data/xoshiro128.ts";

const EOS = 1;
const PAD = 2;

/** A word-level stand-in for the SentencePiece tokenizer: word → 4 + its index in a growing table. */
class FakeTokenizer implements BatchTokenizer {
  readonly eosId = EOS;
  readonly padId = PAD;
  readonly calls: { text: string; options: { sample?: boolean; alpha?: number } | undefined }[] = [];
  #table = new Map<string, number>();

  encode(text: string, options?: { sample?: boolean; alpha?: number }): number[] {
    this.calls.push({ text, options });
    return text.split(" ").filter((w) => w !== "").map((w) => {
      if (!this.#table.has(w)) this.#table.set(w, 4 + this.#table.size);
      return this.#table.get(w)!;
    });
  }
}

/** Random examples: lengths 0 … maxLength, ids ≥ 4 (never EOS or pad). */
function randomExamples(rng: Xoshiro128, count: number, maxLength: number): number[][] {
  return Array.from(
    { length: count },
    () => Array.from({ length: rng.int(0, maxLength) }, () => rng.int(4, 999)),
  );
}

/** Checks every invariant of a collated batch against the examples it came from. */
function checkBatch(batch: Batch, examples: number[][], cropLength: number): void {
  const B = examples.length;
  const L = cropLength;
  assert.equal(batch.batchSize, B);
  assert.equal(batch.length, L);
  for (const a of [batch.ids, batch.condMask, batch.diffMask, batch.rowWeight]) assert.equal(a.length, B * L);
  assert.equal(batch.lengths.length, B);
  const own = examples.map((e) => Math.min(e.length + 1, L));
  const longest = Math.max(...own);
  assert.equal(batch.tokens, own.reduce((a, b) => a + b, 0));
  let diffCount = 0;
  for (let b = 0; b < B; b++) {
    const n = own[b]!;
    const expected = [...examples[b]!, EOS].slice(0, L);
    while (expected.length < L) expected.push(PAD);
    assert.deepEqual([...batch.ids.subarray(b * L, (b + 1) * L)], expected, `ids of example ${b}`);
    const length = batch.lengths[b]!;
    assert.ok(length >= n && length <= longest, `length ${length} outside [${n}, ${longest}]`);
    let cond = 0;
    for (let p = 0; p < L; p++) {
      const i = b * L + p;
      assert.ok(batch.condMask[i] === 0 || batch.condMask[i] === 1);
      if (p >= n) assert.equal(batch.condMask[i], 0, "conditioning outside the example");
      cond += batch.condMask[i]!;
      const diff = p < length && batch.condMask[i] === 0 ? 1 : 0;
      assert.equal(batch.diffMask[i], diff);
      diffCount += diff;
    }
    assert.ok(cond <= n - 1, `${cond} conditioning positions in an example of length ${n}`);
  }
  let sum = 0;
  for (let i = 0; i < B * L; i++) {
    assert.equal(batch.rowWeight[i], batch.diffMask[i] === 1 ? Math.fround(1 / diffCount) : 0);
    sum += batch.rowWeight[i]!;
  }
  assert.ok(diffCount > 0);
  assert.ok(Math.abs(sum - 1) < 1e-5, `rowWeight sums to ${sum}`);
}

Deno.test("collateIds() keeps every invariant over random batches (shapes, EOS, crop, masks, lengths, pads)", () => {
  const rng = new Xoshiro128(1);
  for (let trial = 0; trial < 300; trial++) {
    const cropLength = [1, 2, 7, 16, 64][trial % 5]!;
    const examples = randomExamples(rng, rng.int(1, 9), rng.int(0, 80));
    const batch = collateIds(examples, rng, { eosId: EOS, padId: PAD, cropLength });
    checkBatch(batch, examples, cropLength);
  }
});

Deno.test("collateIds() appends EOS, crops and pads to the crop length", () => {
  const batch = collateIds([[5, 6, 7, 8, 9], [10, 11], []], new Xoshiro128(2), {
    eosId: EOS,
    padId: PAD,
    cropLength: 4,
  });
  assert.deepEqual([...batch.ids], [5, 6, 7, 8, 10, 11, EOS, PAD, EOS, PAD, PAD, PAD]);
  assert.equal(batch.tokens, 4 + 3 + 1);
  assert.equal(collateIds([[5]], new Xoshiro128(0), { eosId: EOS, padId: PAD }).length, 64);
});

Deno.test("collateIds() never conditions an example of length 1", () => {
  const rng = new Xoshiro128(3);
  for (let t = 0; t < 200; t++) {
    const batch = collateIds([[], [4, 5, 6]], rng, { eosId: EOS, padId: PAD, cropLength: 8 });
    assert.equal(batch.condMask[0], 0);
    assert.equal(batch.diffMask[0], 1);
  }
});

Deno.test("collateIds() draws spans of length uniform in [0, n-1], shuffled half of the time", () => {
  const rng = new Xoshiro128(4);
  const n = 11; // 10 ids + EOS
  const example = Array.from({ length: n - 1 }, (_, i) => 4 + i);
  const spanCounts = new Array(n).fill(0);
  let contiguous = 0;
  let nonEmpty = 0;
  const trials = 4000;
  for (let t = 0; t < trials; t++) {
    const batch = collateIds([example], rng, { eosId: EOS, padId: PAD, cropLength: 16 });
    const bits = [...batch.condMask.subarray(0, n)];
    const count = bits.reduce((a, b) => a + b, 0);
    spanCounts[count]++;
    if (count >= 2) {
      nonEmpty++;
      const first = bits.indexOf(1);
      if (bits.slice(first, first + count).every((b) => b === 1)) contiguous++;
    }
  }
  assert.equal(spanCounts[n - 1 + 1] ?? 0, 0);
  for (let c = 0; c < n; c++) {
    const expected = trials / n;
    assert.ok(Math.abs(spanCounts[c] - expected) < 0.25 * expected, `span count histogram ${spanCounts}`);
  }
  // Unshuffled spans are contiguous; shuffled ones rarely are, so about half of all masks are.
  const fraction = contiguous / nonEmpty;
  assert.ok(fraction > 0.5 && fraction < 0.65, `contiguous fraction ${fraction}`);
});

Deno.test("collateIds() draws lengths uniformly in [own length, longest in batch]", () => {
  const rng = new Xoshiro128(5);
  const counts = new Map<number, number>();
  for (let t = 0; t < 3000; t++) {
    const batch = collateIds([[4], [4, 5, 6, 7, 8]], rng, { eosId: EOS, padId: PAD, cropLength: 8 });
    counts.set(batch.lengths[0]!, (counts.get(batch.lengths[0]!) ?? 0) + 1);
    assert.equal(batch.lengths[1], 6);
  }
  assert.deepEqual([...counts.keys()].sort(), [2, 3, 4, 5, 6]);
  for (const c of counts.values()) assert.ok(c > 500 && c < 700, `length histogram ${[...counts]}`);
});

Deno.test("collateIds() is reproducible by seed", () => {
  const examples = randomExamples(new Xoshiro128(6), 8, 70);
  const options = { eosId: EOS, padId: PAD, cropLength: 64 };
  const a = collateIds(examples, new Xoshiro128(42), options);
  assert.deepEqual(collateIds(examples, new Xoshiro128(42), options), a);
  assert.notDeepEqual(collateIds(examples, new Xoshiro128(43), options).condMask, a.condMask);
});

Deno.test("collateIds() rejects an empty batch, a bad crop length and non-integer ids", () => {
  const rng = new Xoshiro128(0);
  assert.throws(() => collateIds([], rng, { eosId: EOS, padId: PAD }), RangeError);
  assert.throws(() => collateIds([[4]], rng, { eosId: EOS, padId: PAD, cropLength: 0 }), RangeError);
  assert.throws(() => collateIds([[4.5]], rng, { eosId: EOS, padId: PAD }), TypeError);
  assert.throws(() => collateIds([[4]], rng, { eosId: Number.NaN, padId: PAD }), TypeError);
});

Deno.test("Collator encodes with subword sampling (alpha 0.1) by default and collates", () => {
  const tokenizer = new FakeTokenizer();
  const collator = new Collator(tokenizer, { cropLength: 6 });
  const batch = collator.collate(["the dog sees the cat", "a cat"], new Xoshiro128(0));
  const options = tokenizer.calls.map((c) => c.options as { sample: boolean; alpha: number; seed: number });
  assert.deepEqual(options.map(({ sample, alpha }) => ({ sample, alpha })), [{ sample: true, alpha: 0.1 }, {
    sample: true,
    alpha: 0.1,
  }]);
  // Each example's sampling seed comes from the batch generator: same generator state, same seeds.
  assert.ok(options.every((o) => Number.isInteger(o.seed)) && options[0]!.seed !== options[1]!.seed);
  const again = new FakeTokenizer();
  new Collator(again, { cropLength: 6 }).collate(["the dog sees the cat", "a cat"], new Xoshiro128(0));
  assert.deepEqual(again.calls.map((c) => c.options), options);
  assert.deepEqual([...batch.ids], [4, 5, 6, 4, 7, EOS, 8, 7, EOS, PAD, PAD, PAD]);
  checkBatch(batch, [[4, 5, 6, 4, 7], [8, 7]], 6);
  new Collator(tokenizer, { sample: false, alpha: 0.3 }).collate(["x"], new Xoshiro128(0));
  assert.deepEqual(tokenizer.calls.at(-1)!.options, { sample: false });
  assert.equal(collator.cropLength, 6);
  assert.throws(() => new Collator(tokenizer, { alpha: 2 }), RangeError);
  assert.throws(() => new Collator(tokenizer, { cropLength: 1.5 }), RangeError);
});

Deno.test("collateIds() with `unconditional` clears the mask of that share of examples", () => {
  const lengths = new Xoshiro128(8);
  const examples = Array.from({ length: 400 }, () => Array.from({ length: lengths.int(10, 30) }, () => 7));
  const options = { eosId: EOS, padId: PAD, cropLength: 32 };
  const conditioned = (batch: Batch) =>
    Array.from({ length: 400 }, (_, b) => batch.condMask.subarray(b * 32, (b + 1) * 32).some((v) => v === 1));
  const none = collateIds(examples, new Xoshiro128(3), { ...options, unconditional: 1 });
  assert.ok(none.condMask.every((v) => v === 0));
  // Every non-padding position of every example is then diffused.
  for (let b = 0; b < 400; b++) {
    for (let p = 0; p < none.lengths[b]!; p++) assert.equal(none.diffMask[b * 32 + p], 1);
  }
  // The seed's collate conditions most examples (an empty span has chance 1/n); with 0.5 about half
  // of them lose their mask: the share with any conditioning drops by about half.
  const seedShare = conditioned(collateIds(examples, new Xoshiro128(3), options)).filter(Boolean).length /
    400;
  const halfShare = conditioned(collateIds(examples, new Xoshiro128(3), { ...options, unconditional: 0.5 }))
    .filter(Boolean).length / 400;
  assert.ok(seedShare > 0.9, `seed share ${seedShare}`);
  assert.ok(Math.abs(halfShare - seedShare / 2) < 0.08, `half share ${halfShare} vs ${seedShare}`);
  assert.throws(
    () => collateIds(examples, new Xoshiro128(3), { ...options, unconditional: 1.5 }),
    RangeError,
  );
});
