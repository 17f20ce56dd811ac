/**
 * Cross-checks against Debian's `sentencepiece` tools (0.1.97): models of every kind that `spm_train`
 * writes (BPE with byte fallback, unigram with multi-character user symbols, char, word) must encode and
 * decode here exactly as `spm_encode` and `spm_decode` do. Skipped when the tools are not installed.
 */
import assert from "node:assert/strict";
import { Mt19937, Tokenizer } from "../../src/tokenizer/mod.ts";
import { fixturePath, hasCommand, mixedCorpus } from "./_fixtures.ts";

const HAS_TOOLS = hasCommand("spm_train") && hasCommand("spm_encode") && hasCommand("spm_decode");

async function runTool(tool: string, args: string[], input: string): Promise<string[]> {
  const child = new Deno.Command(tool, { args, stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
  const output = child.output(); // read while writing, or a large output fills the pipe and blocks
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const { success, stdout, stderr } = await output;
  assert.ok(success, `${tool}: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout).split("\n");
}

/** Lines of corpus words with random characters from the BMP mixed in. */
function probeLines(corpus: string[], count: number): string[] {
  const words = corpus.join(" ").split(" ");
  const rng = new Mt19937(5);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    let line = "";
    for (let j = rng.nextUint32() % 8; j > 0; j--) {
      line += (rng.nextUint32() % 3 === 0 ? " " : "") + words[rng.nextUint32() % words.length];
      if (rng.nextUint32() % 5 === 0) line += String.fromCodePoint(0x20 + (rng.nextUint32() % 0x3000));
    }
    lines.push(line.replace(/[\n\r]/g, " "));
  }
  return lines;
}

const KINDS: [string, string[]][] = [
  ["bpe with byte fallback", [
    "--model_type=bpe",
    "--vocab_size=400",
    "--byte_fallback=true",
    "--character_coverage=0.98",
  ]],
  ["unigram with user symbols", [
    "--model_type=unigram",
    "--vocab_size=120",
    "--user_defined_symbols=ab,▁the",
  ]],
  ["char", ["--model_type=char", "--vocab_size=100", "--character_coverage=0.98"]],
  ["word", ["--model_type=word", "--vocab_size=30"]],
];

Deno.test({
  name: "Tokenizer encodes and decodes like spm_encode and spm_decode for every model kind spm_train writes",
  ignore: !HAS_TOOLS,
  fn: async (t) => {
    const dir = await Deno.makeTempDir();
    try {
      const corpus = mixedCorpus(3000);
      await Deno.writeTextFile(`${dir}/corpus.txt`, corpus.join("\n") + "\n");
      const lines = probeLines(corpus, 1000);
      const input = lines.join("\n") + "\n";
      for (const [kind, flags] of KINDS) {
        await t.step(kind, async () => {
          const prefix = `${dir}/${kind.split(" ")[0]}`;
          await runTool("spm_train", [`--input=${dir}/corpus.txt`, `--model_prefix=${prefix}`, ...flags], "");
          const model = `--model=${prefix}.model`;
          const tok = await Tokenizer.load(`${prefix}.model`);
          const ids = await runTool("spm_encode", [model, "--output_format=id"], input);
          const pieces = await runTool("spm_encode", [model, "--output_format=piece"], input);
          const encoded = lines.map((line) => tok.encode(line));
          lines.forEach((line, i) => {
            assert.equal(encoded[i]!.join(" "), ids[i], JSON.stringify(line));
            assert.equal(tok.encodeAsPieces(line).join(" "), pieces[i], JSON.stringify(line));
          });
          const decoded = await runTool(
            "spm_decode",
            [model, "--input_format=id"],
            encoded.map((x) => x.join(" ")).join("\n") + "\n",
          );
          encoded.forEach((x, i) => assert.equal(tok.decode(x), decoded[i]));
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Tokenizer unigram sampling with one Mt19937(42) stream reproduces spm_encode --random_seed=42",
  ignore: !HAS_TOOLS,
  fn: async () => {
    const path = fixturePath("kjv_unigram_1000.model");
    const tok = await Tokenizer.load(path);
    const lines = (await Deno.readTextFile(fixturePath("inputs.txt"))).split("\n").slice(0, -1);
    const input = lines.join("\n") + "\n";
    for (const [nbestSize, alpha] of [[-1, 0.1], [-1, 1], [5, 0.1], [64, 0.5], [2, 1]] as const) {
      const expected = await runTool("spm_encode", [
        `--model=${path.pathname}`,
        "--output_format=sample_id",
        `--alpha=${alpha}`,
        `--nbest_size=${nbestSize}`,
        "--random_seed=42",
      ], input);
      const rng = new Mt19937(42);
      lines.forEach((line, i) => {
        const ids = tok.encode(line, { sample: true, alpha, nbestSize, rng });
        assert.equal(
          ids.join(" "),
          expected[i],
          `nbest ${nbestSize}, alpha ${alpha}: ${JSON.stringify(line)}`,
        );
      });
    }
  },
});
