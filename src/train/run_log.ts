/**
 * A run's metrics log, `log.jsonl`: one JSON record a line, appended as training goes, cut back to the
 * checkpoint's step when the run resumes.
 *
 * @module
 */
import { join } from "node:path";
import { writeFileAtomic } from "./files.ts";
import type { LossPoint } from "./loss_plot.ts";
import type { StepMetrics } from "./trainer.ts";

/**
 * Appends one metrics record to `log.jsonl`.
 *
 * @example Usage
 * ```ts
 * import { appendLog, readLog } from "./checkpoint.ts";
 * const dir = await Deno.makeTempDir();
 * await appendLog(dir, { step: 10, loss: 3.2 });
 * console.log(await readLog(dir)); // [ { step: 10, loss: 3.2 } ]
 * ```
 * @param dir The run directory.
 * @param record A JSON object with at least `step`.
 */
export async function appendLog(dir: string, record: Record<string, unknown>): Promise<void> {
  await Deno.writeTextFile(join(dir, "log.jsonl"), JSON.stringify(record) + "\n", {
    append: true,
    create: true,
  });
}

/**
 * Reads `log.jsonl` (skipping lines that do not parse, such as a line cut by a crash).
 *
 * @example Usage
 * ```ts
 * import { appendLog, readLog } from "./checkpoint.ts";
 * const dir = await Deno.makeTempDir();
 * for (const step of [10, 20]) await appendLog(dir, { step, loss: 60 / step });
 * console.log((await readLog(dir)).at(-1)?.loss); // 3
 * ```
 * @param dir The run directory.
 * @returns The logged points.
 */
export async function readLog(dir: string): Promise<(LossPoint & Record<string, unknown>)[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(join(dir, "log.jsonl"));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const out: (LossPoint & Record<string, unknown>)[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // a partial last line from an interrupted run
    }
  }
  return out;
}

/**
 * Keeps only the log records up to `step` (used on resume, so the log matches the checkpoint).
 *
 * @example Usage
 * ```ts
 * import { appendLog, readLog, truncateLog } from "./checkpoint.ts";
 * const dir = await Deno.makeTempDir();
 * for (const step of [10, 20, 30]) await appendLog(dir, { step, loss: 1 });
 * await truncateLog(dir, 20); // back to the checkpoint of step 20
 * console.log((await readLog(dir)).map((r) => r.step)); // [ 10, 20 ]
 * ```
 * @param dir The run directory.
 * @param step The checkpoint's step.
 */
export async function truncateLog(dir: string, step: number): Promise<void> {
  const kept = (await readLog(dir)).filter((r) => r.step <= step);
  await writeFileAtomic(join(dir, "log.jsonl"), kept.map((r) => JSON.stringify(r) + "\n").join(""));
}

/**
 * The `log.jsonl` record of one training step.
 *
 * @example Usage
 * ```ts
 * import { logRecord } from "./run_log.ts";
 * const metrics = {
 *   step: 10, loss: 3.2, mse: 0.5, ce: 2.7, accuracy: 0.4, gradNorm: 1.1, lr: 1e-3, tokens: 512,
 *   skipped: false, lossScale: 1,
 * };
 * console.log(logRecord(metrics, { epoch: 0, tokensPerSecond: 2048, tokens: 5120, time: 2.5 }));
 * ```
 * @param metrics The step's metrics.
 * @param progress The epoch it trained in (0-based), the rate, the tokens trained on so far and the
 *   training time in seconds.
 * @returns The record.
 */
export function logRecord(
  metrics: StepMetrics,
  progress: { epoch: number; tokensPerSecond: number; tokens: number; time: number },
): Record<string, unknown> {
  return {
    step: metrics.step,
    epoch: progress.epoch,
    loss: metrics.loss,
    mse: metrics.mse,
    ce: metrics.ce,
    accuracy: metrics.accuracy,
    lr: metrics.lr,
    grad_norm: metrics.gradNorm,
    skipped: metrics.skipped,
    tokens_per_s: progress.tokensPerSecond,
    tokens: progress.tokens,
    time_s: Number(progress.time.toFixed(3)),
  };
}
