// deno-lint-ignore-file no-console
/**
 * `cli.ts train`: flags and a progress line over {@linkcode TrainingRun}. Every flag is checked before a
 * file is read or the GPU is started; a directory holding a run is resumed (changed settings printed,
 * fixed ones refused), one holding part of a run is refused unless `--fresh` is given. Ctrl-C (or
 * SIGTERM) finishes the step, writes a checkpoint and exits; a second one exits at once.
 *
 * @module
 */
import { join } from "node:path";
import type { ModelConfig, PresetName, TrainConfig } from "../diffusion/config.ts";
import { PRESETS } from "../diffusion/config.ts";
import { readFileNamed } from "../train/files.ts";
import {
  type ChangeableTrainKey,
  CPU_DEMONSTRATION,
  MAX_SKIPPED_IN_A_ROW,
  type RunChanges,
  type TrainingProgress,
  TrainingRun,
  type TrainingRunConfig,
} from "../train/run.ts";
import { runFiles } from "../train/checkpoint.ts";
import { decodeRunConfig, type RunConfig } from "../train/state_dict.ts";
import { ENGINE_USAGE, engineFlagOptions, engineFlags, numberFlag, parseFlags, UsageError } from "./_args.ts";

export const TRAIN_USAGE = `usage: deno run [permissions] cli.ts train [options]

Trains a SentencePiece BPE tokenizer (unless --spm is given) and a diffusion model, printing samples
before training and after each epoch. Without --corpus it trains on the built-in corpus of simple
English sentences; without --ckpt it writes a new run directory under runs/. Given the --ckpt of an
existing run it resumes where that run's last checkpoint stopped: flags marked * may change there
(the changes are printed), the others are fixed when a run starts. Ctrl-C finishes the step, writes a
checkpoint and exits; a second Ctrl-C exits at once.

data and run:
  --corpus FILE        training text, one example per line (default: the built-in corpus)
  --spm FILE           SentencePiece model to use (default: train one; its size from --vocab)
  --vocab N            vocabulary of a tokenizer trained here, in [20, 65536] (tiny 400, small 2000, seed 8000)
  --ckpt DIR           run directory: created, or resumed when it holds a run
  --fresh              start a new run in --ckpt DIR even if it holds (part of) one, deleting it
  --preset NAME        tiny | small | seed (default tiny); explicit flags override it
  --epochs N  *        stop after N epochs, in [1, 1e6] (default: ${PRESETS.tiny.epochs} for tiny, else until --steps)
  --steps N  *         stop after N optimiser steps in total, in [1, 1e9]
  --minutes X  *       stop after X minutes of training, in [0, 1e6] (checkpoint and samples as at the end);
                       on a CPU adapter a run given neither --epochs nor --steps stops after 10, and a
                       new one given no --batch trains batches of 8
  --samples N  *       samples printed before training and after each epoch, in [0, 64] (default 4)
  --sample-steps N  *  reverse-process steps of those samples, in [1, 10000] (default: 100 tiny,
                       200 otherwise; 25 in a CPU adapter's demonstration run, see --minutes)
  --seed N             seed of initialisation, data order and noise, in [0, 2^32) (default 0)
  --log-every N  *     steps between log.jsonl records and plain progress lines, >= 1 (default 10)
  --ckpt-every N  *    steps between checkpoints, >= 1 (default 500; also at each epoch end)
${ENGINE_USAGE}

optimisation (defaults: the seed's, or the preset's):
  --batch N *  [1, 65536]    --lr X *  [1e-9, 10]    --warmup N *  >= 0    --decay N *  >= 1
  --wd X *  [0, 1]           --accum N *  [1, 1024]  --crop N  [2, 4096]
  --subword-alpha X  *  BPE-dropout of training-time tokenisation, in [0, 1] (the seed: 0.1)
  --self-cond X  *     probability of the self-conditioning pass, in [0, 1] (the seed: 0.5)
  --unconditional X  * share of examples trained with no conditioning positions, in [0, 1] (the seed: 0)
  --ema X              decay of a moving average of the weights that sampling uses, in [0, 0.99999] (0: none)

model:
  --embedding-dim N [1, 4096]  --model-dim N [8, 8192]  --layers N [1, 128]  --heads N [1, 256]
  --dropout X [0, 0.99]
  --noise-scale X      divides the noise schedule's signal-to-noise ratio by X², in [0.001, 1000] (the seed: 1)
  --embedding-affine on|off   learned weight and bias of the embedding LayerNorm (the seed: on)`;

