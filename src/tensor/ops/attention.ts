/**
 * The `attention` op: launchers and autograd node over kernels/attention.ts (fused RoPE, masked softmax
 * and ·V, forward and backward). Re-exports the softmax ops of ./softmax.ts.
 *
 * @module
 */
import {
  ATTENTION_BACKWARD_KEYS,
  ATTENTION_FORWARD_KEYS,
  ATTENTION_FORWARD_ROWS,
  ATTENTION_MAX_HEAD_DIM,
  ATTENTION_TILED_ROWS,
  attentionBackwardSpec,
  attentionBackwardTiledBytes,
  attentionBackwardTiledSpec,
  attentionForwardSpec,
  attentionForwardTiledBytes,
  attentionForwardTiledSpec,
  ropeTable,
} from "../../../kernels/attention.ts";
import {
  ATTENTION_TC_MAX_SEQ,
  attentionBackwardTensorCoreSpec,
  attentionForwardTensorCoreSpec,
  attentionTensorCoreBytes,
} from "../../../kernels/attention_tc.ts";
import { type Engine, grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import type { SplitProduct } from "./matmul.ts";
import { tensorCorePolicy } from "./_matmul_plan.ts";

export { softmax, softmaxInto, type SoftmaxIntoOptions } from "./softmax.ts";

/** Options of {@linkcode attention}, {@linkcode attentionForward} and {@linkcode attentionBackward}. */
export interface AttentionOptions {
  /** Number of heads H; D = 3D/3 must be a multiple of H, and hd = D/H a multiple of 4 up to 64. */
  heads: number;
  /**
   * Rotary dims per head (even); the effective value is min(rotaryDim, hd), as in the seed. 0 disables RoPE.
   * @default {32}
   */
  rotaryDim?: number;
  /**
   * RoPE base.
   * @default {10000}
   */
  theta?: number;
  /**
   * The kernels: `tensor-cores` (kernels/attention_tc.ts: the head's products on subgroup matrices, f16
   * operands and f32 sums, L ≤ 64; the default in `mixed` precision where the device has subgroup
   * matrices and B·H·L ≥ 65,536, as in the seed preset's training), `tiled` (register-tiled f32
   * products, forward with 32 keys per tile and backward with 16 keys per block; 19.1 and 19.4 KiB of
   * workgroup memory at hd = 64; the default otherwise) or `simple` (4 invocations per query row, one
   * score per invocation; under 14 KiB). `tiled` falls back to `simple` where the device allows less
   * workgroup memory. Tests and benchmarks pin one.
   */
  kernel?: "tensor-cores" | "tiled" | "simple";
}

interface Dims {
  B: number;
  L: number;
  D: number;
  H: number;
  hd: number;
  rot: number;
  theta: number;
}

function dims(
  op: string,
  qkv: Pick<Tensor, "shape" | "dtype">,
  lengths: Tensor,
  options: AttentionOptions,
): Dims {
  const { heads: H, rotaryDim = 32, theta = 10000 } = options;
  if (qkv.shape.length !== 3 || qkv.dtype !== "f32" || qkv.shape[2]! % 3 !== 0) {
    throw new TypeError(
      `Cannot run ${op}: qkv has shape [${qkv.shape}] (${qkv.dtype}), expected f32 [B,L,3D]`,
    );
  }
  const [B, L, D3] = qkv.shape as [number, number, number];
  const D = D3 / 3;
  if (!Number.isInteger(H) || H < 1 || D % H !== 0) {
    throw new TypeError(`Cannot run ${op}: heads is ${H}, expected a positive divisor of D=${D}`);
  }
  const hd = D / H;
  if (hd % 4 !== 0 || hd > ATTENTION_MAX_HEAD_DIM) {
    throw new TypeError(
      `Cannot run ${op}: head dim is ${hd}, expected a multiple of 4 up to ${ATTENTION_MAX_HEAD_DIM}`,
    );
  }
  if (lengths.shape.length !== 1 || lengths.shape[0] !== B || lengths.dtype === "f32") {
    throw new TypeError(
      `Cannot run ${op}: lengths has shape [${lengths.shape}] (${lengths.dtype}), expected i32 [${B}]`,
    );
  }
  if (!Number.isInteger(rotaryDim) || rotaryDim < 0 || rotaryDim % 2 !== 0) {
    throw new RangeError(`Cannot run ${op}: rotaryDim is ${rotaryDim}, expected an even number >= 0`);
  }
  if (!(theta > 0) || !Number.isFinite(theta)) {
    throw new RangeError(`Cannot run ${op}: theta is ${theta}, expected a positive number`);
  }
  return { B, L, D, H, hd, rot: Math.min(rotaryDim, hd), theta };
}

const tables = new WeakMap<Engine, Map<string, Tensor>>();

/** The RoPE table for these sizes, uploaded once per engine and kept outside every scope. */
function ropeFor(engine: Engine, d: Dims): Tensor {
  let cache = tables.get(engine);
  if (!cache) {
    cache = new Map();
    tables.set(engine, cache);
  }
  const key = `${d.L}|${d.hd}|${d.rot}|${d.theta}`;
  let t = cache.get(key);
  if (!t || t.disposed) {
    const data = ropeTable({ seq: d.L, headDim: d.hd, rotaryDim: d.rot, theta: d.theta });
    t = engine.keep(engine.tensor(data, [d.L, d.hd / 4, 4]));
    cache.set(key, t);
  }
  return t;
}

type Kernel = "tensor-cores" | "tiled" | "simple";

/**
 * The fewest query rows B·H·L for which `mixed` precision takes the tensor-core kernels by default. On an
 * H100 they took a training step's attention (B·H·L = 131,072) from 5.65 to 4.16 ms; sampling (at most
 * 32,768 at batch 64) gained nothing at batch 64, and a head's longer chain of dependent phases cost at
 * batch 1 (bench/RESULTS.md). The tiny preset's training (24,576) keeps the f32 kernels its quality was
 * measured with.
 */
const TENSOR_CORE_MIN_ROWS = 65536;

/**
 * The kernel a pass runs: the one asked for, else tensor cores in `mixed` precision where they exist, L
 * fits and there are enough query rows, else `tiled` where its workgroup memory fits the device (else
 * `simple`).
 */
function chooseKernel(
  op: string,
  engine: Engine,
  options: AttentionOptions,
  d: Dims,
  pass: "forward" | "backward",
): Kernel {
  const { gpu } = engine.runtime;
  const room = gpu.limits.maxComputeWorkgroupStorageSize;
  const tensorCores = gpu.features.subgroupMatrix && d.L <= ATTENTION_TC_MAX_SEQ &&
    attentionTensorCoreBytes(d.L, d.hd, pass) <= room;
  const asked = options.kernel;
  if (asked === "tensor-cores" && !tensorCores) {
    throw new TypeError(
      `Cannot run ${op} on tensor cores: ` +
        (gpu.features.subgroupMatrix
          ? `L = ${d.L} (at most ${ATTENTION_TC_MAX_SEQ}) or its workgroup memory does not fit`
          : `the device has no f16 subgroup matrices (Dawn on a GPU with tensor cores: --gpu dawn)`),
    );
  }
  const byDefault = tensorCores && engine.precision === "mixed" && d.B * d.H * d.L >= TENSOR_CORE_MIN_ROWS &&
    !tensorCorePolicy().f32Attention;
  if (asked === "tensor-cores" || (asked === undefined && byDefault)) {
    return "tensor-cores";
  }
  if (asked === "simple") return "simple";
  const bytes = pass === "forward"
    ? attentionForwardTiledBytes(d.hd, ATTENTION_FORWARD_KEYS)
    : attentionBackwardTiledBytes(d.hd, ATTENTION_BACKWARD_KEYS);
  return bytes <= room ? "tiled" : "simple";
}

function checkShape(op: string, name: string, t: Tensor, shape: number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((n, i) => n !== shape[i]) || t.dtype !== "f32") {
    throw new TypeError(`Cannot run ${op}: ${name} has shape [${t.shape}], expected f32 [${shape}]`);
  }
}

