/**
 * GPU time of the qkv projection and self-attention at sampling batch sizes (64 rows per sequence, D 512,
 * 8 heads), per kernel, with each forward kernel (tiled, simple). Timestamp queries, each dispatch its own
 * pass, median of `--reps`.
 *
 *   deno run -A bench/gpu_attention_small.ts [--batches 1,8,16,32] [--reps 30] [--gpu deno|dawn]
 */
// deno-lint-ignore-file no-console
import { parseArgs } from "node:util";
import type { GpuProvider } from "../src/gpu/device.ts";
import { attention, Engine, linear, type Tensor } from "../kernels.ts";
import { random } from "./_random.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    gpu: { type: "string", default: "deno" },
    batches: { type: "string", default: "1,8,16,32" },
    reps: { type: "string", default: "30" },
  },
}).values;
const engine = await Engine.create({ gpu: args.gpu as GpuProvider });
const runtime = engine.runtime;
if (!runtime.gpu.features.timestamps) throw new Error("this benchmark needs timestamp-query");
const [L, D, H] = [64, 512, 8];
const reps = Number(args.reps);

for (const B of args.batches.split(",").map(Number)) {
  const x = engine.keep(engine.tensor(random(B * L * D, 1), [B, L, D]));
  const w = engine.keep(engine.tensor(random(3 * D * D, 2).map((v) => v * 0.05), [3 * D, D]));
  const lengths = engine.keep(engine.tensor(new Int32Array(B).fill(L), [B], "i32"));
  const ways: [string, () => Tensor][] = (["tiled", "simple"] as const).map((kernel) => [
    kernel,
    () => attention(linear(x, w), lengths, { heads: H, kernel }),
  ]);
  for (const [name, run] of ways) {
    engine.noGrad(() => engine.tidy(() => void run())); // compile and warm up
    const timings = await runtime.profile(() => {
      for (let r = 0; r < reps; r++) engine.noGrad(() => engine.tidy(() => void run()));
    });
    const byKernel = new Map<string, number[]>();
    for (const t of timings) byKernel.set(t.name, [...(byKernel.get(t.name) ?? []), t.ns / 1000]);
    const parts = [...byKernel].map(([kernel, us]) => {
      us.sort((a, b) => a - b);
      return { kernel, per_call: us.length / reps, median_us: Number(us[us.length >> 1]!.toFixed(1)) };
    });
    const total = parts.reduce((s, p) => s + p.per_call * p.median_us, 0);
    console.log(JSON.stringify({ batch: B, way: name, total_us: Number(total.toFixed(1)), kernels: parts }));
  }
  for (const t of [x, w, lengths]) t.dispose();
}
