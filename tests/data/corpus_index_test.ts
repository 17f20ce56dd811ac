import assert from "node:assert/strict";
import { CorpusIndex } from "../../src/data/corpus_index.ts";
import { Xoshiro128 } from "../../src/data/xoshiro128.ts";

const encoder = new TextEncoder();

async function withFile(bytes: Uint8Array | string, fn: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ prefix: "difflm_corpus_", suffix: ".txt" });
  try {
    await Deno.writeFile(path, typeof bytes === "string" ? encoder.encode(bytes) : bytes);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

async function allLines(corpus: CorpusIndex): Promise<string[]> {
  return await corpus.readLines(Array.from({ length: corpus.lineCount }, (_, i) => i));
}

function concat(...parts: (Uint8Array | string)[]): Uint8Array {
  const arrays = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

const MESSY = concat(
  new Uint8Array([0xef, 0xbb, 0xbf]),
  "first line\r\n",
  "\r\n",
  "\n",
  "   \t \n",
  "  second, with spaces around  \r\n",
  "caf\u00e9 \u6f22\u5b57 \u{1f600}\n",
  "\u00a0\u3000\n", // no-break space and ideographic space only: empty
  "last line without newline",
);
const MESSY_LINES = [
  "first line",
  "second, with spaces around",
  "caf\u00e9 \u6f22\u5b57 \u{1f600}",
  "last line without newline",
];

Deno.test("CorpusIndex.build() handles a BOM, CRLF, blank and whitespace lines and a final line without newline", async () => {
  await withFile(MESSY, async (path) => {
    for (const chunkSize of [undefined, 1, 2, 3, 5, 16]) {
      const corpus = await CorpusIndex.build(path, { chunkSize });
      assert.equal(corpus.lineCount, MESSY_LINES.length, `chunkSize ${chunkSize}`);
      assert.deepEqual(await allLines(corpus), MESSY_LINES, `chunkSize ${chunkSize}`);
      assert.equal(corpus.path, path);
    }
  });
});

Deno.test("CorpusIndex.build() indexes a file many chunks long, with lines longer than a chunk", async () => {
  const rng = new Xoshiro128(5);
  const alphabet = ["a", "b", " ", "\u00e9", "\u6f22", "\u{1f600}", "z"];
  const lines: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const length = rng.int(1, i % 100 === 0 ? 400 : 40);
    let line = `${i}:`;
    for (let k = 0; k < length; k++) line += alphabet[rng.int(0, alphabet.length - 1)];
    lines.push(line.trim());
  }
  const text = lines.map((l, i) => (i % 7 === 0 ? "\n" : "") + l + (i % 3 === 0 ? "\r\n" : "\n")).join("");
  await withFile(text, async (path) => {
    for (const chunkSize of [64, 1000, 1 << 20]) {
      const corpus = await CorpusIndex.build(path, { chunkSize });
      assert.equal(corpus.lineCount, lines.length);
      const wanted = Array.from({ length: 500 }, () => rng.int(0, lines.length - 1));
      assert.deepEqual(await corpus.readLines(wanted), wanted.map((i) => lines[i]));
      assert.equal(await corpus.readLine(lines.length - 1), lines.at(-1));
    }
    assert.deepEqual(await allLines(await CorpusIndex.build(path)), lines);
  });
});

Deno.test("CorpusIndex.build() names the file and the line number of invalid UTF-8", async () => {
  const bytes = concat("good\n\nstill good\n", new Uint8Array([0x62, 0x61, 0x64, 0xff, 0x0a]), "after\n");
  await withFile(bytes, async (path) => {
    for (const chunkSize of [2, 1 << 20]) {
      const error = await CorpusIndex.build(path, { chunkSize }).catch((e) => e);
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, /^Cannot index corpus ".*": line 4 is not valid UTF-8$/);
      assert.ok(error.message.includes(path));
    }
  });
  // A multi-byte character cut short by the end of the line.
  await withFile(concat("ok\n", new Uint8Array([0xe6, 0xbc]), "\n"), async (path) => {
    await assert.rejects(CorpusIndex.build(path, { chunkSize: 1 }), /line 2 is not valid UTF-8/);
  });
});

