/**
 * GPU benchmark of the seed preset's training step (batch 256 × 64, V = 8000, self-conditioning at
 * p = 0.5) and of 200-step sampling at batch 1, 8 and 64, for the device machine. Prints JSON lines
 * and a per-kernel time table of one step from timestamp queries. Run beside the PyTorch peer:
 *
 *   deno run -A bench/gpu_train_step.ts [--steps 20] [--batch 256] [--preset seed|tiny] [--profile]
 *     [--sample-batches 1,8,64] [--sample-steps 200] [--steps-per-submit 10] [--sample-profile]
 *     [--gpu auto|deno|dawn] [--precision f32|mixed] [--peers]
 *     [--tc f16,unsplit,direct,wide|tall,medium|large8,s2u,biasfirst,strips,f32attention,f32below=N,group=N]
 *     [--pass-dispatches N]
 *
 * `--peers` then runs the PyTorch peers in the same call (bench/seed_torch.py: eager fp32 and TF32;
 * bench/strong_torch.py: bf16 autocast training, CUDA-graph sampling) and prints ours beside theirs with
 * the ratios.
 *
 * `--tc` sets the plan of the tensor-core products (see `TensorCorePolicy` in src/tensor/ops/_matmul_plan.ts):
 * `f16` copies the operands of large-tile products to f16 first, `unsplit` gives weight gradients 64×64
 * tiles instead of large tiles split over K, `direct` loads fragments straight from the f16 copies, `wide`
 * or `tall` puts large grids on the 128×256 or the 256×128 tile, `medium` puts grids too few for large
 * tiles on 128×64 tiles where those fill the card (batch-64 sampling's products), `large8` puts them on
 * 128×128 tiles of 8 subgroups with two stages where those nearly fill it, `s2u` gives large-grid
 * tiles two stages with the K loop unrolled, `biasfirst` starts accumulators from the bias (bias-only
 * epilogues then store whole tiles from the fragments), `strips` stages epilogues a row of fragments at a
 * time, `f32below=8192` leaves products whose M and K are both under 8192 (all of sampling's) to the f32
 * kernels with f16-rounded operands, `f32attention` runs attention on its f32 kernels instead of tensor
 * cores, `group=8` launches large grids' tiles in groups of 8 tile rows.
 *
 * `train_step_timeline` takes one synced step apart: `host_ms` (recorded and submitted), `gpu_done_ms` (the
 * queue reports it done), `metrics_ms` (read back) and `gpu_span_ms`, the GPU's timestamps from before the
 * step's first submission to after its last: near the sum of the kernels when the GPU works throughout.
 *
 * `--pass-dispatches N` begins a new compute pass after every N dispatches (default: one pass per
 * submission).
 *
 * `--preset tiny` times the step of the default run instead (its model, batch and crop; random batches) and
 * adds `host_ms`, the time spent recording each step, for the pipelined loop.
 *
 * `host_ms` of sampling is when the sampling loop submitted its last group of steps. With `--steps-per-submit` equal to
 * the steps, the GPU starts only once the host has recorded every step, so `ms - host_ms` is about the GPU's
 * time alone (plus the final `finish()` and submit).
 */
// deno-lint-ignore-file no-console
import { Diffusion } from "../src/diffusion/diffusion.ts";
import { DEFAULT_TRAIN, PRESETS } from "../src/diffusion/config.ts";
import { Sampler } from "../src/diffusion/sampler.ts";
import { Engine } from "../src/tensor/engine.ts";
import { Trainer } from "../src/train/trainer.ts";
import { type Comparison, peerMs, printComparison, runPeer } from "./_peers.ts";
import { randomBatch } from "./_random.ts";
import type { Precision } from "../src/tensor/engine.ts";
import { applyTensorCoreFlag, benchArgs } from "./_args.ts";

