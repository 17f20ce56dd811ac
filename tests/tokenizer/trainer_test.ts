import assert from "node:assert/strict";
import {
  parseModelProto,
  PieceType,
  serializeModelProto,
  Tokenizer,
  trainTokenizer,
} from "../../src/tokenizer/mod.ts";
import { fixturePath, hasCommand, kjvLines, loadModel, mixedCorpus } from "./_fixtures.ts";

const HAS_SPM_ENCODE = hasCommand("spm_encode");
const HAS_SPM_TRAIN = hasCommand("spm_train");

/** `piece<TAB>score` lines of a `.vocab` file. */
async function vocabLines(path: string | URL): Promise<string[]> {
  return (await Deno.readTextFile(path)).split("\n").filter((l) => l.length > 0);
}

function vocabOf(model: Uint8Array): string[] {
  return parseModelProto(model).pieces.map((p) => `${p.piece}\t${Object.is(p.score, -0) ? "-0" : p.score}`);
}

for (const vocabSize of [1000, 4000]) {
  Deno.test(`trainTokenizer on kjv.txt at vocab ${vocabSize} gives the reference model's vocabulary`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const corpus = `${dir}/kjv.txt`;
      await Deno.writeTextFile(corpus, (await kjvLines()).join("\n") + "\n");
      const out = `${dir}/kjv_${vocabSize}.model`;
      const model = await trainTokenizer({ corpus, vocabSize, out });
      assert.deepEqual(vocabOf(model), await vocabLines(fixturePath(`kjv_bpe_${vocabSize}.vocab`)));
      assert.deepEqual(await vocabLines(`${dir}/kjv_${vocabSize}.vocab`), vocabOf(model));
      assert.deepEqual(await Deno.readFile(out), model);
      // Reloaded, it is itself, and it encodes as the reference model does.
      const tok = Tokenizer.fromBytes(model);
      assert.deepEqual(tok.toBytes(), model);
      assert.deepEqual(serializeModelProto(parseModelProto(model)), model);
      const reference = await loadModel(vocabSize === 1000 ? "kjv_bpe_1000" : "kjv_bpe_4000");
      for (const line of (await kjvLines()).slice(0, 300)) {
        assert.deepEqual(tok.encode(line), reference.encode(line));
      }
      const ref = reference.proto.trainerSpec;
      const ours = tok.proto.trainerSpec;
      for (const key of ["modelType", "unkId", "bosId", "eosId", "padId", "userDefinedSymbols"] as const) {
        assert.deepEqual(ours[key], ref[key], key);
      }
      const { precompiledCharsmap: refMap, ...refSpec } = reference.proto.normalizerSpec;
      const { precompiledCharsmap: ourMap, ...ourSpec } = tok.proto.normalizerSpec;
      assert.deepEqual(ourSpec, refSpec);
      assert.deepEqual(ourMap, refMap);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("trainTokenizer on 90% of kjv.txt stays within 2% of the reference's tokens per held-out line", async () => {
  const lines = await kjvLines();
  const train = lines.filter((_, i) => i % 10 !== 0);
  const heldOut = lines.filter((_, i) => i % 10 === 0);
  for (const vocabSize of [1000, 4000]) {
    const ours = Tokenizer.fromBytes(await trainTokenizer({ corpus: train, vocabSize }));
    const reference = await loadModel(vocabSize === 1000 ? "kjv_bpe_1000" : "kjv_bpe_4000");
    let oursTokens = 0;
    let referenceTokens = 0;
    for (const line of heldOut) {
      oursTokens += ours.encode(line).length;
      referenceTokens += reference.encode(line).length;
    }
    const ratio = oursTokens / referenceTokens;
    assert.ok(Math.abs(ratio - 1) < 0.02, `vocab ${vocabSize}: ${oursTokens} vs ${referenceTokens} tokens`);
  }
});

Deno.test({
  name: "spm_encode loads a model from trainTokenizer and encodes as Tokenizer does",
  ignore: !HAS_SPM_ENCODE,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const lines = await kjvLines();
      const model = `${dir}/small.model`;
      await trainTokenizer({ corpus: lines.slice(0, 5000), vocabSize: 600, out: model });
      const probe = [
        ...lines.slice(5000, 5400),
        "In The Beginning 1611, ｆｕｌｌ width ﬁ and café — “quotes” 日本語!",
        "  spaces   and\ttabs  ",
        "",
      ];
      const child = new Deno.Command("spm_encode", {
        args: [`--model=${model}`, "--output_format=id"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = child.output(); // read while writing, or a large output fills the pipe and blocks
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(probe.join("\n") + "\n"));
      await writer.close();
      const result = await output;
      assert.ok(result.success, new TextDecoder().decode(result.stderr));
      const got = new TextDecoder().decode(result.stdout).split("\n");
      const tok = await Tokenizer.load(model);
      probe.forEach((line, i) => assert.equal(tok.encode(line).join(" "), got[i], JSON.stringify(line)));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "trainTokenizer gives spm_train's vocabulary on a mixed-script corpus",
  ignore: !HAS_SPM_TRAIN,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const corpus = `${dir}/mixed.txt`;
      await Deno.writeTextFile(corpus, mixedCorpus(3000).join("\n") + "\n");
      for (const [vocabSize, coverage] of [[150, 0.9995], [300, 1]] as const) {
        const result = await new Deno.Command("spm_train", {
          args: [
            `--input=${corpus}`,
            `--model_prefix=${dir}/ref`,
            "--model_type=bpe",
            `--vocab_size=${vocabSize}`,
            `--character_coverage=${coverage}`,
            "--user_defined_symbols=0,1,2,3,4,5,6,7,8,9",
            "--bos_id=0",
            "--eos_id=1",
            "--pad_id=2",
            "--unk_id=3",
          ],
          stdout: "null",
          stderr: "piped",
        }).output();
        assert.ok(result.success, new TextDecoder().decode(result.stderr));
        const model = await trainTokenizer({ corpus, vocabSize, characterCoverage: coverage });
        assert.deepEqual(vocabOf(model), await vocabLines(`${dir}/ref.vocab`), `vocab ${vocabSize}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("trainTokenizer places special ids and user symbols as the reference does", async () => {
  const corpus = mixedCorpus(300);
  const model = await trainTokenizer({
    corpus,
    vocabSize: 120,
    userSymbols: ["<sep>", "0", "<s>"],
    specials: { unk: 0, bos: 5, eos: -1, pad: 1 },
  });
  const proto = parseModelProto(model);
  const head = proto.pieces.slice(0, 6).map((p) => [p.piece, p.type]);
  assert.deepEqual(head, [
    ["<unk>", PieceType.UNKNOWN],
    ["<pad>", PieceType.CONTROL],
    ["<sep>", PieceType.USER_DEFINED],
    ["0", PieceType.USER_DEFINED],
    [proto.pieces[4]!.piece, PieceType.NORMAL],
    ["<s>", PieceType.USER_DEFINED],
  ]);
  assert.equal(proto.pieces.length, 120);
  const tok = Tokenizer.fromBytes(model);
  assert.equal(tok.eosId, -1);
  assert.deepEqual(tok.encodeAsPieces("a<sep>b 10"), ["▁", "a", "<sep>", "b", "▁", "1", "0"]);
});

Deno.test("trainTokenizer streams a file, ignores CRLF line ends and subsamples with a seeded reservoir", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines = (await kjvLines()).slice(0, 3000);
    await Deno.writeTextFile(`${dir}/lf.txt`, lines.join("\n") + "\n");
    await Deno.writeTextFile(`${dir}/crlf.txt`, lines.join("\r\n"));
    const lf = await trainTokenizer({ corpus: `${dir}/lf.txt`, vocabSize: 300 });
    const crlf = await trainTokenizer({ corpus: `${dir}/crlf.txt`, vocabSize: 300 });
    assert.deepEqual(vocabOf(crlf), vocabOf(lf));
    const log: string[] = [];
    const a = await trainTokenizer({
      corpus: lines,
      vocabSize: 300,
      maxSentences: 500,
      seed: 1,
      log: (l) => log.push(l),
    });
    const b = await trainTokenizer({ corpus: lines, vocabSize: 300, maxSentences: 500, seed: 1 });
    const c = await trainTokenizer({ corpus: lines, vocabSize: 300, maxSentences: 500, seed: 2 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(vocabOf(a), vocabOf(c));
    assert.ok(log.includes("sampled 500 of 3000 lines from corpus"), log.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainTokenizer rejects an empty corpus, invalid UTF-8 and vocabulary sizes the corpus cannot fill", async () => {
  await assert.rejects(() => trainTokenizer({ corpus: [], vocabSize: 100 }), /has no usable line/);
  await assert.rejects(() => trainTokenizer({ corpus: ["", "   ", "\t"], vocabSize: 100 }), RangeError);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/empty.txt`, new Uint8Array(0));
    await assert.rejects(
      () => trainTokenizer({ corpus: `${dir}/empty.txt`, vocabSize: 100 }),
      (err: unknown) => err instanceof RangeError && err.message.includes(`${dir}/empty.txt`),
    );
    await Deno.writeFile(`${dir}/bad.txt`, new Uint8Array([0x61, 0x0a, 0x62, 0x63, 0xc3, 0x28, 0x0a]));
    await assert.rejects(
      () => trainTokenizer({ corpus: `${dir}/bad.txt`, vocabSize: 100 }),
      (err: unknown) =>
        err instanceof SyntaxError && /bad\.txt: line 2 is not valid UTF-8 \(byte 4\)/.test(err.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const corpus = (await kjvLines()).slice(0, 200);
  await assert.rejects(() => trainTokenizer({ corpus, vocabSize: 20 }), /alphabet and special pieces need/);
  await assert.rejects(() => trainTokenizer({ corpus, vocabSize: 100000 }), /yields at most \d+ pieces/);
  await assert.rejects(() => trainTokenizer({ corpus, vocabSize: 0 }), RangeError);
  await assert.rejects(() => trainTokenizer({ corpus, vocabSize: 100, characterCoverage: 0.5 }), RangeError);
  await assert.rejects(() => trainTokenizer({ corpus, vocabSize: 100, specials: { unk: -1 } }), /unk id/);
  await assert.rejects(
    () => trainTokenizer({ corpus, vocabSize: 100, specials: { bos: 3 } }),
    /already taken/,
  );
});

Deno.test("a 5 MB single-line corpus is called empty: the skipped long lines are counted, with the limit", async () => {
  const long = "the cat sat on a mat ".repeat(240_000).slice(0, 5_000_000);
  await assert.rejects(
    () => trainTokenizer({ corpus: [long], vocabSize: 40 }),
    (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(
        e.message,
        /^Cannot train tokenizer: no line is left after skipping 1 line of corpus longer than 4192 bytes \(maxSentenceLength; the longest has 5000000\); split the text/,
      );
      return true;
    },
  );
  // Some long lines among short ones: trained on the short ones, and the log says how many were skipped.
  const lines: string[] = [];
  const model = await trainTokenizer({
    corpus: ["the cat sat", long, "a mat", "x".repeat(4193), "x".repeat(4192)],
    vocabSize: 30,
    log: (line) => lines.push(line),
  });
  assert.ok(Tokenizer.fromBytes(model).vocabSize === 30);
  assert.equal(
    lines[0],
    "loaded 3 lines from corpus; skipped 2 lines of corpus longer than 4192 bytes (maxSentenceLength; the " +
      `longest has ${long.length})`,
  );
});

Deno.test("a corpus path that is a directory is named as one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => trainTokenizer({ corpus: dir, vocabSize: 40 }),
      (e: Error) =>
        e instanceof Deno.errors.IsADirectory &&
        e.message === `Cannot read ${dir}: it is a directory, expected a text file`,
    );
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("library edges: trainTokenizer refuses a NaN seed and counts given as strings, naming the option", async () => {
  const corpus = ["ab ba", "ba ab", "a b"];
  const cases: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
    [{ seed: NaN }, RangeError, /with seed NaN: it must be an integer in \[0, 4294967295\]/],
    [{ seed: -1 }, RangeError, /with seed -1:/],
    [{ seed: 2 ** 32 }, RangeError, /with seed 4294967296:/],
    [{ vocabSize: "12" }, TypeError, /with vocabulary size "12": it is not a number/],
    [{ vocabSize: 12.5 }, RangeError, /with vocabulary size 12\.5: it must be an integer/],
    [{ maxSentenceLength: NaN }, RangeError, /with max sentence length NaN:/],
    [{ maxSentences: -1 }, RangeError, /with max sentences -1:/],
    [{ maxPieceLength: "4" }, TypeError, /with max piece length "4": it is not a number/],
    [{ characterCoverage: "1" }, TypeError, /with character coverage "1": not a number/],
  ];
  for (const [options, Class, message] of cases) {
    await assert.rejects(
      () => trainTokenizer({ corpus, vocabSize: 12, userSymbols: [], ...options }),
      (e: Error) =>
        e instanceof Class && /^Cannot train tokenizer with /.test(e.message) && message.test(e.message),
      JSON.stringify(options),
    );
  }
  // The edges of the ranges are accepted.
  const model = await trainTokenizer({
    corpus,
    vocabSize: 12,
    userSymbols: [],
    seed: 2 ** 32 - 1,
    maxSentences: 0,
  });
  assert.equal(Tokenizer.fromBytes(model).vocabSize, 12);
});