Deno.test("CorpusIndex.build() rejects a corpus with no non-empty line, naming the file", async () => {
  for (const content of ["", "\n\n", " \r\n\t\n", "\ufeff\n"]) {
    await withFile(content, async (path) => {
      const error = await CorpusIndex.build(path).catch((e) => e);
      assert.ok(error instanceof RangeError, String(error));
      assert.equal(error.message, `Cannot index corpus "${path}": it has no non-empty lines`);
    });
  }
});

Deno.test("CorpusIndex.build() reports a missing file by name", async () => {
  const path = `${await Deno.makeTempDir()}/no_such_corpus.txt`;
  const error = await CorpusIndex.build(path).catch((e) => e);
  assert.ok(error instanceof Deno.errors.NotFound, String(error));
  assert.equal(error.message, `Cannot open corpus "${path}": no such file`);
  await Deno.remove(path.slice(0, path.lastIndexOf("/")));
});

Deno.test("CorpusIndex.readLines() detects a file that changed since it was indexed", async () => {
  await withFile("one\ntwo\n", async (path) => {
    const corpus = await CorpusIndex.build(path);
    await Deno.writeTextFile(path, "one\ntwo\nthree\n");
    await assert.rejects(corpus.readLine(0), /changed since it was indexed/);
  });
});

Deno.test("CorpusIndex.readLines() rejects indices outside the corpus", async () => {
  const corpus = CorpusIndex.fromLines(["a", "b"]);
  await assert.rejects(corpus.readLine(2), RangeError);
  await assert.rejects(corpus.readLines([0, -1]), RangeError);
  await assert.rejects(corpus.readLines([0.5]), RangeError);
  assert.deepEqual(await corpus.readLines([]), []);
});

Deno.test("CorpusIndex.fromLines() applies the file rules and rejects an empty corpus", async () => {
  const corpus = CorpusIndex.fromLines([" a ", "", "\t", "b\r\nc", "\u00a0"]);
  assert.deepEqual(await allLines(corpus), ["a", "b", "c"]);
  assert.equal(corpus.path, undefined);
  assert.throws(() => CorpusIndex.fromLines(["", "  "]), RangeError);
  assert.throws(() => CorpusIndex.fromLines([]), RangeError);
});

Deno.test("CorpusIndex.split() is deterministic, disjoint and complete", () => {
  const corpus = CorpusIndex.fromLines(Array.from({ length: 1000 }, (_, i) => `line ${i}`));
  const { train, heldOut } = corpus.split(0.05, 11);
  assert.equal(heldOut.length, 50);
  assert.equal(train.length, 950);
  assert.deepEqual([...train, ...heldOut].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  assert.deepEqual(train, [...train].sort((a, b) => a - b));
  assert.deepEqual(corpus.split(0.05, 11), { train, heldOut });
  assert.notDeepEqual(corpus.split(0.05, 12).heldOut, heldOut);
  assert.equal(corpus.split(0, 1).heldOut.length, 0);
  assert.equal(CorpusIndex.fromLines(["only"]).split(0.5, 1).train.length, 1);
  assert.throws(() => corpus.split(1, 1), RangeError);
  assert.throws(() => corpus.split(-0.1, 1), RangeError);
  assert.throws(() => corpus.split(Number.NaN, 1), RangeError);
});

Deno.test("a corpus path that is a directory: CorpusIndex.build names it as a directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => CorpusIndex.build(dir),
      (e: Error) =>
        e instanceof Deno.errors.IsADirectory &&
        e.message === `Cannot index corpus "${dir}": it is a directory, expected a text file`,
    );
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("library edges: CorpusIndex.fromLines given one string and split given a string fraction are TypeErrors", () => {
  assert.throws(
    () => CorpusIndex.fromLines("in the beginning\nthe end" as unknown as string[]),
    (e: Error) => e instanceof TypeError && /expected an array of strings, got string/.test(e.message),
  );
  const corpus = CorpusIndex.fromLines(["a", "b", "c", "d"]);
  assert.throws(() => corpus.split("0.5" as unknown as number, 1), /heldOutFraction "0\.5": not a number/);
  assert.throws(() => corpus.split(0.5, NaN), RangeError);
  assert.equal(corpus.split(0.5, 1).heldOut.length, 2);
});
