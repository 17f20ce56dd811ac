/**
 * Counts the dispatches of one training step by kernel on whatever adapter exists (a CPU adapter will
 * do: only the counts matter, and they do not depend on the batch, so a batch of 2 stands for the
 * preset's). Self-conditioning runs on every step, so the step holds both forward passes.
 *
 *   deno run -A bench/train_dispatches.ts [--preset seed|small|tiny] [--gpu deno|dawn] [--precision f32|mixed]
 */
// deno-lint-ignore-file no-console
import { Diffusion } from "../src/diffusion/diffusion.ts";
import { DEFAULT_TRAIN, PRESETS } from "../src/diffusion/config.ts";
import { Engine, type Precision } from "../src/tensor/engine.ts";
import { Trainer } from "../src/train/trainer.ts";
import { benchArgs } from "./_args.ts";
import { randomBatch } from "./_random.ts";

const args = benchArgs("deno", {
  preset: { type: "string", default: "seed" },
  precision: { type: "string", default: "f32" },
});
const preset = PRESETS[args.preset as keyof typeof PRESETS];
if (!preset) throw new Error(`unknown preset ${args.preset}`);
const engine = await Engine.create({ gpu: args.gpu, precision: args.precision as Precision });
const model = Diffusion.create(engine, { ...preset.model, vocabSize: preset.vocab }, { seed: 0 });
const config = { ...DEFAULT_TRAIN, ...preset.train, batch: 2, selfConditioning: 1 };
const length = config.crop ?? 64;
const trainer = new Trainer(model, config, { seed: 0 });
const batch = randomBatch(2, length, preset.vocab, 1);
await (await trainer.trainStep([batch])).metrics; // compile every pipeline first
const timings = await engine.runtime.profile(async () => {
  await (await trainer.trainStep([batch])).metrics;
});
const byKernel = new Map<string, number>();
for (const t of timings) byKernel.set(t.name, (byKernel.get(t.name) ?? 0) + 1);
console.log(
  `${args.preset} preset, ${args.precision}, batch 2 × ${length}: ${timings.length} dispatches per step`,
);
for (const [name, n] of [...byKernel].sort((a, b) => b[1] - a[1])) {
  console.log(`${String(n).padStart(5)}  ${name}`);
}
