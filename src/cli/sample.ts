// deno-lint-ignore-file no-console
/**
 * `cli.ts sample`: draws texts from a trained run, unconditionally, after a prompt, or into the gaps of
 * a template, optionally showing the denoising live.
 *
 * @module
 */
import { MAX_SAMPLE_LENGTH, MAX_SAMPLES, MAX_SAMPLING_STEPS, Sampler } from "../diffusion/sampler.ts";
import { loadRun } from "../train/checkpoint.ts";
import { Engine } from "../tensor/engine.ts";
import {
  ENGINE_USAGE,
  engineFlagOptions,
  engineFlags,
  numberFlag,
  parseFlags,
  samplingMethod,
  UsageError,
} from "./_args.ts";
import { latestRun } from "./_runs.ts";

export const SAMPLE_USAGE = `usage: deno run --allow-read=runs cli.ts sample [options]

Samples texts from a trained run with the reverse diffusion process.

  --ckpt DIR          run directory (default: the latest run under runs/)
  --n N               samples to draw, in [1, ${MAX_SAMPLES}] (default 8; fewer where the GPU's buffers
                      cannot hold them, which the error says)
  --steps N           reverse-process steps, in [1, ${MAX_SAMPLING_STEPS}] (default 200)
  --method NAME       difflm | ddim | ddpm (default difflm)
  --seed N            noise seed, in [0, 2^32) (default 0)
  --prompt TEXT       every sample starts with this text
  --template TEXT     the whole text: words stay, each _ is one generated token: "the _ _ cat sat on the _"
  --length N          tokens per sample, in [1, ${MAX_SAMPLE_LENGTH}] (default: the run's crop length)
  --no-self-cond      do not feed estimates back
  --clamp             clamp each estimate to its most likely token's embedding (Diffusion-LM's trick)
  --temperature X     softmax temperature of each estimate's token mix, in [0.001, 1000] (default 1)
  --show-steps        redraw the denoising live
${ENGINE_USAGE}`;

const OPTIONS = engineFlagOptions([
  "ckpt",
  "n",
  "steps",
  "method",
  "seed",
  "prompt",
  "template",
  "length",
  "temperature",
], [
  "no-self-cond",
  "clamp",
  "show-steps",
]);

/**
 * Runs `cli.ts sample`.
 *
 * @param args The arguments after `sample`.
 * @returns The exit code.
 */
export async function sampleCommand(args: string[]): Promise<number> {
  const flags = parseFlags("sample", args, OPTIONS);
  if (flags.help) {
    console.log(SAMPLE_USAGE);
    return 0;
  }
  // Every flag is checked before the run is read or the GPU started.
  const method = samplingMethod(flags.method);
  if (flags.prompt !== undefined && flags.template !== undefined) {
    throw new UsageError("Give --prompt or --template, not both");
  }
  const count = numberFlag("--n", flags.n, { integer: true, min: 1, max: MAX_SAMPLES }) ?? 8;
  const steps = numberFlag("--steps", flags.steps, { integer: true, min: 1, max: MAX_SAMPLING_STEPS }) ?? 200;
  const seed = numberFlag("--seed", flags.seed, { integer: true, min: 0, max: 2 ** 32 - 1 }) ?? 0;
  const length = numberFlag("--length", flags.length, { integer: true, min: 1, max: MAX_SAMPLE_LENGTH });
  const temperature = numberFlag("--temperature", flags.temperature, { min: 1e-3, max: 1e3 });
  const choice = engineFlags(flags);
  const dir = flags.ckpt ?? await latestRun();
  const { model, tokenizer, config } = await loadRun(dir, { engine: await Engine.create(choice) });
  using sampler = new Sampler(model, {
    steps,
    method,
    seed,
    length: length ?? config.train.crop,
    selfConditioning: !flags["no-self-cond"],
    clamp: flags.clamp === true,
    temperature,
    tokenizer,
  });
  if (count > sampler.maxCount()) {
    throw new UsageError(
      `Invalid value for --n: ${count} samples of ${sampler.length} tokens do not fit this GPU's buffers; ` +
        `give at most ${sampler.maxCount()}`,
    );
  }
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
        const lines = [`step ${step}/${sampler.steps}  t=${t.toFixed(3)}`, ...texts.map((x) => `  ${x}`)];
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
  for (const text of texts) console.log(text);
  model.dispose();
  return 0;
}