/**
 * Records the fused attention forward into preallocated tensors (for arenas and benchmarks; most code
 * calls {@linkcode attention}).
 *
 * @example Usage
 * ```ts
 * import { attentionForward, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const qkv = engine.zeros([2, 64, 3 * 512]);
 * const lengths = engine.tensor(new Int32Array([64, 40]), [2]);
 * const out = engine.empty([2, 64, 512]);
 * const lse = engine.empty([2, 8, 64]);
 * attentionForward({ qkv, lengths, out, lse }, { heads: 8 });
 * ```
 * @param io qkv [B,L,3D] f32, lengths [B] i32; writes out [B,L,D] and the row log-sum-exp lse [B,H,L]
 * (saved for {@linkcode attentionBackward}). With `parts` > 1, qkv holds that many split-K partial
 * products [parts, B·L, 3D] of the projection, summed as they are loaded.
 * @param options Heads, rotary dims, theta.
 * @throws {TypeError} If a shape does not match.
 */
export function attentionForward(
  io: { qkv: Tensor; lengths: Tensor; out: Tensor; lse: Tensor; parts?: number },
  options: AttentionOptions,
): void {
  const op = "attentionForward";
  const parts = io.parts ?? 1;
  const d = dims(op, parts > 1 ? summedShape(op, io.qkv, parts, io.lengths) : io.qkv, io.lengths, options);
  checkShape(op, "out", io.out, [d.B, d.L, d.D]);
  checkShape(op, "lse", io.lse, [d.B, d.H, d.L]);
  const engine = io.qkv.engine;
  const kernel = chooseKernel(op, engine, options, d, "forward");
  const summed = parts > 1;
  const rows = kernel === "tensor-cores"
    ? d.L
    : kernel === "tiled"
    ? ATTENTION_TILED_ROWS
    : ATTENTION_FORWARD_ROWS;
  const qblocks = Math.ceil(d.L / rows);
  engine.runtime.dispatch(
    kernel === "tensor-cores"
      ? attentionForwardTensorCoreSpec(d.L, d.hd, { parts: summed })
      : kernel === "tiled"
      ? attentionForwardTiledSpec(d.hd, ATTENTION_FORWARD_KEYS, summed)
      : attentionForwardSpec(d.hd, summed),
    { qkv: io.qkv, lengths: io.lengths, rope: ropeFor(engine, d), out: io.out, lse: io.lse },
    {
      batch: d.B,
      seq: d.L,
      heads: d.H,
      qblocks,
      ...(summed ? { parts, part_stride: (d.B * d.L * 3 * d.D) / 4 } : {}),
    },
    grid1d(d.B * d.H * qblocks),
  );
}