const args = benchArgs("auto", {
  steps: { type: "string", default: "20" },
  batch: { type: "string", default: "256" },
  vocab: { type: "string", default: "8000" },
  layers: { type: "string", default: "8" },
  preset: { type: "string", default: "seed" },
  "in-flight": { type: "string", default: "8" },
  profile: { type: "boolean", default: false },
  sample: { type: "boolean", default: false },
  "sample-steps": { type: "string", default: "200" },
  "sample-batches": { type: "string", default: "1,8,64" },
  "steps-per-submit": { type: "string", default: "10" },
  "sample-profile": { type: "boolean", default: false },
  precision: { type: "string" },
  peers: { type: "boolean", default: false },
  tc: { type: "string" },
  "pass-dispatches": { type: "string" },
});
const tensorCores = applyTensorCoreFlag(args.tc);
const tiny = args.preset === "tiny";
if (!tiny && args.preset !== "seed") throw new Error(`--preset: expected seed or tiny, got ${args.preset}`);
const preset = PRESETS[tiny ? "tiny" : "seed"];
const B = tiny ? preset.train.batch! : Number(args.batch);
const L = tiny ? preset.train.crop! : 64;
const V = tiny ? preset.vocab : Number(args.vocab), steps = Number(args.steps);
const engine = await Engine.create({
  gpu: args.gpu,
  precision: args.precision as Precision | undefined,
});
if (args["pass-dispatches"]) engine.runtime.dispatchesPerPass = Number(args["pass-dispatches"]);
console.log(
  JSON.stringify({
    what: "adapter",
    description: engine.runtime.gpu.description,
    provider: engine.runtime.gpu.provider,
    backend: engine.runtime.gpu.backend,
    precision: engine.precision,
    tensor_cores: engine.runtime.gpu.features.subgroupMatrix ? tensorCores : null,
    dispatches_per_pass: Number.isFinite(engine.runtime.dispatchesPerPass)
      ? engine.runtime.dispatchesPerPass
      : "all",
  }),
);
const ours: Comparison[] = [];
const model = Diffusion.create(
  engine,
  tiny ? { ...preset.model, vocabSize: V } : { vocabSize: V, layers: Number(args.layers) },
  { seed: 0 },
);
const config = { ...DEFAULT_TRAIN, ...(tiny ? preset.train : {}), batch: B, crop: L, warmup: 10 };
const trainer = new Trainer(model, config, { seed: 0 });

const batches = [randomBatch(B, L, V, 1), randomBatch(B, L, V, 2), randomBatch(B, L, V, 3)];
const { embeddingDim: E, modelDim: D, layers: NL } = model.config;
const N = B * L;
const forwardFlops = N *
  (2 * 3 * E * D + NL * (2 * D * 3 * D + 4 * L * D + 2 * D * D + 16 * D * D) + 2 * D * E + 2 * D * V);
// Backward ≈ 2× forward; the self-conditioning pass (half the steps) adds a forward plus interpolation.
const stepFlops = 3 * forwardFlops + 0.5 * (forwardFlops + N * 2 * V * E);

for (let i = 0; i < 3; i++) await (await trainer.trainStep([batches[i % 3]!])).metrics;
await engine.runtime.sync();
const times: number[] = [];
let last = 0;
for (let i = 0; i < steps; i++) {
  const start = performance.now();
  const { metrics } = await trainer.trainStep([batches[i % 3]!]);
  last = (await metrics).loss;
  times.push(performance.now() - start);
}
times.sort((a, b) => a - b);
const ms = times[Math.floor(times.length / 2)]!;
/**
 * GPU timestamps written by empty passes submitted before and after some work: the time the queue took
 * from its start to its end, kernels and any idle gaps between submissions together.
 */
