import assert from "node:assert/strict";
import { BatchStream, type BatchStreamOptions } from "../../src/data/batches.ts";
import type { Batch, BatchTokenizer } from "../../src/data/collate.ts";
import { CorpusIndex } from "../../src/data/corpus_index.ts";

/** Line "line i" encodes to [100 + i], so the first id of a row tells which line it holds. */
const tokenizer: BatchTokenizer = {
  eosId: 1,
  padId: 2,
  encode: (text) => [100 + Number(text.split(" ")[1])],
};

function corpusOf(count: number): CorpusIndex {
  return CorpusIndex.fromLines(Array.from({ length: count }, (_, i) => `line ${i}`));
}

function linesOf(batch: Batch): number[] {
  return Array.from({ length: batch.batchSize }, (_, b) => batch.ids[b * batch.length]! - 100);
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

Deno.test("BatchStream visits every line once per epoch, completing the last batch from the next epoch", async () => {
  const N = 10;
  const stream = new BatchStream(corpusOf(N), tokenizer, { batchSize: 4, cropLength: 4, seed: 1 });
  const seen: number[] = [];
  for (let k = 0; k < 10; k++) seen.push(...linesOf(await stream.next()));
  for (let epoch = 0; epoch < 4; epoch++) {
    assert.deepEqual(sorted(seen.slice(epoch * N, (epoch + 1) * N)), range(N));
  }
  assert.notDeepEqual(seen.slice(0, N), seen.slice(N, 2 * N)); // reshuffled
});

Deno.test("BatchStream reports epoch, position and batches per epoch; for await yields one epoch", async () => {
  const stream = new BatchStream(corpusOf(10), tokenizer, { batchSize: 4, cropLength: 4 });
  assert.deepEqual([stream.batchesInEpoch(0), stream.batchesInEpoch(1), stream.batchesInEpoch(2)], [3, 2, 3]);
  for (let epoch = 0; epoch < 3; epoch++) {
    assert.equal(stream.epoch, epoch);
    assert.equal(stream.position, 0);
    const positions: number[] = [];
    for await (const batch of stream) {
      assert.equal(batch.batchSize, 4);
      positions.push(stream.position);
    }
    assert.equal(positions.length, stream.batchesInEpoch(epoch));
  }
  assert.equal(stream.batchIndex, 8);
});

Deno.test("BatchStream resumes from a saved state with the same next batches", async () => {
  const options: BatchStreamOptions = { batchSize: 3, cropLength: 8, seed: 5 };
  const corpus = CorpusIndex.fromLines(
    Array.from({ length: 11 }, (_, i) => `line ${i} ${"w ".repeat(i % 6)}`),
  );
  const stream = new BatchStream(corpus, tokenizer, options);
  for (let k = 0; k < 7; k++) await stream.next();
  const saved = JSON.parse(JSON.stringify(stream.state()));
  const expected = [];
  for (let k = 0; k < 6; k++) expected.push(await stream.next());

  const resumed = new BatchStream(corpus, tokenizer, { ...options, seed: 0 });
  resumed.restore(saved);
  assert.equal(resumed.epoch, 1);
  for (const batch of expected) assert.deepEqual(await resumed.next(), batch);
  assert.deepEqual(resumed.state(), stream.state());
});

Deno.test("BatchStream order depends on the seed", async () => {
  const first = async (seed: number) =>
    linesOf(await new BatchStream(corpusOf(50), tokenizer, { batchSize: 50, seed }).next());
  assert.deepEqual(await first(1), await first(1));
  assert.notDeepEqual(await first(1), await first(2));
});

Deno.test("BatchStream draws only from the given line indices", async () => {
  const corpus = corpusOf(20);
  const { train, heldOut } = corpus.split(0.25, 3);
  const stream = new BatchStream(corpus, tokenizer, { batchSize: 5, indices: train });
  const seen: number[] = [];
  for (let k = 0; k < 3; k++) seen.push(...linesOf(await stream.next()));
  assert.deepEqual(sorted(seen), train);
  assert.ok(seen.every((i) => !heldOut.includes(i)));
});

Deno.test("BatchStream fills full batches from a corpus smaller than the batch", async () => {
  const stream = new BatchStream(corpusOf(3), tokenizer, { batchSize: 8, cropLength: 4 });
  const seen: number[] = [];
  for (let k = 0; k < 3; k++) {
    const batch = await stream.next();
    assert.equal(batch.ids.length, 8 * 4);
    seen.push(...linesOf(batch));
  }
  for (let epoch = 0; epoch < 8; epoch++) {
    assert.deepEqual(sorted(seen.slice(epoch * 3, epoch * 3 + 3)), [0, 1, 2]);
  }
  assert.equal(stream.epoch, 8);
  assert.equal(stream.batchesInEpoch(1), 0);
});

Deno.test("BatchStream reads a file-backed corpus", async () => {
  const path = await Deno.makeTempFile({ suffix: ".txt" });
  try {
    await Deno.writeTextFile(path, range(30).map((i) => `line ${i}`).join("\r\n"));
    const stream = new BatchStream(await CorpusIndex.build(path), tokenizer, {
      batchSize: 10,
      cropLength: 4,
    });
    const seen: number[] = [];
    for await (const batch of stream) seen.push(...linesOf(batch));
    assert.deepEqual(sorted(seen), range(30));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("BatchStream rejects bad options and mismatched or malformed states", () => {
  const corpus = corpusOf(4);
  assert.throws(() => new BatchStream(corpus, tokenizer, { batchSize: 0 }), RangeError);
  assert.throws(() => new BatchStream(corpus, tokenizer, { batchSize: 2, seed: -1 }), RangeError);
  assert.throws(() => new BatchStream(corpus, tokenizer, { batchSize: 2, indices: [] }), RangeError);
  assert.throws(() => new BatchStream(corpus, tokenizer, { batchSize: 2, indices: [4] }), RangeError);
  const stream = new BatchStream(corpus, tokenizer, { batchSize: 2 });
  assert.throws(() => stream.restore({ seed: 0, batch: 1, lineCount: 5, batchSize: 2 }), RangeError);
  assert.throws(() => stream.restore({ seed: 0, batch: 1, lineCount: 4, batchSize: 3 }), RangeError);
  assert.throws(() => stream.restore({ seed: 0, batch: -1, lineCount: 4, batchSize: 2 }), RangeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => stream.restore({ seed: 0, lineCount: 4, batchSize: 2 } as any), TypeError);
});
