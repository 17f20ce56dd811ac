/**
 * Sampler benchmark: generation at batch 1, 8 and 64 with the seed preset's shapes (V = 8000, E = 64,
 * D = 512, 8 layers, 8 heads, L = 64, 200 steps, self-conditioning, the difflm update; random weights),
 * and the time of one reverse step.
 *
 * On a CPU adapter (lavapipe, llvmpipe, or any fallback adapter) the seed's shapes take minutes per
 * generation, so the bench runs a much smaller model (V = 400, E = 32, D = 64, 2 layers, 2 heads,
 * L = 16) for 10 steps instead, and says so in every bench name.
 *
 * Each batch size has two cases: the full generation, and a 1-step generation (set-up, one step, the
 * final forward and the read-back). Before the cases run, the per-step time is printed as the marginal
 * cost (T(steps) − T(1)) / (steps − 1), the median of a few rounds.
 *
 * Run: `deno bench -A bench/sampler_bench.ts`.
 */
// deno-lint-ignore-file no-console
import { Diffusion } from "../src/diffusion/diffusion.ts";
import type { ModelConfig } from "../src/diffusion/config.ts";
import { Sampler } from "../src/diffusion/sampler.ts";
import { Engine } from "../src/tensor/engine.ts";

const engine = await Engine.create();
const gpu = engine.runtime.gpu;
const info = gpu.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
const cpu = info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(gpu.description);

const shape: Partial<ModelConfig> = cpu
  ? { vocabSize: 400, embeddingDim: 32, modelDim: 64, layers: 2, heads: 2 }
  : { vocabSize: 8000, embeddingDim: 64, modelDim: 512, layers: 8, heads: 8 };
const L = cpu ? 16 : 64;
const STEPS = cpu ? 10 : 200;
const BATCHES = [1, 8, 64];
const model = Diffusion.create(engine, shape, { seed: 0 });
const c = model.config;
const tag = cpu ? ` (CPU adapter: small model D=${c.modelDim}, L=${L}, not the seed's shapes)` : "";

const sampler = (steps: number) => new Sampler(model, { steps, length: L, seed: 1 });
const full = sampler(STEPS);
const one = sampler(1);

async function time(s: Sampler, count: number): Promise<number> {
  const start = performance.now();
  await s.generate({ count });
  return performance.now() - start;
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(
  `sampler on ${gpu.description} (${gpu.backend}): V=${c.vocabSize} E=${c.embeddingDim} D=${c.modelDim} ` +
    `layers=${c.layers} heads=${c.heads} L=${L}, ${STEPS} steps, ${
      model.store.count.toLocaleString("en")
    } parameters`,
);
for (const count of BATCHES) {
  await time(full, count); // compiles every pipeline and fills the pool
  const rounds = cpu ? 1 : 3;
  const fulls: number[] = [], ones: number[] = [];
  for (let r = 0; r < rounds; r++) {
    fulls.push(await time(full, count));
    ones.push(await time(one, count));
  }
  const total = median(fulls), single = median(ones);
  const perStep = (total - single) / (STEPS - 1);
  console.log(
    `batch ${count}: ${STEPS} steps ${total.toFixed(1)} ms, 1 step ${single.toFixed(1)} ms, ` +
      `${perStep.toFixed(2)} ms per step (marginal), ${
        Math.round(count * L * STEPS / (total / 1e3))
      } token-steps/s`,
  );
}

for (const count of BATCHES) {
  Deno.bench({
    name: `generate ${STEPS} steps, batch ${count}${tag}`,
    group: `sampler batch ${count}`,
    n: cpu ? 2 : 5,
    warmup: 1,
    async fn() {
      await full.generate({ count });
    },
  });
  Deno.bench({
    name: `generate 1 step, batch ${count}${tag}`,
    group: `sampler batch ${count}`,
    n: cpu ? 2 : 5,
    warmup: 1,
    async fn() {
      await one.generate({ count });
    },
  });
}
