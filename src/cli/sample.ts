// deno-lint-ignore-file no-console
/**
 * `cli.ts sample`: draws texts from a trained run, unconditionally, after a prompt, or into the gaps of
 * a template, optionally showing the denoising live.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Sampler } from "../diffusion/sampler.ts";
import { loadRun } from "../train/checkpoint.ts";
import { numberFlag, samplingMethod, UsageError } from "./_args.ts";
import { latestRun } from "./_runs.ts";

export const SAMPLE_USAGE = `usage: deno run --allow-read=runs cli.ts sample [options]

Samples texts from a trained run with the reverse diffusion process.

  --ckpt DIR          run directory (default: the latest run under runs/)
  --n N               samples to draw (default 8)
  --steps N           reverse-process steps (default 200)
  --method NAME       difflm | ddim | ddpm (default difflm)
  --seed N            noise seed (default 0)
  --prompt TEXT       every sample starts with this text
  --template TEXT     words stay, each _ is one generated token: "the _ _ cat sat on the _"
  --length N          tokens per sample (default: the run's crop length)
  --no-self-cond      do not feed estimates back
  --clamp             clamp each estimate to its most likely token's embedding (Diffusion-LM's trick)
  --temperature X     softmax temperature of each estimate's token mix (default 1, the seed's)
  --show-steps        redraw the denoising live`;

const OPTIONS = {
  ckpt: { type: "string" },
  n: { type: "string" },
  steps: { type: "string" },
  method: { type: "string" },
  seed: { type: "string" },
  prompt: { type: "string" },
  template: { type: "string" },
  length: { type: "string" },
  "no-self-cond": { type: "boolean" },
  clamp: { type: "boolean" },
  temperature: { type: "string" },
  "show-steps": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Runs `cli.ts sample`.
 *
 * @param args The arguments after `sample`.
 * @returns The exit code.
 */
export async function sampleCommand(args: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split("\n")[0]}; see cli.ts sample --help`);
  }
  if (flags.help) {
    console.log(SAMPLE_USAGE);
    return 0;
  }
  const method = samplingMethod(flags.method);
  if (flags.prompt !== undefined && flags.template !== undefined) {
    throw new UsageError("Give --prompt or --template, not both");
  }
  const dir = flags.ckpt ?? await latestRun();
  const { model, tokenizer, config } = await loadRun(dir);
  const count = numberFlag("--n", flags.n, { integer: true, min: 1 }) ?? 8;
  const sampler = new Sampler(model, {
    steps: numberFlag("--steps", flags.steps, { integer: true, min: 1 }) ?? 200,
    method,
    seed: numberFlag("--seed", flags.seed, { integer: true, min: 0 }) ?? 0,
    length: numberFlag("--length", flags.length, { integer: true, min: 1 }) ?? config.train.crop,
    selfConditioning: !flags["no-self-cond"],
    clamp: flags.clamp === true,
    temperature: numberFlag("--temperature", flags.temperature, { min: 1e-3, max: 1e3 }),
    tokenizer,
  });
  const live = flags["show-steps"] === true;
  const interactive = Deno.stdout.isTerminal();
  let drawn = 0;
  const encoder = new TextEncoder();
  const { texts } = await sampler.generate({
    count,
    prompt: flags.prompt,
    template: flags.template,
    onStep: live
      ? async ({ step, t, texts }) => {
        const lines = [
          `step ${step}/${sampler.steps}  t=${t.toFixed(3)}`,
          ...(texts ?? []).map((x) => `  ${x}`),
        ];
        if (interactive) {
          const up = drawn > 0 ? `\x1b[${drawn}F` : "";
          await Deno.stdout.write(encoder.encode(up + lines.map((l) => `\x1b[2K${l}`).join("\n") + "\n"));
          drawn = lines.length;
        } else if (step % 20 === 0 || step === sampler.steps) {
          console.log(lines.join("\n"));
        }
      }
      : undefined,
  });
  if (live) console.log("final:");
  for (const text of texts ?? []) console.log(text);
  return 0;
}
