import assert from "node:assert/strict";
import { tokenizerCommand } from "../../src/cli/tokenizer.ts";
import { Mt19937, Tokenizer } from "../../src/tokenizer/mod.ts";
import { fixturePath, type FixtureRecord, kjvLines, readJsonl, type SampleRecord } from "./_fixtures.ts";

const MODEL = fixturePath("kjv_bpe_1000.model").pathname;

/** Runs the command in-process with the given stdin; returns exit code, stdout text and stderr lines. */
async function run(args: string[], stdin: string | Uint8Array = "") {
  const input = typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin;
  const chunks: Uint8Array[] = [];
  const stderr: string[] = [];
  const code = await tokenizerCommand(args, {
    stdin: new Blob([input.slice()]).stream(),
    stdout: new WritableStream({ write: (chunk) => void chunks.push(chunk) }),
    stderr: (line) => stderr.push(line),
  });
  const stdout = new TextDecoder().decode(
    new Uint8Array(await new Blob(chunks.map((c) => c.slice())).arrayBuffer()),
  );
  return { code, stdout, stderr };
}

Deno.test("tokenizer encode writes the reference ids and pieces, one line per input line", async () => {
  const records = await readJsonl<FixtureRecord>("kjv_bpe_1000.jsonl");
  const input = records.map((r) => r.text).join("\n") + "\n";
  const ids = await run(["encode", "--spm", MODEL], input);
  assert.equal(ids.code, 0, ids.stderr.join("\n"));
  assert.equal(ids.stdout, records.map((r) => r.ids.join(" ") + "\n").join(""));
  const pieces = await run(["encode", "--spm", MODEL, "--pieces"], input);
  assert.equal(pieces.stdout, records.map((r) => r.pieces.join(" ") + "\n").join(""));
  const withSpecials = await run(["encode", "--spm", MODEL, "--bos", "--eos"], "in the\n");
  assert.equal(withSpecials.stdout, "0 49 17 1\n");
});

Deno.test("tokenizer encode --sample --seed 42 reproduces spm_encode --random_seed=42 over the whole input", async () => {
  const records = await readJsonl<SampleRecord>("kjv_bpe_1000.sample.jsonl");
  const input = records.map((r) => r.text).join("\n") + "\n";
  const { code, stdout } = await run(
    ["encode", "--spm", MODEL, "--sample", "--alpha", "0.1", "--seed", "42"],
    input,
  );
  assert.equal(code, 0);
  assert.equal(stdout, records.map((r) => r.ids.join(" ") + "\n").join(""));
});

Deno.test("tokenizer decode reverses encode for ids and pieces", async () => {
  const records = await readJsonl<FixtureRecord>("kjv_bpe_1000.jsonl");
  const ids = await run(["decode", "--spm", MODEL], records.map((r) => r.ids.join(" ")).join("\n") + "\n");
  assert.equal(ids.code, 0, ids.stderr.join("\n"));
  assert.equal(ids.stdout, records.map((r) => r.decoded + "\n").join(""));
  const pieces = await run(
    ["decode", "--spm", MODEL, "--pieces"],
    records.map((r) => r.pieces.join(" ")).join("\n") + "\n",
  );
  // Pieces are split on spaces, so only records whose unknown runs hold no space survive intact.
  const expected = records.map((r) => (r.pieces.some((p) => p.includes(" ")) ? null : r.decoded_from_pieces));
  pieces.stdout.split("\n").slice(0, -1).forEach((line, i) => {
    if (expected[i] !== null) assert.equal(line, expected[i]);
  });
});

