/**
 * The losses: fused cross-entropy (`crossEntropyInto`, no autograd, gradient over the logits; and the
 * autograd op `crossEntropy`), and masked MSE (`maskedMse`). Launchers over kernels/loss.ts; the sums
 * to a scalar are deterministic (fixed chunks, fixed tree order).
 *
 * @module
 */
import {
  LOSS_CROSS_ENTROPY_FORWARD,
  LOSS_CROSS_ENTROPY_INPLACE,
  LOSS_CROSS_ENTROPY_SAVED,
  LOSS_MSE_BACKWARD,
  LOSS_MSE_BACKWARD_WRITE,
  LOSS_MSE_FORWARD,
  LOSS_SCALE_ADD,
  LOSS_SCALE_WRITE,
  LOSS_SUM,
  LOSS_WORKGROUP,
} from "../../../kernels/loss.ts";
import { grid1d } from "../engine.ts";
import type { Tensor } from "../tensor.ts";

/** Elements per workgroup in the first stage of a two-stage sum. */
const CHUNK = 4096;
/** Up to this many elements, one workgroup sums everything in one dispatch. */
const ONE_PASS = 65536;

/** Options for {@linkcode crossEntropyInto}. */
export interface CrossEntropyOptions {
  /**
   * Factor on the gradient written over the logits (e.g. 1/accumulation steps).
   * @default {1}
   */
  gradScale?: number;
}

/** Per-row outputs of {@linkcode crossEntropyInto}. */
export interface CrossEntropyOutputs {
  /** f32 [N]: w_i · (logsumexp_i − logit_i[target_i]). */
  loss: Tensor;
  /** f32 [N]: w_i · [argmax_i = target_i] (ties → lowest index). */
  correct: Tensor;
}

function shape(t: Tensor): string {
  return `[${t.shape.join(",")}]`;
}

function checkRows(op: string, logits: Tensor, targets: Tensor, rowWeight: Tensor): [number, number] {
  if (logits.shape.length < 2 || logits.dtype !== "f32") {
    throw new TypeError(
      `Cannot run ${op}: logits has shape ${shape(logits)} (${logits.dtype}), expected f32 [..,V]`,
    );
  }
  const cols = logits.shape.at(-1)!;
  const rows = logits.size / Math.max(cols, 1);
  if (targets.size !== rows || (targets.dtype !== "i32" && targets.dtype !== "u32")) {
    throw new TypeError(
      `Cannot run ${op}: targets has shape ${
        shape(targets)
      } (${targets.dtype}), expected i32 with ${rows} elements`,
    );
  }
  if (rowWeight.size !== rows || rowWeight.dtype !== "f32") {
    throw new TypeError(
      `Cannot run ${op}: rowWeight has shape ${
        shape(rowWeight)
      } (${rowWeight.dtype}), expected f32 with ${rows} elements`,
    );
  }
  return [rows, cols];
}

/**
 * Deterministic sum of all elements of `x` into `out[0]` (no autograd): one workgroup up to 65536
 * elements, else chunks of 4096 summed per workgroup and then the partials.
 */
function sumInto(out: Tensor, x: Tensor): void {
  const engine = x.engine;
  const n = x.size;
  if (n <= ONE_PASS) {
    engine.runtime.dispatch(LOSS_SUM, { inp: x, out }, { n, chunk: Math.max(n, 1) }, [1]);
    return;
  }
  const chunk = Math.max(CHUNK, Math.ceil(n / 1024));
  const groups = Math.ceil(n / chunk);
  const partial = engine.empty([groups], "f32", "sum partials");
  engine.runtime.dispatch(LOSS_SUM, { inp: x, out: partial }, { n, chunk }, grid1d(groups));
  engine.runtime.dispatch(LOSS_SUM, { inp: partial, out }, { n: groups, chunk: groups }, [1]);
  partial.dispose();
}

/**
 * Fused softmax cross-entropy with its gradient, no autograd (llm.c style, for the chunked lm_head
 * loop): writes per-row `loss` and `correct`, and OVERWRITES `logits` with
 * `w_i·gradScale·(softmax(logits_i) − onehot(target_i))`. Rows with w_i = 0, or a target outside
 * [0, V) (PyTorch's ignore_index), get loss 0, correct 0 and a zero gradient. One workgroup per row.
 *
 * @example Usage
 * ```ts
 * import { crossEntropyInto, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const logits = engine.tensor(new Float32Array([1, 2, 3, 0, 0, 5]), [2, 3]);
 * const targets = engine.tensor(new Int32Array([2, 1]), [2]);
 * const w = engine.tensor(new Float32Array([0.5, 0.5]), [2]); // 1 / number of counted rows
 * const out = { loss: engine.empty([2]), correct: engine.empty([2]) };
 * crossEntropyInto(logits, targets, w, out);
 * console.log(await out.loss.read(), await logits.read()); // logits now hold dloss/dlogits
 * ```
 * @param logits f32 [N, V] (or [.., V]); overwritten with the gradient.
 * @param targets i32 [N]: class per row.
 * @param rowWeight f32 [N]: w_i (the host passes diff_mask_i / n).
 * @param out `loss` and `correct`, f32 [N] each, written (not accumulated).
 * @param options `gradScale` (default 1) multiplies the gradient only.
 * @throws {TypeError} If the shapes or dtypes disagree.
 */
