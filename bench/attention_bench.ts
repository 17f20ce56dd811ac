/**
 * Benchmarks of the fused attention kernels (kernels/attention.ts) at the model's head shape — 8 heads,
 * hd = 64, L = 64, all positions valid — and of the vocabulary softmax (kernels/softmax.ts, rows of 8000).
 * Batch 256 on a GPU; batch 8 on a CPU adapter (lavapipe/llvmpipe) so the run stays short.
 *
 * Correctness is checked by tests/kernels/attention_test.ts and softmax_test.ts; here every kernel
 * variant (`tiled`: the launcher's, forward 32 keys per tile and backward 16 keys per block;
 * `tiled-big`: the tiled kernels with 64 and 32 keys, more workgroup memory; `simple`) is also checked
 * once against the float64 reference on this adapter (B = 3, lengths 64, 37, 1, outputs poisoned). Before the `Deno.bench` cases run, each kernel is timed
 * with timestamp queries when the adapter has them (else wall clock around `sync`), and the achieved
 * throughput is printed:
 *   FLOPs forward  = 4·B·H·L²·hd   (q·kᵀ and P·v)
 *   FLOPs backward = 10·B·H·L²·hd  (s recomputed, dP = dout·vᵀ, dv, dk, dq)
 *   bytes: each kernel's compulsory global traffic (qkv, out, dout, dqkv read-modify-write, lse).
 *
 * Run: `deno bench -A bench/attention_bench.ts`.
 */
import {
  ATTENTION_TILED_ROWS,
  attentionBackwardTiledSpec,
  attentionForwardTiledSpec,
  ropeTable,
} from "../kernels/attention.ts";
import { randn } from "../tests/_check.ts";
import { attentionBackwardRef, attentionRef } from "../tests/ref/attention.ts";
import { Engine, grid1d } from "../src/tensor/engine.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import {
  attentionBackward,
  attentionForward,
  type AttentionOptions,
  softmaxInto,
} from "../src/tensor/ops/attention.ts";

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

const options: AttentionOptions = { heads: H };
type Variant = "tiled" | "tiled-big" | "simple";
const rope = engine.keep(
  engine.tensor(ropeTable({ seq: L, headDim: hd, rotaryDim: 32, theta: 10000 }), [L, hd / 4, 4]),
);

interface Io {
  qkv: Tensor;
  lengths: Tensor;
  out: Tensor;
  lse: Tensor;
}

/** The forward of one variant; `tiled-big` dispatches its kernel here as the launcher would. */
function forwardOf(variant: Variant, io: Io): void {
  if (variant !== "tiled-big") {
    attentionForward(io, { ...options, kernel: variant });
    return;
  }
  const b = io.qkv.shape[0]!, qblocks = Math.ceil(L / ATTENTION_TILED_ROWS);
  engine.runtime.dispatch(
    attentionForwardTiledSpec(hd, 64),
    { ...io, rope },
    { batch: b, seq: L, heads: H, qblocks },
    grid1d(b * H * qblocks),
  );
}

/** The backward of one variant, likewise. */
function backwardOf(variant: Variant, io: Io & { dout: Tensor; dqkv: Tensor; dsum: Tensor }): void {
  if (variant !== "tiled-big") {
    attentionBackward(io, { ...options, kernel: variant });
    return;
  }
  const b = io.qkv.shape[0]!;
  engine.runtime.dispatch(
    attentionBackwardTiledSpec(hd, 32),
    { ...io, rope },
    { batch: b, seq: L, heads: H },
    grid1d(b * H),
  );
}
const forward = (v: Variant = "tiled") => forwardOf(v, { qkv, lengths, out, lse });
const backward = (v: Variant = "tiled") => backwardOf(v, { qkv, lengths, out, lse, dout, dqkv, dsum });
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

/** Largest |got − want| / (max |want| + 1e-30) of each variant against the float64 reference. */
async function validate(variant: Variant): Promise<{ out: number; dqkv: number }> {
  const b = 3, lens = [64, 37, 1];
  const x = randn(b * L * 3 * D, 7, 0.5), g = randn(b * L * D, 8);
  const dims = { B: b, L, H, hd, rotaryDim: 32, theta: 10000 };
  return await engine.tidy(async () => {
    engine.poison = true;
    const io = {
      qkv: engine.tensor(x, [b, L, 3 * D]),
      lengths: engine.tensor(new Int32Array(lens), [b]),
      out: engine.empty([b, L, D]),
      lse: engine.empty([b, H, L]),
    };
    engine.poison = false;
    forwardOf(variant, io);
    const dq = engine.zeros([b, L, 3 * D]);
    backwardOf(variant, {
      ...io,
      dout: engine.tensor(g, [b, L, D]),
      dqkv: dq,
      dsum: engine.empty([b, H, L]),
    });
    const err = (got: Float32Array, want: Float64Array) => {
      let worst = 0, scale = 1e-30;
      for (let i = 0; i < want.length; i++) {
        scale = Math.max(scale, Math.abs(want[i]!));
        worst = Math.max(worst, Number.isNaN(got[i]!) ? Infinity : Math.abs(got[i]! - want[i]!));
      }
      return worst / scale;
    };
    return {
      out: err((await io.out.read()) as Float32Array, attentionRef(x, lens, dims)),
      dqkv: err((await dq.read()) as Float32Array, attentionBackwardRef(x, lens, g, dims)),
    };
  });
}

const work = B * H * L * L * hd;
const qkvBytes = B * L * 3 * D * 4;
const outBytes = B * L * D * 4;
console.log(
  `attention on ${gpu.description}: B=${B} H=${H} hd=${hd} L=${L}${
    gpu.features.timestamps ? " (GPU timestamps)" : ""
  }`,
);
const variants: Variant[] = ["tiled", "tiled-big", "simple"];
for (const kernel of variants) {
  const e = await validate(kernel);
  console.log(
    `${kernel}: max error vs float64 out ${e.out.toExponential(2)}, dqkv ${e.dqkv.toExponential(2)}`,
  );
}
// Warm-up (the GPU idles at a low clock), then interleaved rounds; every round printed.
for (let r = 0; r < (cpu ? 1 : 200); r++) {
  forward();
  backward();
}
await engine.runtime.sync();
for (let round = 0; round < 3; round++) {
  for (const kernel of variants) {
    report(
      `attention_forward (${kernel})`,
      await measure(() => forward(kernel)),
      4 * work,
      qkvBytes + outBytes + B * H * L * 4,
    );
    report(
      `attention_backward (${kernel})`,
      await measure(() => backward(kernel)),
      10 * work,
      3 * qkvBytes + 2 * outBytes + 2 * B * H * L * 4,
    );
  }
}
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
