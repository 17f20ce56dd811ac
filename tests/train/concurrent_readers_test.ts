/**
 * Readers beside a trainer (issue 19's stress test): a trainer commits a checkpoint after every step while
 * other processes sample and evaluate the same directory in a loop. No process fails, every read is of one
 * committed step (its weights and moments are what the trainer saved at that step), and every commit loads.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ignore } from "../_gpu.ts";
import { spawnDeno } from "../_child.ts";

const SCRIPT = new URL("./_stress_run.ts", import.meta.url).pathname;
const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const COMMITS = 60;

function deno(args: string[]): Deno.ChildProcess {
  return spawnDeno(args, "piped");
}

async function finished(child: Deno.ChildProcess, what: string): Promise<string> {
  const { code, stdout, stderr } = await child.output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `${what} failed: ${new TextDecoder().decode(stderr)}\n${text}`);
  return text;
}

Deno.test({
  name:
    `readers write: a trainer committing every step for ${COMMITS} steps beside processes that sample and evaluate`,
  ignore,
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "difflm-stress-" });
  const dir = join(root, "run");
  try {
    const trainer = deno(["run", "-A", SCRIPT, "train", dir, String(COMMITS)]);
    // Readers get read permission only: a write would fail them.
    const reader = deno(["run", `--allow-read=${root}`, SCRIPT, "read", dir]);
    // The command line's sample and eval, one after another, until the trainer is done.
    let cliRuns = 0;
    let trainerDone = false;
    const cliLoop = (async (): Promise<void> => {
      while (!trainerDone) {
        const exists = await Deno.stat(join(dir, "checkpoint.json")).then(() => true, () => false);
        if (!exists) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        const command = cliRuns % 2 === 0
          ? ["sample", "--ckpt", dir, "--n", "1", "--steps", "2"]
          : ["eval", "--ckpt", dir, "--n", "1", "--lines", "2", "--steps", "2"];
        const output = await finished(
          deno(["run", `--allow-read=${root}`, CLI, ...command]),
          `cli.ts ${command[0]}`,
        );
        // A barely trained model may sample empty text; eval ends with its report.
        if (command[0] === "eval") assert.match(output, /"step":\d+/);
        cliRuns++;
      }
    })().then(() => null, (e: unknown) => e);
    await finished(trainer, "the trainer");
    trainerDone = true;
    await Deno.writeTextFile(join(root, "done"), "");
    const reads = (await finished(reader, "the reader")).trim().split("\n").map((l) => JSON.parse(l));
    const cliFailure = await cliLoop;
    if (cliFailure) throw cliFailure;

    const saved = new Map(
      (await Deno.readTextFile(join(root, "saved.jsonl"))).trim().split("\n").map((l) => {
        const r = JSON.parse(l);
        return [r.step, r];
      }),
    );
    assert.equal(saved.size, COMMITS, "every commit was read back by the trainer");
    const steps = new Set<number>();
    for (const r of reads) {
      const expected = saved.get(r.step);
      assert.ok(expected, `a read of step ${r.step}, which was never committed`);
      if (r.params) {
        assert.equal(r.params, expected.params, `weights read at step ${r.step} are another step's`);
      }
      if (r.moments) {
        assert.equal(r.moments, expected.moments, `moments read at step ${r.step} are another step's`);
      }
      steps.add(r.step);
    }
    // The readers overlapped the training: they saw several commits, not just the last.
    assert.ok(steps.size >= 5, `the readers saw only steps ${[...steps]}`);
    assert.ok(cliRuns >= 1, "no cli.ts sample or eval ran beside the trainer");
    console.log(
      `${reads.length} reads of ${steps.size} distinct commits, ${cliRuns} cli.ts sample/eval runs`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