export function crossEntropyInto(
  logits: Tensor,
  targets: Tensor,
  rowWeight: Tensor,
  out: CrossEntropyOutputs,
  options: CrossEntropyOptions = {},
): void {
  const [rows, cols] = checkRows("crossEntropyInto", logits, targets, rowWeight);
  for (const name of ["loss", "correct"] as const) {
    if (out[name].size !== rows || out[name].dtype !== "f32") {
      throw new TypeError(
        `Cannot run crossEntropyInto: out.${name} has shape ${
          shape(out[name])
        }, expected f32 with ${rows} elements`,
      );
    }
  }
  if (rows === 0 || cols === 0) return;
  logits.engine.runtime.dispatch(
    LOSS_CROSS_ENTROPY_INPLACE,
    { targets, row_weight: rowWeight, logits, loss: out.loss, correct: out.correct },
    { rows, cols, grad_scale: options.gradScale ?? 1 },
    grid1d(rows),
  );
}

/**
 * Softmax cross-entropy with per-row weights, and the weighted token accuracy, as autograd scalars:
 * `loss` = Σ_i w_i·CE_i (with a gradient into `logits`) and `accuracy` = Σ_i w_i·[argmax_i = target_i]
 * (no gradient). The gradient is computed in the same pass as the loss and scaled in backward by the
 * upstream gradient read on the GPU.
 *
 * @example Usage
 * ```ts
 * import { crossEntropyWithAccuracy, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const logits = engine.tensor(new Float32Array([2, 0, 0, 3]), [2, 2]);
 * const targets = engine.tensor(new Int32Array([0, 0]), [2]);
 * const weights = engine.tensor(new Float32Array([0.5, 0.5]), [2]);
 * const { loss, accuracy } = crossEntropyWithAccuracy(logits, targets, weights);
 * console.log(await accuracy.read()); // [0.5]
 * ```
 * @param logits f32 [N, V].
 * @param targets i32 [N].
 * @param rowWeight f32 [N].
 * @returns Two f32 [1] tensors.
 */
export function crossEntropyWithAccuracy(
  logits: Tensor,
  targets: Tensor,
  rowWeight: Tensor,
): { loss: Tensor; accuracy: Tensor } {
  const engine = logits.engine;
  const [rows, cols] = checkRows("crossEntropy", logits, targets, rowWeight);
  const total = engine.empty([1], "f32", "crossEntropy");
  const accuracy = engine.empty([1], "f32", "accuracy");
  if (rows === 0 || cols === 0) {
    engine.fill(total, 0);
    engine.fill(accuracy, 0);
    return { loss: total, accuracy };
  }
  const wantGrad = engine.recording && logits.requiresGrad;
  const loss = engine.empty([rows], "f32", "crossEntropy rows");
  const correct = engine.empty([rows], "f32", "crossEntropy correct");
  const grid = grid1d(rows);
  const uniforms = { rows, cols, grad_scale: 1 };
  let saved: Tensor | null = null;
  if (wantGrad) {
    saved = engine.empty(logits.shape, "f32", "crossEntropy saved gradient");
    engine.runtime.dispatch(
      LOSS_CROSS_ENTROPY_SAVED,
      { logits, targets, row_weight: rowWeight, dlogits: saved, loss, correct },
      uniforms,
      grid,
    );
  } else {
    engine.runtime.dispatch(
      LOSS_CROSS_ENTROPY_FORWARD,
      { logits, targets, row_weight: rowWeight, loss, correct },
      uniforms,
      grid,
    );
  }
  sumInto(total, loss);
  sumInto(accuracy, correct);
  loss.dispose();
  correct.dispose();
  engine.record({
    name: "crossEntropy",
    inputs: [logits],
    outputs: [total],
    backward: () => {
      if (!logits.requiresGrad || !saved || saved.disposed) return;
      const n = logits.size;
      // Every element is written: a gradient not written before needs no zeroing.
      const { grad, accumulate } = engine.gradTarget(logits);
      engine.runtime.dispatch(
        accumulate ? LOSS_SCALE_ADD : LOSS_SCALE_WRITE,
        { saved, dout: engine.gradOf(total), dinp: grad },
        { n },
        grid1d(Math.ceil(n / LOSS_WORKGROUP)),
      );
      saved.dispose();
    },
  });
  return { loss: total, accuracy };
}