/** The shape [B, L, 3D] of the qkv whose `parts` partial products [parts, B·L, 3D] `qkv` holds. */
function summedShape(
  op: string,
  qkv: Tensor,
  parts: number,
  lengths: Tensor,
): Pick<Tensor, "shape" | "dtype"> {
  const B = lengths.shape[0] ?? 0;
  const [count, rows, cols] = qkv.shape;
  if (qkv.shape.length !== 3 || count !== parts || B < 1 || rows! % B !== 0) {
    throw new TypeError(
      `Cannot run ${op}: qkv has shape [${qkv.shape}], expected ${parts} partial products [${parts},B·L,3D] for B=${B}`,
    );
  }
  return { shape: [B, rows! / B, cols!], dtype: qkv.dtype };
}

/**
 * Records the fused attention backward: dqkv (+)= the gradient through RoPE, scores, masked softmax and ·V.
 *
 * @example Usage
 * ```ts
 * import { attentionBackward, attentionForward, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const [B, L, D, H] = [2, 64, 512, 8];
 * const qkv = engine.zeros([B, L, 3 * D]);
 * const lengths = engine.tensor(new Int32Array([64, 40]), [B]);
 * const out = engine.empty([B, L, D]);
 * const lse = engine.empty([B, H, L]);
 * attentionForward({ qkv, lengths, out, lse }, { heads: H });
 * const dout = engine.zeros([B, L, D]);
 * const dqkv = engine.zeros([B, L, 3 * D]);
 * const dsum = engine.empty([B, H, L]);
 * attentionBackward({ qkv, lengths, out, lse, dout, dqkv, dsum }, { heads: H });
 * ```
 * @param io qkv, lengths, and the forward's out and lse; dout [B,L,D]; dqkv [B,L,3D] is added into
 * (+=), or overwritten where `accumulate` is false; dsum [B,H,L] is scratch.
 * @param options The forward's heads, rotary dims and theta.
 * @throws {TypeError} If a shape does not match.
 */
export function attentionBackward(
  io: {
    qkv: Tensor;
    lengths: Tensor;
    out: Tensor;
    lse: Tensor;
    dout: Tensor;
    dqkv: Tensor;
    dsum: Tensor;
    accumulate?: boolean;
  },
  options: AttentionOptions,
): void {
  const op = "attentionBackward";
  const d = dims(op, io.qkv, io.lengths, options);
  checkShape(op, "out", io.out, [d.B, d.L, d.D]);
  checkShape(op, "dout", io.dout, [d.B, d.L, d.D]);
  checkShape(op, "lse", io.lse, [d.B, d.H, d.L]);
  checkShape(op, "dsum", io.dsum, [d.B, d.H, d.L]);
  checkShape(op, "dqkv", io.dqkv, [d.B, d.L, 3 * d.D]);
  const engine = io.qkv.engine;
  const kernel = chooseKernel(op, engine, options, d, "backward");
  const accumulate = io.accumulate ?? true;
  // Only the tensor-core kernel can write dqkv outright; the others add into zeros.
  if (!accumulate && kernel !== "tensor-cores") engine.runtime.clear(io.dqkv);
  engine.runtime.dispatch(
    kernel === "tensor-cores"
      ? attentionBackwardTensorCoreSpec(d.L, d.hd, { accumulate })
      : kernel === "tiled"
      ? attentionBackwardTiledSpec(d.hd, ATTENTION_BACKWARD_KEYS)
      : attentionBackwardSpec(d.hd),
    {
      qkv: io.qkv,
      lengths: io.lengths,
      rope: ropeFor(engine, d),
      out: io.out,
      dout: io.dout,
      lse: io.lse,
      dqkv: io.dqkv,
      dsum: io.dsum,
    },
    { batch: d.B, seq: d.L, heads: d.H },
    grid1d(d.B * d.H),
  );
}

