/**
 * Benchmarks of the fused attention kernels (kernels/attention.ts) at the model's head shape — 8 heads,
 * hd = 64, L = 64, all positions valid — and of the vocabulary softmax (kernels/softmax.ts, rows of 8000).
 * Batch 256 on a GPU; batch 8 on a CPU adapter (lavapipe/llvmpipe) so the run stays short.
 *
 * Correctness is checked by tests/kernels/attention_test.ts and softmax_test.ts. Before the `Deno.bench`
 * cases run, each kernel is timed with timestamp queries when the adapter has them (else wall clock
 * around `sync`), and the achieved throughput is printed:
 *   FLOPs forward  = 4·B·H·L²·hd   (q·kᵀ and P·v)
 *   FLOPs backward = 10·B·H·L²·hd  (s recomputed, dP = dout·vᵀ, dv, dk, dq)
 *   bytes: each kernel's compulsory global traffic (qkv, out, dout, dqkv read-modify-write, lse).
 *
 * Run: `deno bench -A bench/attention_bench.ts`.
 */
import { randn } from "../tests/_check.ts";
import { Engine } from "../src/tensor/engine.ts";
import { attentionBackward, attentionForward, softmaxInto } from "../src/tensor/ops/attention.ts";

const engine = await Engine.create();
const gpu = engine.runtime.gpu;
const info = gpu.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
const cpu = info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(gpu.description);
const B = cpu ? 8 : 256;
const [H, hd, L] = [8, 64, 64];
const D = H * hd;
const V = 8000;
const reps = cpu ? 2 : 20;

const qkv = engine.tensor(randn(B * L * 3 * D, 1, 0.5), [B, L, 3 * D]);
const lengths = engine.tensor(new Int32Array(B).fill(L), [B]);
const out = engine.empty([B, L, D]);
const lse = engine.empty([B, H, L]);
const dout = engine.tensor(randn(B * L * D, 2), [B, L, D]);
const dqkv = engine.zeros([B, L, 3 * D]);
const dsum = engine.empty([B, H, L]);
const logits = engine.tensor(randn(B * L * V, 3, 2), [B * L, V]);
const probs = engine.empty([B * L, V]);

const options = { heads: H };
const forward = () => attentionForward({ qkv, lengths, out, lse }, options);
const backward = () => attentionBackward({ qkv, lengths, out, lse, dout, dqkv, dsum }, options);
const vocab = () => softmaxInto(probs, logits);

/** Mean seconds per call of `fn`: GPU timestamps when available, else wall clock around a sync. */
async function measure(fn: () => void): Promise<number> {
  fn();
  await engine.runtime.sync();
  if (gpu.features.timestamps) {
    const timings = await engine.runtime.profile(() => {
      for (let r = 0; r < reps; r++) fn();
    });
    return timings.reduce((s, t) => s + t.ns, 0) / timings.length / 1e9;
  }
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) fn();
  await engine.runtime.sync();
  return (performance.now() - t0) / reps / 1e3;
}

function report(name: string, seconds: number, flops: number, bytes: number): void {
  const parts = [`${(seconds * 1e3).toFixed(3)} ms`];
  const f = flops / seconds;
  if (flops > 0) {
    parts.push(f >= 1e12 ? `${(f / 1e12).toFixed(2)} TFLOP/s` : `${(f / 1e9).toFixed(2)} GFLOP/s`);
  }
  parts.push(`${(bytes / seconds / 1e9).toFixed(1)} GB/s`);
  console.log(`${name}: ${parts.join(", ")}`);
}

const work = B * H * L * L * hd;
const qkvBytes = B * L * 3 * D * 4;
const outBytes = B * L * D * 4;
console.log(
  `attention on ${gpu.description}: B=${B} H=${H} hd=${hd} L=${L}${
    gpu.features.timestamps ? " (GPU timestamps)" : ""
  }`,
);
report("attention_forward", await measure(forward), 4 * work, qkvBytes + outBytes + B * H * L * 4);
report(
  "attention_backward",
  await measure(backward),
  10 * work,
  3 * qkvBytes + 2 * outBytes + 2 * B * H * L * 4,
);
report(`softmax_forward [${B * L}, ${V}]`, await measure(vocab), 0, 2 * B * L * V * 4);

Deno.bench(
  { name: `attention_forward B=${B} H=${H} hd=${hd} L=${L}`, group: "attention", n: cpu ? 5 : 50 },
  async () => {
    forward();
    await engine.runtime.sync();
  },
);

Deno.bench(
  { name: `attention_backward B=${B} H=${H} hd=${hd} L=${L}`, group: "attention", n: cpu ? 5 : 50 },
  async () => {
    backward();
    await engine.runtime.sync();
  },
);

Deno.bench(
  { name: `softmax_forward rows=${B * L} cols=${V}`, group: "softmax", n: cpu ? 5 : 50 },
  async () => {
    vocab();
    await engine.runtime.sync();
  },
);