/**
 * Softmax cross-entropy with autograd: the scalar [1] Σ_i w_i·(logsumexp_i − logit_i[target_i]).
 * The forward computes the gradient once and saves it (f32 [N, V]); backward adds
 * `dloss[0] · saved` into the logits' gradient, reading the upstream scalar on the GPU. Rows with
 * w_i = 0 or a target outside [0, V) are ignored.
 *
 * @example Usage
 * ```ts
 * import { crossEntropy, Engine } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const logits = engine.tensor(new Float32Array([1, 2, 3, 0, 0, 5]), [2, 3]);
 * logits.requiresGrad = true;
 * engine.startTape();
 * const loss = crossEntropy(logits, engine.tensor(new Int32Array([2, 1]), [2]), engine.tensor(new Float32Array([0.5, 0.5]), [2]));
 * engine.backward(loss);
 * console.log(await loss.read(), await logits.grad!.read());
 * ```
 * @param logits f32 [N, V] (or [.., V]); not modified.
 * @param targets i32 [N].
 * @param rowWeight f32 [N]: w_i.
 * @returns f32 [1]: the weighted loss sum.
 * @throws {TypeError} If the shapes or dtypes disagree.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, rowWeight: Tensor): Tensor {
  const { loss, accuracy } = crossEntropyWithAccuracy(logits, targets, rowWeight);
  accuracy.dispose();
  return loss;
}

/**
 * Masked mean-squared error: the scalar [1] Σ_i w_i · mean_e (est_ie − target_ie)², over rows i of the
 * last dimension E. Autograd reaches `est` only (`target` is treated as detached, as in the seed).
 * Rows with w_i = 0 contribute exactly 0 (even where est is not finite).
 *
 * @example Usage
 * ```ts
 * import { Engine, maskedMse } from "@difflm/core/kernels";
 * const engine = await Engine.create();
 * const est = engine.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const target = engine.zeros([2, 2]);
 * const w = engine.tensor(new Float32Array([1, 0]), [2]);
 * console.log(await maskedMse(est, target, w).read()); // [2.5]
 * ```
 * @param est f32 [N, E] or [B, L, E] (any leading shape).
 * @param target f32, the shape of `est`.
 * @param rowWeight f32 with N = est.size / E elements: w_i.
 * @returns f32 [1].
 * @throws {TypeError} If the shapes or dtypes disagree.
 */
export function maskedMse(est: Tensor, target: Tensor, rowWeight: Tensor): Tensor {
  const engine = est.engine;
  if (est.shape.length < 1 || est.dtype !== "f32") {
    throw new TypeError(
      `Cannot run maskedMse: est has shape ${shape(est)} (${est.dtype}), expected f32 [..,E]`,
    );
  }
  if (target.dtype !== "f32" || target.shape.join(",") !== est.shape.join(",")) {
    throw new TypeError(
      `Cannot run maskedMse: target has shape ${shape(target)} (${target.dtype}), expected f32 ${shape(est)}`,
    );
  }
  const cols = est.shape.at(-1)!;
  const rows = cols === 0 ? 0 : est.size / cols;
  if (rowWeight.dtype !== "f32" || rowWeight.size !== rows) {
    throw new TypeError(
      `Cannot run maskedMse: rowWeight has shape ${
        shape(rowWeight)
      } (${rowWeight.dtype}), expected f32 with ${rows} elements`,
    );
  }
  const out = engine.empty([1], "f32", "maskedMse");
  const n = est.size;
  if (n === 0) {
    engine.fill(out, 0);
    return out;
  }
  const groups = Math.ceil(n / CHUNK);
  const partial = groups === 1 ? out : engine.empty([groups], "f32", "maskedMse partials");
  engine.runtime.dispatch(
    LOSS_MSE_FORWARD,
    { est, tgt: target, row_weight: rowWeight, partial },
    { n, cols, chunk: CHUNK },
    grid1d(groups),
  );
  if (partial !== out) {
    sumInto(out, partial);
    partial.dispose();
  }
  engine.record({
    name: "maskedMse",
    inputs: [est],
    outputs: [out],
    backward: () => {
      if (!est.requiresGrad) return;
      const { grad, accumulate } = engine.gradTarget(est);
      engine.runtime.dispatch(
        accumulate ? LOSS_MSE_BACKWARD : LOSS_MSE_BACKWARD_WRITE,
        { est, tgt: target, row_weight: rowWeight, dout: engine.gradOf(out), dest: grad },
        { n, cols },
        grid1d(Math.ceil(n / LOSS_WORKGROUP)),
      );
    },
  });
  return out;
}

/**
 * The deterministic sum behind the losses, exposed for its tests (private: not re-exported by mod.ts).
 *
 * @example Usage
 * ```ts
 * import { _sumInto } from "./loss.ts";
 * ```
 * @param out f32 [1]: receives Σ x.
 * @param x f32, any shape.
 */
export function _sumInto(out: Tensor, x: Tensor): void {
  sumInto(out, x);
}
