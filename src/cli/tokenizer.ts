/**
 * `cli.ts tokenizer …`: train a SentencePiece BPE model, and encode or decode lines with one.
 *
 * ```sh
 * deno run -A cli.ts tokenizer train --corpus c.txt --vocab 4000 --out c.model
 * deno run -A cli.ts tokenizer encode --spm c.model [--sample] [--pieces] < text.txt > ids.txt
 * deno run -A cli.ts tokenizer decode --spm c.model [--pieces] < ids.txt > text.txt
 * ```
 *
 * Bad input (a missing or corrupt model, invalid UTF-8, an empty corpus, an unknown id) ends the
 * command with one line on stderr that names the file and the problem, and exit code 1; a usage
 * mistake gives exit code 2.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Mt19937, readLines, SpmModelSyntaxError, Tokenizer, trainTokenizer } from "../tokenizer/mod.ts";
import { flagOptions } from "./_args.ts";

/** Where the command reads and writes; tests substitute their own streams. */
export interface TokenizerCommandIo {
  /** Lines to encode or decode. Default: standard input. */
  stdin?: ReadableStream<Uint8Array>;
  /** Encoded or decoded lines. Default: standard output. */
  stdout?: WritableStream<Uint8Array>;
  /** Receives error and progress lines (without `\n`). Default: standard error. */
  stderr?: (line: string) => void;
}

const USAGE = `Usage:
  tokenizer train  --corpus FILE --vocab N --out FILE.model [--user-symbols 0,1,…] [--coverage 0.9995]
                   [--max-sentences 1000000] [--seed 12345678] [--bos 0 --eos 1 --pad 2 --unk 3] [--quiet]
  tokenizer encode --spm FILE.model [--pieces] [--sample [--alpha 0.1] [--seed N] [--nbest-size -1]]
                   [--bos] [--eos]          reads lines on stdin, writes ids (or pieces) per line
  tokenizer decode --spm FILE.model [--pieces]   reads ids (or pieces) per line, writes text`;

/** A usage mistake: the message is printed with the usage text and the exit code is 2. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Runs `tokenizer <train|encode|decode> …` and returns the exit code (0 success, 1 bad input, 2 usage).
 *
 * @example Usage
 * ```ts
 * import { tokenizerCommand } from "./tokenizer.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/c.txt`, "a cat sat on the mat\na dog sat on the log\n");
 * const code = await tokenizerCommand(
 *   ["train", "--corpus", `${dir}/c.txt`, "--vocab", "30", "--out", `${dir}/c.model`, "--quiet"],
 * );
 * console.log(code); // 0; c.model and c.vocab are written
 * const stdin = ReadableStream.from([new TextEncoder().encode("a cat sat\n")]);
 * const stdout = new WritableStream<Uint8Array>({ write: (bytes) => console.log(new TextDecoder().decode(bytes)) });
 * await tokenizerCommand(["encode", "--spm", `${dir}/c.model`, "--pieces"], { stdin, stdout }); // ▁ a ▁ c at ▁ s at
 * ```
 * @param args The arguments after `tokenizer`.
 * @param io Streams to use instead of the process's standard streams.
 * @returns The exit code.
 */
export async function tokenizerCommand(args: string[], io: TokenizerCommandIo = {}): Promise<number> {
  const stderr = io.stderr ?? writeStderrLine;
  const [command, ...rest] = args;
  try {
    if (
      ["train", "encode", "decode"].includes(command!) && (rest.includes("--help") || rest.includes("-h"))
    ) {
      stderr(USAGE);
      return 0;
    }
    switch (command) {
      case "train":
        return await train(rest, stderr);
      case "encode":
        return await encode(rest, io);
      case "decode":
        return await decode(rest, io);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        stderr(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown sub-command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      stderr(`error: ${err.message}`);
      stderr(USAGE);
      return 2;
    }
    stderr(`error: ${describe(err)}`);
    return 1;
  }
}

function describe(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) {
    const path = /'([^']*)'/.exec(err.message)?.[1];
    return path === undefined ? err.message : `Cannot read ${path}: no such file`;
  }
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    return err.message.split("\n")[0]!;
  }
  if (err instanceof Error) return err.message.split("\n")[0]!;
  return String(err);
}

function parse(
  args: string[],
  options: Record<string, { type: "string" | "boolean" }>,
): { values: Record<string, string | boolean | undefined> } {
  try {
    const { values } = parseArgs({ args, options, allowPositionals: false, strict: true });
    return { values: values as Record<string, string | boolean | undefined> };
  } catch (err) {
    throw new UsageError((err as Error).message.split(". ")[0]!);
  }
}

function integer(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UsageError(`--${flag} must be an integer, got "${value}"`);
  return n;
}

