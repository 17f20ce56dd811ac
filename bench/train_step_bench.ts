/**
 * One optimiser step of a small model (forward, backward, clipping and AdamW, self-conditioning at
 * p = 0.5): the `tiny` preset (V = 400, E = 32, D = 128, 2 layers, 4 heads, batch 32 × 24) on every
 * adapter, and the `small` preset (V = 2000, E = 64, D = 256, 4 layers, 4 heads, batch 64 × 48) on a real
 * GPU. Random ids, lengths and conditioning masks as in bench/seed_torch.py; random initial weights.
 *
 * Two cases per model: "synced" waits for each step's metrics before recording the next; "pipelined"
 * records step k+1 before waiting for step k's metrics, as `cli.ts train` does. The seed preset's step
 * is benchmarked by bench/gpu_train_step.ts on the device machine.
 *
 * Run: `deno bench -A bench/train_step_bench.ts`.
 */
import { Diffusion } from "../src/diffusion/diffusion.ts";
import { DEFAULT_TRAIN, PRESETS } from "../src/diffusion/config.ts";
import { Engine } from "../src/tensor/engine.ts";
import { type StepMetrics, Trainer } from "../src/train/trainer.ts";
import { randomBatch } from "./_random.ts";

const engine = await Engine.create();
const gpu = engine.runtime.gpu;
const info = gpu.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
const cpu = info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(gpu.description);

const presets = cpu ? (["tiny"] as const) : (["tiny", "small"] as const);
for (const preset of presets) {
  const { model: shape, train, vocab } = PRESETS[preset];
  const model = Diffusion.create(engine, { ...shape, vocabSize: vocab }, { seed: 0 });
  const config = { ...DEFAULT_TRAIN, ...train };
  const trainer = new Trainer(model, config, { seed: 0 });
  const { batch: B, crop: L } = config;
  const batches = [1, 2, 3].map((seed) => randomBatch(B, L, vocab, seed));
  let i = 0;
  const nextBatch = () => [batches[i++ % batches.length]!];
  const c = model.config;
  const label = `${preset} (V=${c.vocabSize} E=${c.embeddingDim} D=${c.modelDim} ${c.layers} layers, ` +
    `batch ${B}×${L})${cpu ? " on a CPU adapter" : ""}`;
  // Compile every pipeline (both self-conditioning paths) and fill the pool before timing.
  for (let k = 0; k < 3; k++) await (await trainer.trainStep(nextBatch())).metrics;
  const options = { group: preset, n: cpu ? 3 : 30, warmup: cpu ? 1 : 5 };
  Deno.bench({
    name: `train step, synced: ${label}`,
    ...options,
    async fn() {
      await (await trainer.trainStep(nextBatch())).metrics;
    },
  });
  let pending: Promise<StepMetrics> | null = null;
  Deno.bench({
    name: `train step, pipelined: ${label}`,
    ...options,
    async fn() {
      const { metrics } = await trainer.trainStep(nextBatch());
      if (pending) await pending;
      pending = metrics;
    },
  });
}