function gpuSpan(device: GPUDevice): { end(): Promise<number> } {
  const querySet = device.createQuerySet({ type: "timestamp", count: 2 });
  const resolved = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const readable = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const stamp = (timestampWrites: GPUComputePassTimestampWrites, last: boolean) => {
    const encoder = device.createCommandEncoder();
    encoder.beginComputePass({ timestampWrites }).end();
    if (last) {
      encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, readable, 0, 16);
    }
    device.queue.submit([encoder.finish()]);
  };
  stamp({ querySet, beginningOfPassWriteIndex: 0 }, false);
  return {
    async end() {
      stamp({ querySet, endOfPassWriteIndex: 1 }, true);
      await readable.mapAsync(GPUMapMode.READ);
      const [begin, end] = new BigInt64Array(readable.getMappedRange());
      const ms = Number(end! - begin!) / 1e6;
      for (const b of [readable, resolved]) b.destroy();
      querySet.destroy();
      return ms;
    },
  };
}

// One synced step taken apart: recording and submitting (host), the queue reporting the step done
// (GPU), and the metrics read back; with timestamps, also the GPU's span from the step's start to end.
{
  await engine.runtime.sync();
  const timestamps = engine.runtime.gpu.features.timestamps;
  const span = timestamps ? gpuSpan(engine.runtime.device) : null;
  const start = performance.now();
  const { metrics } = await trainer.trainStep([batches[0]!]);
  const host = performance.now() - start;
  // The closing timestamp goes in right behind the step's last submission (`flush` and `end` submit
  // before they first await), so the span holds no host time spent after the step.
  const flushed = engine.runtime.flush();
  const spanMs = span?.end() ?? Promise.resolve(null);
  await engine.runtime.device.queue.onSubmittedWorkDone();
  const done = performance.now() - start;
  await metrics;
  const read = performance.now() - start;
  await flushed;
  const gpuMs = await spanMs;
  console.log(JSON.stringify({
    what: "train_step_timeline",
    gpu_span_ms: gpuMs === null ? null : Number(gpuMs.toFixed(2)),
    host_ms: Number(host.toFixed(2)),
    gpu_done_ms: Number(done.toFixed(2)),
    metrics_ms: Number(read.toFixed(2)),
  }));
}
// Pipelined rate: record the next steps while earlier ones run, waiting only for the metrics of the step
// `--in-flight` steps back (as `cli.ts train` does).
const inFlight: Promise<unknown>[] = [];
let hostMs = 0;
const pipeStart = performance.now();
for (let i = 0; i < steps; i++) {
  const recordStart = performance.now();
  const { metrics } = await trainer.trainStep([batches[i % 3]!]);
  hostMs += performance.now() - recordStart;
  inFlight.push(metrics);
  if (inFlight.length > Number(args["in-flight"])) await inFlight.shift();
}
await Promise.all(inFlight);
const pipelinedMs = (performance.now() - pipeStart) / steps;
console.log(JSON.stringify({
  what: "train_step",
  batch: B,
  seq: L,
  vocab: V,
  params: model.store.count,
  ms: Number(ms.toFixed(2)),
  ms_min: Number(times[0]!.toFixed(2)),
  ms_max: Number(times.at(-1)!.toFixed(2)),
  pipelined_ms: Number(pipelinedMs.toFixed(2)),
  host_ms: Number((hostMs / steps).toFixed(2)),
  tokens_per_s: Math.round(N / pipelinedMs * 1e3),
  tflops: Number((stepFlops / (Math.min(ms, pipelinedMs) / 1e3) / 1e12).toFixed(2)),
  loss: Number(last.toFixed(4)),
}));
ours.push({ work: `train step, batch ${B}×${L}`, ours: Math.min(ms, pipelinedMs), peers: {} });

/** Prints GPU time per kernel (summed over dispatches) from timestamp queries. */
function kernelTable(timings: { name: string; ns: number }[], title: string): void {
  const byKernel = new Map<string, { ns: number; count: number }>();
  for (const t of timings) {
    const row = byKernel.get(t.name) ?? { ns: 0, count: 0 };
    row.ns += t.ns;
    row.count++;
    byKernel.set(t.name, row);
  }
  const total = timings.reduce((a, t) => a + t.ns, 0);
  console.log(`${title}: ${(total / 1e6).toFixed(2)} ms in ${timings.length} dispatches`);
  console.log("| kernel | dispatches | ms | share |");
  console.log("|---|---:|---:|---:|");
  for (const [name, row] of [...byKernel].sort((a, b) => b[1].ns - a[1].ns)) {
    console.log(
      `| ${name} | ${row.count} | ${(row.ns / 1e6).toFixed(3)} | ${(100 * row.ns / total).toFixed(1)}% |`,
    );
  }
}

