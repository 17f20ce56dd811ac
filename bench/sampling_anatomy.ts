/**
 * Where a sampling step's time goes, kernel by kernel, as the step runs (one compute pass, dispatches
 * back to back): each kernel's dispatches are issued twice in turn, and the time that adds to the whole
 * reverse process, divided by the extra dispatches, is that kernel's marginal cost in place, its wait on
 * the dispatch before it included. A per-dispatch profile (`gpu_train_step.ts --sample-profile`) puts
 * every dispatch in its own pass instead, whose fixed cost outweighs a small step's kernels.
 *
 *   deno run -A bench/sampling_anatomy.ts [--gpu auto|deno|dawn] [--precision f32|mixed]
 *     [--batches 1,8,64] [--steps 200] [--rounds 3] [--tc ...]
 *
 * Doubled dispatches compute on what the first ones left (a residual added twice, say), so the samples
 * are meaningless; their time is not. Each figure is the median over `--rounds` rounds; every round times
 * the untouched process first and then each kernel doubled, so drift of the card's clock shows as spread
 * between rounds.
 */
// deno-lint-ignore-file no-console
import { Diffusion } from "../src/diffusion/diffusion.ts";
import { Sampler } from "../src/diffusion/sampler.ts";
import { Engine, type Precision } from "../src/tensor/engine.ts";
import { applyTensorCoreFlag, benchArgs } from "./_args.ts";

const args = benchArgs("auto", {
  batches: { type: "string", default: "1,8,64" },
  steps: { type: "string", default: "200" },
  rounds: { type: "string", default: "3" },
  precision: { type: "string" },
  tc: { type: "string" },
});
applyTensorCoreFlag(args.tc);
const engine = await Engine.create({ gpu: args.gpu, precision: args.precision as Precision | undefined });
const runtime = engine.runtime;
console.log(
  `adapter: ${runtime.gpu.description} (${runtime.gpu.provider}), precision ${engine.precision}, ` +
    `${args.steps} reverse steps, seed preset (V = 8000, L = 64)`,
);
const model = Diffusion.create(engine, { vocabSize: 8000 }, { seed: 0 });
const steps = Number(args.steps), rounds = Number(args.rounds);

// Every dispatch of the kernel named `doubled` is issued twice (while a step is recorded too, so that
// its replays repeat it).
let doubled: string | null = null;
const dispatch = runtime.dispatch.bind(runtime);
runtime.dispatch = (spec, views, uniforms, grid) => {
  dispatch(spec, views, uniforms, grid);
  if (spec.name === doubled) dispatch(spec, views, uniforms, grid);
};

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

for (const count of args.batches.split(",").map(Number)) {
  const sampler = new Sampler(model, { steps, length: 64, seed: 1 });
  const time = async () => {
    const start = performance.now();
    await sampler.generate({ count });
    return performance.now() - start;
  };
  // Dispatches per kernel in the whole process (the counts of two runs that differ only in steps would
  // give the per-step figure; here the whole process is what is timed).
  const counts = new Map<string, number>();
  for (const t of await runtime.profile(async () => void await sampler.generate({ count }))) {
    counts.set(t.name, (counts.get(t.name) ?? 0) + 1);
  }
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
    `\nbatch ${count}: ${baseMs.toFixed(1)} ms for ${steps} steps (rounds ${
      base.map((b) => b.toFixed(1)).join(", ")
    }), ${total} dispatches`,
  );
  console.log("| kernel | dispatches | ms doubled | µs each | ms of the process |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  let explained = 0;
  for (const kernel of kernels) {
    const n = counts.get(kernel)!;
    const ms = median(withDoubled.get(kernel)!);
    const each = (ms - baseMs) / n * 1000;
    explained += ms - baseMs;
    console.log(`| ${kernel} | ${n} | ${ms.toFixed(1)} | ${each.toFixed(1)} | ${(ms - baseMs).toFixed(1)} |`);
    console.log(
      JSON.stringify({
        what: "sampling_anatomy",
        batch: count,
        kernel,
        dispatches: n,
        base_ms: baseMs,
        doubled_ms: ms,
      }),
    );
  }
  console.log(`| all, summed | ${total} | | | ${explained.toFixed(1)} of ${baseMs.toFixed(1)} |`);
}