Deno.test("tokenizer train writes a model and vocabulary that encode like the reference", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines = await kjvLines();
    await Deno.writeTextFile(`${dir}/c.txt`, lines.join("\n") + "\n");
    const { code, stderr } = await run([
      "train",
      "--corpus",
      `${dir}/c.txt`,
      "--vocab",
      "1000",
      "--out",
      `${dir}/c.model`,
    ]);
    assert.equal(code, 0, stderr.join("\n"));
    assert.ok(stderr.some((l) => l.startsWith("trained 1000 pieces")), stderr.join("\n"));
    const ours = await Tokenizer.load(`${dir}/c.model`);
    const reference = await Tokenizer.load(fixturePath("kjv_bpe_1000.model"));
    for (const line of lines.slice(0, 100)) assert.deepEqual(ours.encode(line), reference.encode(line));
    assert.equal((await Deno.readTextFile(`${dir}/c.vocab`)).split("\n")[14], "th\t-0");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Asserts a failed run: the exit code and exactly one `error:` line that matches `pattern`. */
function assertOneError(result: { code: number; stderr: string[] }, code: number, pattern: RegExp): void {
  assert.equal(result.code, code);
  const errors = result.stderr.filter((l) => l.startsWith("error: "));
  assert.equal(errors.length, 1, result.stderr.join("\n"));
  assert.match(errors[0]!, pattern);
  assert.ok(!result.stderr.join("\n").includes("    at "), "no stack trace");
}

Deno.test("tokenizer reports bad input with one clear error line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = await Deno.readFile(MODEL);
    await Deno.writeFile(`${dir}/cut.model`, good.slice(0, 5000));
    await Deno.writeFile(`${dir}/empty.model`, new Uint8Array(0));
    const random = new Uint8Array(4096);
    const rng = new Mt19937(3);
    for (let i = 0; i < random.length; i++) random[i] = rng.nextUint32() & 0xff;
    await Deno.writeFile(`${dir}/random.model`, random);
    await Deno.writeTextFile(`${dir}/text.model`, "not a model\n");
    await Deno.writeFile(`${dir}/empty.txt`, new Uint8Array(0));
    await Deno.writeFile(`${dir}/bad.txt`, new Uint8Array([0x61, 0x0a, 0xff, 0x0a]));

    for (const name of ["cut", "empty", "random", "text"]) {
      const path = `${dir}/${name}.model`;
      assertOneError(
        await run(["encode", "--spm", path], "a\n"),
        1,
        new RegExp(`SentencePiece model ${path}`),
      );
      assertOneError(
        await run(["decode", "--spm", path], "5\n"),
        1,
        new RegExp(`SentencePiece model ${path}`),
      );
    }
    assertOneError(await run(["encode", "--spm", `${dir}/missing.model`]), 1, /missing\.model: no such file/);
    assertOneError(
      await run(["encode", "--spm", MODEL], new Uint8Array([0x61, 0x0a, 0x62, 0xc3, 0x0a])),
      1,
      /Cannot read stdin: line 2 is not valid UTF-8 \(byte 3\)/,
    );
    assertOneError(await run(["decode", "--spm", MODEL], "5 abc\n"), 1, /line 1 has "abc", not an id/);
    assertOneError(await run(["decode", "--spm", MODEL], "1000\n"), 1, /"1000", not an id in \[0, 1000\)/);
    assertOneError(
      await run(["train", "--corpus", `${dir}/empty.txt`, "--vocab", "100", "--out", `${dir}/o.model`]),
      1,
      /empty\.txt has no usable line/,
    );
    assertOneError(
      await run(["train", "--corpus", `${dir}/bad.txt`, "--vocab", "100", "--out", `${dir}/o.model`]),
      1,
      /bad\.txt: line 2 is not valid UTF-8/,
    );
    assertOneError(
      await run(["train", "--corpus", `${dir}/nope.txt`, "--vocab", "100", "--out", `${dir}/o.model`]),
      1,
      /nope\.txt: no such file/,
    );
    assertOneError(
      await run(["train", "--corpus", `${dir}/empty.txt`]),
      2,
      /needs --corpus, --vocab and --out/,
    );
    assertOneError(await run(["encode"]), 2, /--spm FILE\.model is required/);
    assertOneError(await run(["encode", "--spm", MODEL, "--bogus"]), 2, /bogus/);
    assertOneError(await run(["frobnicate"]), 2, /unknown sub-command "frobnicate"/);
    assert.equal((await run(["--help"])).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno run cli.ts tokenizer encode works end to end", async () => {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", cli, "tokenizer", "encode", "--spm", MODEL],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode("in the beginning god created the heaven and the earth.\n"));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.equal(new TextDecoder().decode(stdout), "49 17 525 24 941 125 36 302 41 17 457 22 17 361 991\n");
});
