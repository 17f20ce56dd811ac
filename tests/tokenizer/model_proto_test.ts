import assert from "node:assert/strict";
import {
  type ModelProto,
  Mt19937,
  nmtNfkcCharsmap,
  Normalizer,
  parseModelProto,
  PieceType,
  serializeModelProto,
  SpmModelSyntaxError,
  Tokenizer,
} from "../../src/tokenizer/mod.ts";
import { fixturePath, MODELS } from "./_fixtures.ts";

Deno.test("serializeModelProto(parseModelProto(bytes)) reproduces each reference model byte for byte", async () => {
  for (const name of MODELS) {
    const bytes = await Deno.readFile(fixturePath(`${name}.model`));
    const proto = parseModelProto(bytes);
    assert.deepEqual(serializeModelProto(proto), bytes, name);
    assert.equal(proto.pieces.length, name.endsWith("4000") ? 4000 : 1000);
    assert.equal(proto.pieces[3]!.type, PieceType.UNKNOWN);
    assert.equal(proto.trainerSpec.unkSurface, " ⁇ ");
    assert.equal(proto.normalizerSpec.name, "nmt_nfkc");
    assert.equal(proto.normalizerSpec.escapeWhitespaces, undefined); // absent: the proto2 default (true)
    assert.ok(Object.is(proto.pieces[14]!.score, -0) || name.includes("unigram"));
    assert.deepEqual(Tokenizer.fromBytes(bytes).toBytes(), bytes);
  }
});

Deno.test("nmtNfkcCharsmap() is the table stored in the reference models", async () => {
  const proto = parseModelProto(await Deno.readFile(fixturePath("kjv_bpe_1000.model")));
  assert.deepEqual(nmtNfkcCharsmap(), proto.normalizerSpec.precompiledCharsmap);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", nmtNfkcCharsmap().slice()));
  assert.equal(
    Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    "51d3684747b35ef99cd4802f37cc1ee0c6bec4d060814f774efb1066d3c167f2",
  );
});

/** Asserts that loading `bytes` fails with an SpmModelSyntaxError whose message contains `pattern`. */
function assertRejected(bytes: Uint8Array, pattern: RegExp, label: string): void {
  assert.throws(
    () => Tokenizer.fromBytes(bytes),
    (err: unknown) => {
      assert.ok(err instanceof SpmModelSyntaxError, `${label}: ${err}`);
      assert.ok(err instanceof SyntaxError);
      assert.match(err.message, pattern, label);
      assert.match(err.message, /^Cannot (load|read) SentencePiece model/);
      assert.ok(err.offset >= 0 && err.offset <= bytes.length, `${label}: offset ${err.offset}`);
      return true;
    },
    label,
  );
}

Deno.test("Tokenizer.fromBytes rejects empty, truncated, random and foreign files with SpmModelSyntaxError", async () => {
  const good = await Deno.readFile(fixturePath("kjv_bpe_1000.model"));
  assertRejected(new Uint8Array(0), /the file is empty/, "empty");
  // Every truncation point inside the pieces, and a spread of points inside the normalizer.
  for (let cut = 1; cut < 14671; cut += 37) {
    assertRejected(good.slice(0, cut), /truncated|not a Sentence/, `cut ${cut}`);
  }
  for (let cut = 14671; cut < good.length; cut += 9973) {
    assertRejected(good.slice(0, cut), /truncated/, `cut ${cut}`);
  }
  assertRejected(good.slice(0, good.length - 1), /truncated/, "one byte short");
  const rng = new Mt19937(5);
  for (let i = 0; i < 200; i++) {
    const bytes = new Uint8Array(1 + (rng.nextUint32() % 4000));
    for (let j = 0; j < bytes.length; j++) bytes[j] = rng.nextUint32() & 0xff;
    assertRejected(bytes, /not a SentencePiece model|truncated|no pieces|no UNKNOWN|type/, `random ${i}`);
  }
  const text = new TextEncoder().encode("in the beginning god created the heaven and the earth.\n");
  assertRejected(text, /not a SentencePiece model/, "text file");
  assertRejected(new TextEncoder().encode('{"pieces": []}'), /not a SentencePiece model/, "json");
});

function withPieces(proto: ModelProto, pieces: ModelProto["pieces"]): Uint8Array {
  return serializeModelProto({ ...proto, pieces });
}

Deno.test("Tokenizer.fromBytes rejects models that break the format's rules", async () => {
  const proto = parseModelProto(await Deno.readFile(fixturePath("kjv_bpe_1000.model")));
  assertRejected(withPieces(proto, []), /no pieces/, "no pieces");
  const noUnk = proto.pieces.filter((p) => p.type !== PieceType.UNKNOWN);
  assertRejected(withPieces(proto, noUnk), /no UNKNOWN piece/, "no unk");
  const twoUnk = [...proto.pieces, { piece: "<unk2>", score: 0, type: PieceType.UNKNOWN }];
  assertRejected(withPieces(proto, twoUnk), /both UNKNOWN/, "two unk");
  const dup = [...proto.pieces, { piece: "▁the", score: -5, type: PieceType.NORMAL }];
  assertRejected(withPieces(proto, dup), /duplicates piece 17/, "duplicate");
  const byte = [...proto.pieces, { piece: "<0x41>", score: 0, type: PieceType.BYTE }];
  assertRejected(withPieces(proto, byte), /byte_fallback is off/, "byte piece");
  const badScore = proto.pieces.map((p, i) => (i === 20 ? { ...p, score: NaN } : p));
  assertRejected(withPieces(proto, badScore), /score NaN/, "NaN score");
  const badType = serializeModelProto({ ...proto, trainerSpec: { ...proto.trainerSpec, modelType: 9 as 1 } });
  assertRejected(badType, /unknown model type 9/, "model type");
  // A piece without text: field 1 of the first piece message replaced by nothing.
  const noText = serializeModelProto({ ...proto, pieces: [{ piece: "", score: 0, type: PieceType.NORMAL }] });
  assertRejected(noText, /has no text/, "empty piece");
});

Deno.test("Tokenizer.load names the file in its errors", async () => {
  const path = await Deno.makeTempFile({ suffix: ".model" });
  try {
    await Deno.writeFile(path, (await Deno.readFile(fixturePath("kjv_bpe_1000.model"))).slice(0, 100));
    await assert.rejects(() => Tokenizer.load(path), (err: unknown) => {
      assert.ok(err instanceof SpmModelSyntaxError);
      assert.ok(err.message.includes(path), err.message);
      return true;
    });
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("Normalizer applies the whitespace flags of the spec", () => {
  assert.equal(new Normalizer({}).normalize("  a  b  "), "▁a▁b");
  assert.equal(new Normalizer({ addDummyPrefix: false }).normalize("  a  b  "), "a▁b");
  assert.equal(new Normalizer({ removeExtraWhitespaces: false }).normalize(" a  b "), "▁▁a▁▁b▁");
  assert.equal(new Normalizer({ escapeWhitespaces: false }).normalize(" a  b "), " a b");
  assert.equal(new Normalizer({}, { treatWhitespaceAsSuffix: true }).normalize("a b"), "a▁b▁");
  assert.equal(new Normalizer({}, { userSymbols: ["<x>"] }).normalize("a<x>b"), "▁a<x>b");
  const nfkc = new Normalizer({ precompiledCharsmap: nmtNfkcCharsmap() });
  assert.equal(nfkc.normalize("ﬁne  ｆｕｌｌ\u3000e\u0301\u0007x"), "▁fine▁full▁éx");
  assert.equal(nfkc.normalize("\u2581\u00a0\t"), "");
});