if (args.profile && engine.runtime.gpu.features.timestamps) {
  const timings = await engine.runtime.profile(async () => {
    await (await trainer.trainStep([batches[0]!])).metrics;
  });
  kernelTable(timings, "per-kernel GPU time of one step (timestamp queries, each dispatch its own pass)");
}

if (args["sample-profile"] && engine.runtime.gpu.features.timestamps) {
  for (const count of [1, 8, 64]) {
    const sampler = new Sampler(model, { steps: 1, length: L, seed: 1 });
    await sampler.generate({ count });
    const timings = await engine.runtime.profile(async () => {
      await sampler.generate({ count });
    });
    kernelTable(timings, `sampling at batch ${count}: one step plus the final pass (timestamp queries)`);
  }
}

if (args.sample) {
  // Host time: when the loop recorded and submitted its last group of steps (the GPU may still run).
  const runtime = engine.runtime;
  const flush = runtime.flush.bind(runtime);
  let lastSubmit = 0;
  runtime.flush = (what?: string) => {
    if (what === "sampling") lastSubmit = performance.now();
    return flush(what);
  };
  for (const count of args["sample-batches"].split(",").map(Number)) {
    const sampler = new Sampler(model, {
      steps: Number(args["sample-steps"]),
      length: L,
      seed: 1,
      stepsPerSubmit: Number(args["steps-per-submit"]),
    });
    await sampler.generate({ count });
    const runs: number[] = [], host: number[] = [];
    for (let r = 0; r < 3; r++) {
      const start = performance.now();
      lastSubmit = Number.NaN; // stays NaN (printed as null) if no group was submitted inside the loop
      await sampler.generate({ count });
      runs.push(performance.now() - start);
      host.push(lastSubmit - start);
    }
    runs.sort((a, b) => a - b);
    host.sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        what: "sample_200_steps",
        batch: count,
        seq: L,
        steps: sampler.steps,
        steps_per_submit: sampler.stepsPerSubmit,
        ms: Number(runs[1]!.toFixed(1)),
        host_ms: Number(host[1]!.toFixed(1)),
      }),
    );
    ours.push({ work: `sample ${sampler.steps} steps, batch ${count}`, ours: runs[1]!, peers: {} });
  }
}

if (args.peers) {
  const records = [...await runPeer("seed_torch.py"), ...await runPeer("strong_torch.py")];
  for (const r of records) console.log(JSON.stringify({ what: "peer", ...r }));
  for (const row of ours) {
    const batch = Number(row.work.match(/batch (\d+)/)![1]);
    if (row.work.startsWith("train")) {
      row.peers["torch fp32"] = peerMs(records, { what: "train_step", precision: "highest" });
      row.peers["torch bf16 autocast"] = peerMs(records, {
        what: "train_step_bf16_autocast",
        compiled: false,
      });
      row.peers["torch bf16 compiled"] = peerMs(records, {
        what: "train_step_bf16_autocast",
        compiled: true,
      });
    } else {
      row.peers["torch fp32"] = peerMs(records, { what: "sample_200_steps", precision: "highest", batch });
      row.peers["torch CUDA graph TF32"] = peerMs(records, {
        what: "sample_200_steps_cudagraph",
        precision: "high",
        batch,
      });
    }
  }
  printComparison(
    `${engine.runtime.gpu.description} (${engine.runtime.gpu.provider}, ${engine.precision}); ratio = ours / theirs`,
    ours,
  );
}
