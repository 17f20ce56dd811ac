/**
 * Test data for the tokenizer tests: the reference SentencePiece models and their recorded encodings
 * (`tests/testdata/spm/`, copied from the project's shared fixtures), the KJV corpus (gzipped), and a
 * guarded loader for the SentencePiece wasm build used as a cross-check.
 */
import { Mt19937, Tokenizer } from "../../src/tokenizer/mod.ts";

/** The three reference models. */
export const MODELS = ["kjv_bpe_1000", "kjv_bpe_4000", "kjv_unigram_1000"] as const;
/** One of {@linkcode MODELS}. */
export type ModelName = (typeof MODELS)[number];

/** Folder of the SentencePiece fixtures. */
export const SPM_DIR = new URL("../testdata/spm/", import.meta.url);

/** One record of `<model>.jsonl`. */
export interface FixtureRecord {
  source: string;
  line?: number;
  text: string;
  normalized: string;
  ids: number[];
  pieces: string[];
  decoded: string;
  decoded_from_pieces: string;
  roundtrip: boolean;
}

/** One record of `<model>.sample.jsonl`. */
export interface SampleRecord {
  source: string;
  text: string;
  ids: number[];
  pieces: string[];
}

/** Path of a fixture file. */
export function fixturePath(name: string): URL {
  return new URL(name, SPM_DIR);
}

/** Loads a reference model. */
export function loadModel(name: ModelName): Promise<Tokenizer> {
  return Tokenizer.load(fixturePath(`${name}.model`));
}

/** Reads a JSON-lines fixture. */
export async function readJsonl<T>(name: string): Promise<T[]> {
  const text = await Deno.readTextFile(fixturePath(name));
  return text.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l) as T);
}

let corpus: string[] | null = null;

/** The 31,102 lines of `kjv.txt` (decompressed once per process). */
export async function kjvLines(): Promise<string[]> {
  if (corpus !== null) return corpus;
  const file = await Deno.open(new URL("../testdata/kjv.txt.gz", import.meta.url));
  const text = await new Response(file.readable.pipeThrough(new DecompressionStream("gzip"))).text();
  const lines = text.split("\n");
  lines.pop(); // the file ends with a newline
  corpus = lines;
  return lines;
}

/** SHA-256 of a string's UTF-8, hex. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether a command can be run (for tests that skip without the reference tools). */
export function hasCommand(name: string): boolean {
  try {
    const { success } = new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null" })
      .outputSync();
    return success;
  } catch {
    return false;
  }
}

/** The parts of the wasm build's processor the tests use. */
export interface WasmProcessor {
  encodeIds(text: string): number[];
  encodePieces(text: string): string[];
  decodeIds(ids: number[]): string;
}

/**
 * Loads a model into the SentencePiece wasm build (`@agnai/sentencepiece-js`). That build ignores a
 * failed load and then returns `[]` for every input, so the model is first validated with our reader
 * and the loaded processor must encode a probe string to something.
 */
export async function loadWasm(path: URL): Promise<WasmProcessor> {
  Tokenizer.fromBytes(await Deno.readFile(path)); // throws SpmModelSyntaxError on a bad file
  const { SentencePieceProcessor } = await import("npm:@agnai/sentencepiece-js@1.1.1");
  const processor = new SentencePieceProcessor();
  await processor.load(path.pathname);
  if (processor.encodeIds("a").length === 0) {
    throw new Error(`Cannot load ${path.pathname} into the wasm build: it encodes "a" to nothing`);
  }
  return processor as WasmProcessor;
}

/** A seeded corpus mixing scripts, digits, accents, emoji and punctuation. */
export function mixedCorpus(lines: number): string[] {
  const words = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "Привет",
    "мир",
    "Γειά",
    "σου",
    "日本語",
    "テキスト",
    "ひらがな",
    "カタカナー",
    "café",
    "naïve",
    "e\u0301clair",
    "1611",
    "x²",
    "ﬁnal",
    "Hello",
    "aaaa",
    "ababab",
    "مرحبا",
    "😀",
    "👍🏽",
    "don't",
    "re-enter",
    "...",
    "你好",
    "한국어",
    "ⅠⅡ",
    "ｆｕｌｌ",
  ];
  const rng = new Mt19937(11);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = 1 + (rng.nextUint32() % 12);
    const line: string[] = [];
    for (let j = 0; j < n; j++) line.push(words[rng.nextUint32() % words.length]!);
    out.push(line.join(" "));
  }
  return out;
}
