import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { learningRate } from "../../src/train/lr_schedule.ts";
import { assertClose } from "../_check.ts";

/** The seed's linear_decay_with_warmup(step, max_lr, warmup, hold=0, decay_steps, min_lr), restated. */
function seedSchedule(
  step: number,
  maxLr: number,
  warmup: number,
  decaySteps: number,
  minLr: number,
): number {
  if (step < warmup) return maxLr * (step / warmup);
  return Math.max(maxLr * (1 - (step - warmup) / decaySteps), minLr);
}

Deno.test("learningRate() warms up linearly from 0 to lr", () => {
  const options = { lr: 1e-4, warmup: 2000, decay: 800000 };
  strictEqual(learningRate(0, options), 0);
  assertClose([learningRate(500, options)], [2.5e-5], { atol: 0, rtol: 1e-15 });
  assertClose([learningRate(1999, options)], [1e-4 * 1999 / 2000], { atol: 0, rtol: 1e-15 });
  strictEqual(learningRate(2000, options), 1e-4);
});

Deno.test("learningRate() decays by lr/decay per step after warm-up and stops at minFactor·lr", () => {
  const options = { lr: 1e-3, warmup: 100, decay: 1000 };
  assertClose([learningRate(600, options)], [5e-4], { atol: 0, rtol: 1e-12 });
  // The floor 0.1·lr is reached at warmup + 0.9·decay = 1000 and held after.
  assertClose([learningRate(1000, options)], [1e-4], { atol: 0, rtol: 1e-12 });
  strictEqual(learningRate(1001, options), 1e-3 * 0.1);
  strictEqual(learningRate(1e9, options), 1e-3 * 0.1);
  assertClose([learningRate(1100, { ...options, minFactor: 0 })], [0], { atol: 1e-18, rtol: 0 });
  strictEqual(learningRate(1e9, { ...options, minFactor: 0.5 }), 5e-4);
});

Deno.test("learningRate() equals the seed's schedule at every step of a short run", () => {
  const got: number[] = [];
  const want: number[] = [];
  for (let step = 0; step <= 400; step++) {
    got.push(learningRate(step, { lr: 3e-4, warmup: 37, decay: 250, minFactor: 0.1 }));
    want.push(seedSchedule(step, 3e-4, 37, 250, 3e-4 * 0.1));
  }
  deepStrictEqual(got, want);
});

Deno.test("learningRate() without warm-up or decay", () => {
  strictEqual(learningRate(0, { lr: 2e-4, warmup: 0, decay: 10 }), 2e-4);
  strictEqual(learningRate(0, { lr: 2e-4, warmup: 0, decay: Infinity }), 2e-4);
  strictEqual(learningRate(1e12, { lr: 2e-4, warmup: 5, decay: Infinity }), 2e-4);
});

Deno.test("learningRate() rejects out-of-range options", () => {
  const ok = { lr: 1e-4, warmup: 10, decay: 100 };
  throws(() => learningRate(-1, ok), RangeError);
  throws(() => learningRate(NaN, ok), RangeError);
  throws(() => learningRate(0, { ...ok, lr: -1 }), RangeError);
  throws(() => learningRate(0, { ...ok, warmup: -1 }), RangeError);
  throws(() => learningRate(0, { ...ok, decay: 0 }), RangeError);
  throws(() => learningRate(0, { ...ok, minFactor: 1.5 }), RangeError);
});