/**
 * Multi-head self-attention of the seed's encoder layer, without the output projection: RoPE on q and k
 * (interleaved pairs on the first min(rotaryDim, hd) dims of each head), scores q·kᵀ/√hd, mask
 * (i < len) & (j < len) filled with −1e9 (so padding query rows attend uniformly to all L keys, as in
 * PyTorch), softmax, ·v, heads concatenated. Gradients flow into qkv; lengths get none.
 *
 * The first call for a given (L, hd, rotary dims, theta) uploads a RoPE table of L·hd floats that the
 * engine keeps for later calls.
 *
 * @example Usage
 * ```ts
 * import { attention, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const qkv = engine.zeros([2, 64, 3 * 512]);           // [q | k | v] from one fused linear
 * const lengths = engine.tensor(new Int32Array([64, 17]), [2]);
 * const y = attention(qkv, lengths, { heads: 8 });      // [2, 64, 512], before w_o
 * ```
 * @param qkv f32 [B, L, 3D], laid out [q | k | v] along the last dim; head h of each in columns
 * h·hd…(h+1)·hd−1. Without a tape, also its split-K partial products from `linearParts`, summed as
 * the kernel loads them (the same sums to the bit, without a reduction pass).
 * @param lengths i32 [B], valid positions per example (values above L count as L).
 * @param options Heads (required), rotaryDim (default 32), theta (default 10000).
 * @returns f32 [B, L, D].
 * @throws {TypeError} If a shape does not match or the head dim is unsupported.
 * @throws {RangeError} If rotaryDim is odd or negative, or theta is not positive.
 */
export function attention(
  qkv: Tensor | SplitProduct,
  lengths: Tensor,
  options: AttentionOptions,
): Tensor {
  if ("part" in qkv) return attentionOfParts(qkv, lengths, options);
  const d = dims("attention", qkv, lengths, options);
  const engine = qkv.engine;
  const out = engine.empty([d.B, d.L, d.D], "f32", "attention");
  const lse = engine.empty([d.B, d.H, d.L], "f32", "attention lse");
  attentionForward({ qkv, lengths, out, lse }, options);
  if (!(engine.recording && qkv.requiresGrad)) {
    lse.dispose();
    return out;
  }
  engine.record({
    name: "attention",
    inputs: [qkv],
    outputs: [out],
    backward: () => {
      const dsum = engine.empty([d.B, d.H, d.L], "f32", "attention dsum");
      const { grad, accumulate } = engine.gradTarget(qkv);
      attentionBackward(
        { qkv, lengths, out, lse, dout: engine.gradOf(out), dqkv: grad, dsum, accumulate },
        options,
      );
      dsum.dispose();
      lse.dispose(); // the tape runs each node once; recorded work keeps reading the buffer correctly
    },
  });
  return out;
}

/** Attention without a tape on qkv given as its split-K partial products (from `linearParts`). */
function attentionOfParts(qkv: SplitProduct, lengths: Tensor, options: AttentionOptions): Tensor {
  const engine = qkv.part.engine;
  if (qkv.bias || qkv.activation || engine.recording) {
    throw new TypeError(
      "Cannot run attention on partial products " +
        (qkv.bias || qkv.activation
          ? "with a bias or an activation"
          : "while a tape records (its backward needs qkv whole)"),
    );
  }
  const d = dims("attention", summedShape("attention", qkv.part, qkv.splits, lengths), lengths, options);
  const out = engine.empty([d.B, d.L, d.D], "f32", "attention");
  const lse = engine.empty([d.B, d.H, d.L], "f32", "attention lse");
  attentionForward({ qkv: qkv.part, parts: qkv.splits, lengths, out, lse }, options);
  lse.dispose();
  return out;
}
