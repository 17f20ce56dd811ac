/**
 * A program written only against the package's exports: train, be stopped by a signal, resume from the
 * directory, finish, and sample at the run's length. Small model overrides keep it quick on a CPU adapter.
 */
import assert from "node:assert/strict";
import { TrainingRun } from "@difflm/core";
import { ignore } from "../_gpu.ts";

Deno.test({
  name: "a program trains, is stopped by a signal, resumes from its directory and samples",
  ignore,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "difflm-program-" });
  const config = {
    preset: "tiny" as const,
    model: { embeddingDim: 16, modelDim: 32, layers: 1, heads: 2 },
    train: { batch: 4, crop: 12 },
    vocabSize: 80,
    steps: 30,
    samples: 0,
  };
  const stop = new AbortController();
  {
    using run = await TrainingRun.create(dir, config);
    const first = await run.train({
      signal: stop.signal,
      onProgress: (p) => p.type === "step" && p.step === 1 && stop.abort(),
    });
    assert.equal(first.stopped, "aborted");
    assert.ok(first.step < 30, `stopped at step ${first.step}`);
  }
  using run = await TrainingRun.open(dir);
  assert.ok(run.step >= 1);
  assert.deepEqual(await run.train(), { step: 30, epoch: 0, stopped: "finished", skipped: 0 });
  const { texts, ids } = await run.sampler({ steps: 3 }).generate({ count: 2 });
  assert.equal(texts.length, 2);
  assert.equal(ids[0]!.length, run.config.train.crop);
  await Deno.remove(dir, { recursive: true });
});