const OPTIONS = engineFlagOptions([
  "corpus",
  "spm",
  "vocab",
  "ckpt",
  "preset",
  "epochs",
  "steps",
  "minutes",
  "samples",
  "sample-steps",
  "seed",
  "log-every",
  "ckpt-every",
  "batch",
  "lr",
  "warmup",
  "decay",
  "wd",
  "accum",
  "crop",
  "subword-alpha",
  "self-cond",
  "unconditional",
  "ema",
  "noise-scale",
  "embedding-affine",
  "embedding-dim",
  "model-dim",
  "layers",
  "heads",
  "dropout",
], ["fresh"]);

type Flags = ReturnType<typeof parseFlags<typeof OPTIONS>>;

/** A flag that sets a training option: its name, the option, and its bounds. */
const TRAIN_FLAGS: readonly [string, keyof TrainConfig, { integer?: boolean; min: number; max: number }][] = [
  ["batch", "batch", { integer: true, min: 1, max: 65536 }],
  ["lr", "lr", { min: 1e-9, max: 10 }],
  ["warmup", "warmup", { integer: true, min: 0, max: 1e9 }],
  ["decay", "decay", { integer: true, min: 1, max: 1e9 }],
  ["wd", "weightDecay", { min: 0, max: 1 }],
  ["accum", "accumulate", { integer: true, min: 1, max: 1024 }],
  ["crop", "crop", { integer: true, min: 2, max: 4096 }],
  ["subword-alpha", "subwordAlpha", { min: 0, max: 1 }],
  ["self-cond", "selfConditioning", { min: 0, max: 1 }],
  ["unconditional", "unconditional", { min: 0, max: 1 }],
  ["ema", "ema", { min: 0, max: 0.99999 }],
];

/** A flag that sets a model option. */
const MODEL_FLAGS: readonly [string, keyof ModelConfig, { integer?: boolean; min: number; max: number }][] = [
  ["embedding-dim", "embeddingDim", { integer: true, min: 1, max: 4096 }],
  ["model-dim", "modelDim", { integer: true, min: 8, max: 8192 }],
  ["layers", "layers", { integer: true, min: 1, max: 128 }],
  ["heads", "heads", { integer: true, min: 1, max: 256 }],
  ["dropout", "dropout", { min: 0, max: 0.99 }],
  ["noise-scale", "noiseScale", { min: 1e-3, max: 1e3 }],
];

/** Everything the flags ask for, checked. */
interface TrainRequest {
  dir: string | undefined;
  fresh: boolean;
  minutes: number | undefined;
  config: TrainingRunConfig & { model: Partial<ModelConfig>; train: Partial<TrainConfig> };
  spm: string | undefined;
  engine: ReturnType<typeof engineFlags>;
}

/** Checks every flag: values and their ranges, before any file or the GPU is touched. */
function readFlags(flags: Flags): TrainRequest {
  const value = (name: keyof typeof OPTIONS) => {
    const v = flags[name];
    return typeof v === "string" ? v : undefined;
  };
  const int = (name: keyof typeof OPTIONS, min: number, max: number) =>
    numberFlag(`--${name}`, value(name), { integer: true, min, max });
  const preset = value("preset") ?? "tiny";
  if (!(preset in PRESETS)) {
    throw new UsageError(`Invalid value for --preset: "${preset}"; expected tiny, small or seed`);
  }
  const model: Partial<ModelConfig> = {};
  for (const [flag, key, bounds] of MODEL_FLAGS) {
    const v = numberFlag(`--${flag}`, value(flag as keyof typeof OPTIONS), bounds);
    if (v !== undefined) (model as Record<string, number>)[key] = v;
  }
  const affine = value("embedding-affine");
  if (affine !== undefined) {
    if (affine !== "on" && affine !== "off") {
      throw new UsageError(`Invalid value for --embedding-affine: "${affine}"; expected on or off`);
    }
    model.embeddingAffine = affine === "on";
  }
  const train: Partial<TrainConfig> = {};
  for (const [flag, key, bounds] of TRAIN_FLAGS) {
    const v = numberFlag(`--${flag}`, value(flag as keyof typeof OPTIONS), bounds);
    if (v !== undefined) train[key] = v;
  }
  const spm = value("spm");
  const vocabSize = int("vocab", 20, 65536);
  if (spm !== undefined && vocabSize !== undefined) {
    throw new UsageError("Give --spm or --vocab, not both: --vocab sizes a tokenizer trained here");
  }
  if (flags.fresh && value("ckpt") === undefined) {
    throw new UsageError("--fresh needs --ckpt DIR: it replaces what that directory holds");
  }
  return {
    dir: value("ckpt"),
    fresh: flags.fresh === true,
    minutes: numberFlag("--minutes", value("minutes"), { min: 0, max: 1e6 }),
    spm,
    engine: engineFlags(flags),
    config: {
      preset: preset as PresetName,
      model,
      train,
      corpus: value("corpus"),
      vocabSize,
      seed: int("seed", 0, 2 ** 32 - 1),
      epochs: int("epochs", 1, 1e6),
      steps: int("steps", 1, 1e9),
      checkpointEvery: int("ckpt-every", 1, 1e9),
      logEvery: int("log-every", 1, 1e9),
      samples: int("samples", 0, 64),
      sampleSteps: int("sample-steps", 1, 10000),
    },
  };
}

