/**
 * Where a step's time goes, kernel by kernel, as the step runs (one compute pass, dispatches back to
 * back): each kernel's dispatches are issued twice in turn, and the time that adds to the whole work,
 * divided by the extra dispatches, is that kernel's marginal cost in place, its wait on the dispatch
 * before it included. A per-dispatch profile (`gpu_train_step.ts --profile`, `--sample-profile`) puts
 * every dispatch in its own pass instead, whose fixed cost outweighs small kernels.
 *
 *   deno run -A bench/step_anatomy.ts [--gpu auto|deno|dawn] [--precision f32|mixed] [--tc ...]
 *     [--sample-batches 1,8,64] [--sample-steps 200] [--train-steps 10] [--train-batch 256] [--rounds 3]
 *
 * The work timed: 200-step sampling at each batch (the seed preset, L = 64), then `--train-steps`
 * pipelined training steps of the seed preset (batch `--train-batch` × 64, self-conditioning on every
 * step, as bench/train_dispatches.ts counts them); `--train-steps 0` or `--sample-batches ""` leaves one out.
 * Doubled dispatches compute on what the first ones left (a residual added twice, say), so the samples
 * and losses are meaningless; their time is not. Each figure is the median over `--rounds` rounds; every
 * round times the untouched work first and then each kernel doubled, so drift of the card's clock shows
 * as spread between rounds.
 */
// deno-lint-ignore-file no-console
import { DEFAULT_TRAIN } from "../src/diffusion/config.ts";
import { Diffusion } from "../src/diffusion/diffusion.ts";
import { Sampler } from "../src/diffusion/sampler.ts";
import { Engine, type Precision } from "../src/tensor/engine.ts";
import { Trainer } from "../src/train/trainer.ts";
import { applyTensorCoreFlag, benchArgs } from "./_args.ts";
import { randomBatch } from "./_random.ts";

const args = benchArgs("auto", {
  "sample-batches": { type: "string", default: "1,8,64" },
  "sample-steps": { type: "string", default: "200" },
  "train-steps": { type: "string", default: "10" },
  "train-batch": { type: "string", default: "256" },
  rounds: { type: "string", default: "3" },
  precision: { type: "string" },
  tc: { type: "string" },
});
applyTensorCoreFlag(args.tc);
const engine = await Engine.create({ gpu: args.gpu, precision: args.precision as Precision | undefined });
const runtime = engine.runtime;
const [V, L] = [8000, 64];
console.log(
  `adapter: ${runtime.gpu.description} (${runtime.gpu.provider}), precision ${engine.precision}, ` +
    `seed preset (V = ${V}, L = ${L})`,
);
const model = Diffusion.create(engine, { vocabSize: V }, { seed: 0 });
const rounds = Number(args.rounds);

// Every dispatch of the kernel named `doubled` is issued twice (while a sampling step is recorded too,
// so that its replays repeat it).
let doubled: string | null = null;
const dispatch = runtime.dispatch.bind(runtime);
runtime.dispatch = (spec, views, uniforms, grid) => {
  dispatch(spec, views, uniforms, grid);
  if (spec.name === doubled) dispatch(spec, views, uniforms, grid);
};

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Times `work` untouched and with each of its kernels doubled, and prints the table. */
async function anatomy(title: string, work: () => Promise<void>): Promise<void> {
  const time = async () => {
    const start = performance.now();
    await work();
    return performance.now() - start;
  };
  const counts = new Map<string, number>();
  for (const t of await runtime.profile(work)) counts.set(t.name, (counts.get(t.name) ?? 0) + 1);
  await time(); // compiles what the profile's passes did not
  const kernels = [...counts.keys()].sort((a, b) => counts.get(b)! - counts.get(a)!);
  const base: number[] = [];
  const withDoubled = new Map<string, number[]>(kernels.map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    doubled = null;
    base.push(await time());
    for (const kernel of kernels) {
      doubled = kernel;
      withDoubled.get(kernel)!.push(await time());
    }
  }
  doubled = null;
  const baseMs = median(base);
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  console.log(
    `\n${title}: ${baseMs.toFixed(1)} ms (rounds ${base.map((b) => b.toFixed(1)).join(", ")}), ` +
      `${total} dispatches`,
  );
  console.log("| kernel | dispatches | ms doubled | µs each | ms of the work |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  let explained = 0;
  for (const kernel of kernels) {
    const n = counts.get(kernel)!;
    const ms = median(withDoubled.get(kernel)!);
    explained += ms - baseMs;
    console.log(
      `| ${kernel} | ${n} | ${ms.toFixed(1)} | ${((ms - baseMs) / n * 1000).toFixed(1)} | ` +
        `${(ms - baseMs).toFixed(1)} |`,
    );
    console.log(
      JSON.stringify({
        what: "step_anatomy",
        work: title,
        kernel,
        dispatches: n,
        base_ms: baseMs,
        doubled_ms: ms,
      }),
    );
  }
  console.log(`| all, summed | ${total} | | | ${explained.toFixed(1)} of ${baseMs.toFixed(1)} |`);
}

const sampleSteps = Number(args["sample-steps"]);
for (const count of args["sample-batches"].split(",").filter((b) => b !== "").map(Number)) {
  const sampler = new Sampler(model, { steps: sampleSteps, length: L, seed: 1 });
  await anatomy(`sampling ${sampleSteps} steps at batch ${count}`, async () => {
    await sampler.generate({ count });
  });
}

const trainSteps = Number(args["train-steps"]);
if (trainSteps > 0) {
  const B = Number(args["train-batch"]);
  const trainer = new Trainer(
    model,
    { ...DEFAULT_TRAIN, batch: B, crop: L, warmup: 10, selfConditioning: 1 },
    {
      seed: 0,
    },
  );
  const batches = [randomBatch(B, L, V, 1), randomBatch(B, L, V, 2)];
  // Pipelined, as `cli.ts train` runs: each step recorded while earlier ones run.
  await anatomy(`${trainSteps} training steps at batch ${B}×${L}`, async () => {
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < trainSteps; i++) pending.push((await trainer.trainStep([batches[i % 2]!])).metrics);
    await Promise.all(pending);
  });
}
