/**
 * One trainer per run directory (src/train/run_lock.ts): a second trainer is refused while the first lives,
 * and a killed trainer's lock does not stay stuck.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RunLock } from "../../src/train/run_lock.ts";
import { CheckpointWriter } from "../../src/train/checkpoint.ts";

/** Starts a process holding the lock of `dir` and returns it once it holds it. */
async function lockHolder(
  dir: string,
): Promise<{ child: Deno.ChildProcess; pid: number; output: ReadableStreamDefaultReader<string> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      new URL("./_hold_lock.ts", import.meta.url).pathname,
      dir,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  const match = /^locked (\d+)/.exec(value ?? "");
  assert.ok(match, `the holder said ${JSON.stringify(value)}`);
  return { child, pid: Number(match[1]), output: reader };
}

Deno.test("one trainer per directory: a second lock is refused, naming the holder, until released", async () => {
  const dir = await Deno.makeTempDir({ prefix: "difflm-lock-" });
  try {
    const first = await RunLock.acquire(dir);
    await assert.rejects(() => RunLock.acquire(dir), (e: Error) => {
      assert.match(
        e.message,
        new RegExp(`^Cannot train in "${dir}": another process \\(pid ${Deno.pid}, started `),
      );
      assert.ok(e.message.includes(join(dir, "train.lock")), e.message);
      return true;
    });
    // The writer takes the same lock.
    await assert.rejects(() => CheckpointWriter.open(dir), /another process/);
    first.release();
    assert.equal(first.held, false);
    const second = await RunLock.acquire(dir);
    second.release();
    using writer = await CheckpointWriter.open(dir);
    assert.equal(writer.committed, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a crashed trainer leaves the lock stuck: a SIGKILLed holder's lock is free at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "difflm-lock-" });
  try {
    const { child, pid, output } = await lockHolder(dir);
    try {
      await assert.rejects(() => RunLock.acquire(dir), new RegExp(`another process \\(pid ${pid}, started `));
    } finally {
      child.kill("SIGKILL");
      await output.cancel();
      await child.status;
    }
    // The lock file stays behind, holding the dead process's pid; it is no obstacle.
    assert.match(await Deno.readTextFile(join(dir, "train.lock")), new RegExp(`"pid":${pid}`));
    using lock = await RunLock.acquire(dir);
    assert.ok(lock.held);
    assert.match(await Deno.readTextFile(join(dir, "train.lock")), new RegExp(`"pid":${Deno.pid}`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