/** Flags fixed when a run starts, each with the run's value; given on resume they must agree with it. */
function fixedSettings(config: RunConfig): [string, unknown][] {
  return [
    ["preset", config.preset],
    ["corpus", config.corpus ?? undefined],
    ["vocab", config.tokenizer.vocabSize],
    ["seed", config.seed],
    ["crop", config.train.crop],
    ["ema", config.train.ema ?? 0],
    ...MODEL_FLAGS.map(([flag, key]) => [flag, config.model[key]] as [string, unknown]),
    ["embedding-affine", config.model.embeddingAffine ? "on" : "off"],
  ];
}

/** The changes a resume asks for; a fixed flag that disagrees with the run is a usage error. */
async function resumeChanges(dir: string, flags: Flags, request: TrainRequest): Promise<RunChanges> {
  const path = join(dir, "config.json");
  const config = decodeRunConfig(await readFileNamed(path, "run config"), path);
  for (const [flag, saved] of fixedSettings(config)) {
    const given = flags[flag as keyof typeof OPTIONS];
    if (typeof given !== "string") continue;
    const same = typeof saved === "number" ? Number(given) === saved : given === saved;
    if (!same) {
      throw new UsageError(
        `Cannot change --${flag} when resuming "${dir}": the run has ${
          saved ?? "none"
        }, the flag says ${given}. ` +
          `The model's shape, tokenizer, corpus, seed and crop length are fixed when a run starts; ` +
          `give another --ckpt, or --fresh to replace this run`,
      );
    }
  }
  if (request.spm !== undefined) {
    const given = await readFileNamed(request.spm, "SentencePiece model");
    const saved = await readFileNamed(join(dir, config.tokenizer.file), "tokenizer model");
    if (given.length !== saved.length || given.some((b, i) => b !== saved[i])) {
      throw new UsageError(
        `Cannot change --spm when resuming "${dir}": ${request.spm} is not the run's tokenizer; ` +
          `give another --ckpt, or --fresh to replace this run`,
      );
    }
  }
  const train: Partial<Pick<TrainConfig, ChangeableTrainKey>> = {};
  for (const [key, v] of Object.entries(request.config.train)) {
    if (key !== "crop" && key !== "ema") train[key as ChangeableTrainKey] = v;
  }
  const { epochs, steps, checkpointEvery, logEvery, samples, sampleSteps } = request.config;
  return { epochs, steps, checkpointEvery, logEvery, samples, sampleSteps, train };
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function defaultRunDir(): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  const stamp = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${
    pad(now.getMinutes())
  }${pad(now.getSeconds())}`;
  return join("runs", stamp);
}

/**
 * Prints training progress: a bar and a line redrawn in place on a terminal, one line per log record
 * otherwise.
 */
function progressPrinter(interactive: boolean): (progress: TrainingProgress) => Promise<void> {
  const encoder = new TextEncoder();
  let open = false;
  const endLine = () => {
    if (open) console.log();
    open = false;
  };
  return async (progress) => {
    if (progress.type === "checkpoint") return endLine();
    if (progress.type === "samples") {
      endLine();
      const heading = progress.when === "epoch"
        ? `samples after epoch ${progress.epoch} (step ${progress.step}):`
        : `samples at step ${progress.step}:`;
      console.log(heading);
      // An early model often ends a text at once (EOS first): say so rather than print a blank line.
      for (const text of progress.texts) console.log(`  ${text === "" ? "(empty)" : text}`);
      return;
    }
    const m = progress.metrics;
    const epochs = progress.epochs === undefined ? "" : `/${progress.epochs}`;
    const line =
      `step ${progress.step}/${progress.target} · epoch ${progress.epoch}${epochs} · ${progress.tokensPerSecond} tok/s · ETA ${
        formatDuration(progress.eta)
      } · loss ${m.loss.toFixed(4)} mse ${m.mse.toFixed(4)} ce ${m.ce.toFixed(4)} acc ${
        m.accuracy.toFixed(3)
      }`;
    if (interactive) {
      const done = Math.min(1, progress.step / progress.target);
      const bar = `[${"#".repeat(Math.round(done * 20)).padEnd(20, ".")}] ${(100 * done).toFixed(0)}% `;
      await Deno.stdout.write(encoder.encode(`\r\x1b[2K${bar}${line}`));
      open = true;
    } else if (progress.logged) console.log(line);
  };
}

/** Aborts `controller` on the first SIGINT or SIGTERM and exits at once on the second. */
function stopOnSignals(controller: AbortController): { signal: string | null; remove(): void } {
  const state = { signal: null as string | null, remove: () => {} };
  const handlers: [Deno.Signal, () => void][] = [];
  for (const name of ["SIGINT", "SIGTERM"] as const) {
    const handler = () => {
      if (state.signal !== null) Deno.exit(name === "SIGINT" ? 130 : 143);
      state.signal = name;
      console.error(
        `\n${name}: finishing the step and writing a checkpoint (send it again to exit at once)`,
      );
      controller.abort(new Error(`${name} received`));
    };
    try {
      Deno.addSignalListener(name, handler);
      handlers.push([name, handler]);
    } catch {
      // SIGTERM cannot be listened to on Windows.
    }
  }
  state.remove = () => {
    for (const [name, handler] of handlers) Deno.removeSignalListener(name, handler);
  };
  return state;
}

/**
 * Runs `cli.ts train`.
 *
 * @param args The arguments after `train`.
 * @returns The exit code: 0 when training stopped as asked, 130 or 143 after SIGINT or SIGTERM.
 */
export async function trainCommand(args: string[]): Promise<number> {
  const flags = parseFlags("train", args, OPTIONS);
  if (flags.help) {
    console.log(TRAIN_USAGE);
    return 0;
  }
  const request = readFlags(flags);
  const dir = request.dir ?? defaultRunDir();
  const { present } = await runFiles(dir);
  const resuming = present.length > 0 && !request.fresh;
  let run: TrainingRun;
  if (resuming) {
    const changes = present.includes("config.json") ? await resumeChanges(dir, flags, request) : {};
    run = await TrainingRun.open(dir, { ...request.engine, changes });
    console.log(`resuming ${dir} at step ${run.step}`);
    if (run.changes.length > 0) console.log(`changed on resume: ${run.changes.join(", ")}`);
  } else {
    const config: TrainingRunConfig = { ...request.config };
    if (request.spm !== undefined) config.tokenizer = await readFileNamed(request.spm, "SentencePiece model");
    else {
      const vocab = config.vocabSize ?? PRESETS[config.preset ?? "tiny"].vocab;
      console.log(`training a ${vocab}-piece BPE tokenizer on ${config.corpus ?? "the built-in corpus"}`);
    }
    run = await TrainingRun.create(dir, config, { ...request.engine, fresh: request.fresh });
  }
  using _run = run;
  const gpu = run.engine.runtime.gpu;
  console.log(
    `adapter: ${gpu.description} (${gpu.backend}, ${gpu.provider}'s WebGPU); precision ${run.engine.precision}`,
  );
  const { config } = run;
  if (run.demonstration) {
    console.log(
      `CPU adapter: training stops after ${
        request.minutes ?? CPU_DEMONSTRATION.minutes
      } minutes, batches of ${config.train.batch}, ` +
        `samples of ${config.sampleSteps} reverse steps (--epochs, --steps, --minutes, --sample-steps${
          resuming ? "" : " or --batch"
        } to change)`,
    );
  }
  const m = config.model;
  console.log(
    `model: ${run.model.store.count.toLocaleString("en")} parameters (V=${m.vocabSize} E=${m.embeddingDim} ` +
      `D=${m.modelDim} layers=${m.layers} heads=${m.heads}); batch ${config.train.batch}×${config.train.crop}; ` +
      `corpus ${run.corpus.lineCount} lines (${run.corpus.lineCount - run.heldOutLines} train, ` +
      `${run.heldOutLines} held out); run ${dir}`,
  );
  const controller = new AbortController();
  const signals = stopOnSignals(controller);
  const started = performance.now();
  let result;
  try {
    result = await run.train({
      onProgress: progressPrinter(Deno.stdout.isTerminal()),
      signal: controller.signal,
      minutes: request.minutes,
    });
  } finally {
    signals.remove();
  }
  console.log(
    `checkpoint: ${dir} (step ${result.step}, ${formatDuration((performance.now() - started) / 1000)})`,
  );
  if (result.stopped === "time") {
    const minutes = request.minutes ?? CPU_DEMONSTRATION.minutes;
    console.log(
      `time limit of ${minutes} minutes reached at step ${result.step}; continue with --ckpt ${dir}`,
    );
  }
  if (result.stopped === "non-finite") {
    console.error(
      `error: training stopped at step ${result.step}: the last ${MAX_SKIPPED_IN_A_ROW} steps had non-finite ` +
        `gradients and were skipped, so the checkpoint holds the weights before them; resume with a lower ` +
        `--lr, or --precision f32`,
    );
    return 1;
  }
  if (result.stopped === "aborted") {
    console.log(`stopped by ${signals.signal} at step ${result.step}; continue with --ckpt ${dir}`);
    return signals.signal === "SIGTERM" ? 143 : 130;
  }
  return 0;
}
