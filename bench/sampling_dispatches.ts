/**
 * Counts the dispatches of the reverse process by kernel on whatever adapter exists (a CPU adapter will
 * do: only the counts matter). Two runs that differ by one group of steps give the per-step figure in
 * steady state, without the set-up and the final pass.
 *
 *   deno run -A bench/sampling_dispatches.ts [--batch 1] [--preset seed|small|tiny] [--gpu deno|dawn]
 */
import { parseArgs } from "node:util";
import type { GpuProvider } from "../src/gpu/device.ts";
import { Diffusion, Engine, PRESETS, Sampler } from "../mod.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    gpu: { type: "string", default: "deno" },
    batch: { type: "string", default: "1" },
    preset: { type: "string", default: "seed" },
  },
}).values;
const preset = PRESETS[args.preset as keyof typeof PRESETS];
if (!preset) throw new Error(`unknown preset ${args.preset}`);
const engine = await Engine.create({ gpu: args.gpu as GpuProvider });
const model = Diffusion.create(engine, { ...preset.model, vocabSize: preset.vocab });
const count = Number(args.batch);
const length = preset.train.crop ?? 64;
const group = 10;

async function dispatches(steps: number): Promise<Map<string, number>> {
  const sampler = new Sampler(model, { steps, length, seed: 1, stepsPerSubmit: group });
  const timings = await engine.runtime.profile(async () => {
    await sampler.generate({ count });
  });
  const byKernel = new Map<string, number>();
  for (const t of timings) byKernel.set(t.name, (byKernel.get(t.name) ?? 0) + 1);
  return byKernel;
}

const one = await dispatches(group);
const two = await dispatches(2 * group);
const perStep = [...two].map(([name, n]) => [name, (n - (one.get(name) ?? 0)) / group] as const)
  .filter(([, n]) => n > 0)
  .sort((a, b) => b[1] - a[1]);
const total = perStep.reduce((s, [, n]) => s + n, 0);
console.log(
  `${args.preset} preset, batch ${count} × ${length}: ${total.toFixed(1)} dispatches per step (steady state)`,
);
for (const [name, n] of perStep) console.log(`${n.toFixed(1).padStart(6)}  ${name}`);
