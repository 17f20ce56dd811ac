/**
 * Encoding speed on kjv.txt (31,102 lines per iteration): difflm's TypeScript tokenizer against the
 * SentencePiece wasm build (`@agnai/sentencepiece-js`), for the three reference models. Lines per second
 * = 31,102 / (time per iteration). Every encoder is first checked to give the reference ids on the
 * corpus's first lines, so a silently broken model cannot produce a fast, empty result.
 *
 * ```sh
 * deno bench --allow-read bench/tokenizer_bench.ts
 * ```
 */
import { Mt19937, Tokenizer } from "../src/tokenizer/mod.ts";

const SPM_DIR = new URL("../tests/testdata/spm/", import.meta.url);
const MODELS = ["kjv_bpe_1000", "kjv_bpe_4000", "kjv_unigram_1000"] as const;

const file = await Deno.open(new URL("../tests/testdata/kjv.txt.gz", import.meta.url));
const lines = (await new Response(file.readable.pipeThrough(new DecompressionStream("gzip"))).text()).split(
  "\n",
);
lines.pop();

interface WasmProcessor {
  encodeIds(text: string): number[];
}

/** Loads the wasm build, guarding against its silent failure on a bad model (every encode gives []). */
async function loadWasm(path: URL): Promise<WasmProcessor> {
  Tokenizer.fromBytes(await Deno.readFile(path)); // throws on a file that is not a usable model
  const { SentencePieceProcessor } = await import("npm:@agnai/sentencepiece-js@1.1.1");
  const processor = new SentencePieceProcessor();
  await processor.load(path.pathname);
  return processor as WasmProcessor;
}

function checkAgainst(reference: Tokenizer, encode: (line: string) => number[], name: string): void {
  for (const line of lines.slice(0, 200)) {
    if (encode(line).join(" ") !== reference.encode(line).join(" ")) {
      throw new Error(`Cannot benchmark ${name}: it encodes ${JSON.stringify(line)} differently`);
    }
  }
}

let sink = 0;

for (const name of MODELS) {
  const path = new URL(`${name}.model`, SPM_DIR);
  const ours = await Tokenizer.load(path);
  const wasm = await loadWasm(path);
  checkAgainst(ours, (l) => wasm.encodeIds(l), `the wasm build with ${name}`);
  const bytes = await Deno.readFile(path);

  Deno.bench({
    name: `${name}: difflm Tokenizer.encode`,
    group: name,
    baseline: true,
    n: 5,
    warmup: 1,
    fn() {
      for (const line of lines) sink += ours.encode(line).length;
    },
  });
  Deno.bench({
    name: `${name}: difflm, fresh tokenizer per pass (cold caches)`,
    group: name,
    n: 5,
    warmup: 1,
    fn() {
      const fresh = Tokenizer.fromBytes(bytes);
      for (const line of lines) sink += fresh.encode(line).length;
    },
  });
  Deno.bench({
    name: `${name}: @agnai/sentencepiece-js (wasm) encodeIds`,
    group: name,
    n: 5,
    warmup: 1,
    fn() {
      for (const line of lines) sink += wasm.encodeIds(line).length;
    },
  });
  Deno.bench({
    name: `${name}: difflm sampled (alpha 0.1)`,
    group: name,
    n: 5,
    warmup: 1,
    fn() {
      const rng = new Mt19937(42);
      for (const line of lines) sink += ours.encode(line, { sample: true, alpha: 0.1, rng }).length;
    },
  });
}

globalThis.addEventListener("unload", () => {
  if (sink === 0) throw new Error("Cannot benchmark: nothing was encoded");
});