function number(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value === "" || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got "${value}"`);
  return n;
}

async function train(args: string[], stderr: (line: string) => void): Promise<number> {
  const { values } = parse(
    args,
    flagOptions([
      "corpus",
      "vocab",
      "out",
      "user-symbols",
      "coverage",
      "max-sentences",
      "seed",
      "bos",
      "eos",
      "pad",
      "unk",
    ], ["quiet"]),
  );
  const corpus = values.corpus as string | undefined;
  const out = values.out as string | undefined;
  const vocabSize = integer(values.vocab, "vocab");
  if (corpus === undefined || vocabSize === undefined || out === undefined) {
    throw new UsageError("train needs --corpus, --vocab and --out");
  }
  const userSymbols = values["user-symbols"] === undefined
    ? undefined
    : (values["user-symbols"] as string).split(",").filter((s) => s.length > 0);
  const specials = {
    bos: integer(values.bos, "bos"),
    eos: integer(values.eos, "eos"),
    pad: integer(values.pad, "pad"),
    unk: integer(values.unk, "unk"),
  };
  await trainTokenizer({
    corpus,
    vocabSize,
    out,
    ...(userSymbols === undefined ? {} : { userSymbols }),
    specials: Object.fromEntries(Object.entries(specials).filter(([, v]) => v !== undefined)),
    ...optional("characterCoverage", number(values.coverage, "coverage")),
    ...optional("maxSentences", integer(values["max-sentences"], "max-sentences")),
    ...optional("seed", integer(values.seed, "seed")),
    log: values.quiet ? () => {} : stderr,
  });
  if (!values.quiet) stderr(`wrote ${out}`);
  return 0;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

async function loadModel(values: Record<string, unknown>): Promise<Tokenizer> {
  const path = values.spm as string | undefined;
  if (path === undefined) throw new UsageError("--spm FILE.model is required");
  try {
    return await Tokenizer.load(path);
  } catch (err) {
    if (err instanceof SpmModelSyntaxError) throw err;
    throw new Error(describe(err));
  }
}

/** Collects output text and writes it in large chunks. */
class OutputBuffer {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #parts: string[] = [];
  #size = 0;
  #encoder = new TextEncoder();

  constructor(stream: WritableStream<Uint8Array>) {
    this.#writer = stream.getWriter();
  }

  async line(text: string): Promise<void> {
    this.#parts.push(text, "\n");
    this.#size += text.length + 1;
    if (this.#size >= 1 << 16) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#parts.length === 0) return;
    const bytes = this.#encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#size = 0;
    await this.#writer.write(bytes);
  }

  async close(): Promise<void> {
    await this.flush();
    this.#writer.releaseLock();
  }
}

async function encode(args: string[], io: TokenizerCommandIo): Promise<number> {
  const { values } = parse(
    args,
    flagOptions(["spm", "alpha", "seed", "nbest-size"], ["pieces", "sample", "bos", "eos"]),
  );
  const tok = await loadModel(values);
  if (values.bos === true && tok.bosId < 0) {
    throw new RangeError(`Cannot add BOS: ${values.spm} has no <s> piece`);
  }
  if (values.eos === true && tok.eosId < 0) {
    throw new RangeError(`Cannot add EOS: ${values.spm} has no </s> piece`);
  }
  const seed = integer(values.seed, "seed");
  const alpha = number(values.alpha, "alpha") ?? 0.1;
  const nbestSize = integer(values["nbest-size"], "nbest-size") ?? -1;
  // One generator for the whole stream, as spm_encode --random_seed does.
  const rng = seed === undefined ? undefined : new Mt19937(seed);
  const options = {
    sample: values.sample === true,
    alpha,
    nbestSize,
    ...(rng === undefined ? {} : { rng }),
    addBos: values.bos === true,
    addEos: values.eos === true,
  };
  const out = new OutputBuffer(io.stdout ?? Deno.stdout.writable);
  try {
    for await (const { line } of readLines(io.stdin ?? Deno.stdin.readable, { name: "stdin" })) {
      if (values.pieces) {
        const pieces = tok.encodeAsPieces(line, options);
        if (options.addBos) pieces.unshift(tok.idToPiece(tok.bosId));
        if (options.addEos) pieces.push(tok.idToPiece(tok.eosId));
        await out.line(pieces.join(" "));
      } else {
        await out.line(tok.encode(line, options).join(" "));
      }
    }
  } finally {
    await out.close();
  }
  return 0;
}

async function decode(args: string[], io: TokenizerCommandIo): Promise<number> {
  const { values } = parse(args, { spm: { type: "string" }, pieces: { type: "boolean" } });
  const tok = await loadModel(values);
  const out = new OutputBuffer(io.stdout ?? Deno.stdout.writable);
  try {
    for await (const { line, lineNumber } of readLines(io.stdin ?? Deno.stdin.readable, { name: "stdin" })) {
      const fields = line.split(" ").filter((f) => f.length > 0);
      if (values.pieces) {
        await out.line(tok.decodePieces(fields));
        continue;
      }
      const ids = fields.map((f) => {
        const id = Number(f);
        if (!/^-?\d+$/.test(f) || id < 0 || id >= tok.vocabSize) {
          throw new RangeError(
            `Cannot decode stdin: line ${lineNumber} has "${f}", not an id in [0, ${tok.vocabSize})`,
          );
        }
        return id;
      });
      await out.line(tok.decode(ids));
    }
  } finally {
    await out.close();
  }
  return 0;
}

const STDERR_ENCODER = new TextEncoder();

function writeStderrLine(line: string): void {
  Deno.stderr.writeSync(STDERR_ENCODER.encode(line + "\n"));
}
