// deno-lint-ignore-file no-console
/**
 * The difflm command line: `train`, `sample`, `eval`, `info` and `tokenizer`; `--help` on each.
 *
 * ```sh
 * deno run cli.ts info
 * deno run -A cli.ts tokenizer train --corpus c.txt --vocab 4000 --out c.model
 * ```
 *
 * @module
 */
import { describeGpu } from "./src/cli/info.ts";
import { tokenizerCommand } from "./src/cli/tokenizer.ts";
import { trainCommand } from "./src/cli/train.ts";
import { sampleCommand } from "./src/cli/sample.ts";
import { evalCommand } from "./src/cli/eval.ts";
import { UsageError } from "./src/cli/_args.ts";
import { GpuUnavailableError } from "./src/errors.ts";
import { readEnv } from "./src/host.ts";
import denoJson from "./deno.json" with { type: "json" };

const INFO_USAGE = `usage: deno run cli.ts info

Prints the WebGPU adapter difflm would use: its description, backend, features and limits.`;

const USAGE = `difflm — continuous diffusion language models on WebGPU

usage: deno run [permissions] cli.ts <command> [options]
       deno run cli.ts --version

commands:
  info                 the WebGPU adapter, backend, features and limits
  train                train a tokenizer and a model (default: built-in corpus, tiny preset), then sample
  sample               sample texts from a trained run (prompt, template, live view)
  eval                 measure a trained run (grammaticality, infilling, held-out accuracy/CE)
  tokenizer train|encode|decode   SentencePiece-compatible tokenizer tools

Run a command with --help for its options.`;

/** Turns a permission error into the flag that would allow it. */
function permissionHint(error: Error): string | null {
  const m = /Requires (\w+) access to "?([^",]+)"?, run again with the (--allow-\w+) flag/.exec(
    error.message,
  );
  if (!m) return null;
  return `Cannot ${m[1]} "${m[2]}": permission denied; run again with ${m[3]}=${m[2]} (or a folder above it)`;
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "info":
      if (rest.length === 1 && (rest[0] === "--help" || rest[0] === "-h")) {
        console.log(INFO_USAGE);
        return 0;
      }
      if (rest.length > 0) {
        throw new UsageError(`Unknown argument "${rest[0]}" for info; see cli.ts info --help`);
      }
      for (const line of await describeGpu()) console.log(line);
      return 0;
    case "--version":
    case "-V":
      console.log(`difflm ${denoJson.version}`);
      return 0;
    case "tokenizer":
      return await tokenizerCommand(rest);
    case "train":
      return await trainCommand(rest);
    case "sample":
      return await sampleCommand(rest);
    case "eval":
      return await evalCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return command === undefined ? 1 : 0;
    default:
      console.error(`Unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (error) {
    const e = error as Error;
    const hint = e instanceof Deno.errors.NotCapable || e?.name === "NotCapable" ? permissionHint(e) : null;
    if (hint) console.error(`error: ${hint}`);
    else if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      Deno.exitCode = 2;
    } else if (e instanceof GpuUnavailableError) console.error(`error: ${e.message}`);
    else if (readEnv("DIFFLM_DEBUG")) console.error(e);
    else console.error(`error: ${e?.message ?? String(e)}`);
    Deno.exitCode ||= 1;
  }
}
