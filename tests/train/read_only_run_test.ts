/**
 * Issue 19 item 7: `sample` and `eval` on a run whose trainer was killed mid-training, with read permission
 * only and the optimiser file deleted: they read the committed checkpoint and change nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ignore } from "../_gpu.ts";
import { readCheckpointManifest } from "../../src/train/checkpoint.ts";
import { childEnv, pollUntil, spawnDeno } from "../_child.ts";

const SCRIPT = new URL("./_stress_run.ts", import.meta.url).pathname;
const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** Every path under `dir` with its size and modification time. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    const info = await Deno.stat(path);
    out.push(`${path} ${info.size} ${info.mtime?.getTime()}`);
    if (entry.isDirectory) out.push(...await snapshot(path));
  }
  return out.sort();
}

Deno.test({
  name: "sample needs write permission on a run interrupted by a crash, and needs optimizer.safetensors",
  ignore,
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "difflm-readonly-" });
  const dir = join(root, "run");
  try {
    const trainer = spawnDeno(["run", "-A", SCRIPT, "train", dir, "100000"], "null");
    const step = await pollUntil(
      async () => (await readCheckpointManifest(dir).catch(() => null))?.step ?? 0,
      (step) => step >= 3,
      50,
    );
    trainer.kill("SIGKILL");
    await trainer.status;
    assert.ok(step >= 3, `no third commit appeared (step ${step})`);
    const manifest = (await readCheckpointManifest(dir))!;
    await Deno.remove(join(dir, "checkpoints", String(manifest.generation), "optimizer.safetensors"));
    // What a kill during a commit leaves: the next generation's files, some of them, and a half-written
    // temporary commit record (a kill between steps leaves none, so they are made here).
    const next = join(dir, "checkpoints", String(manifest.generation + 1));
    await Deno.mkdir(next, { recursive: true });
    await Deno.writeFile(join(next, "model.safetensors"), new Uint8Array(100));
    await Deno.writeTextFile(join(dir, "checkpoint.json.tmp"), '{"generation": ');
    const before = await snapshot(root);

    const env = childEnv();
    for (
      const command of [
        ["sample", "--ckpt", dir, "--n", "2", "--steps", "2"],
        ["eval", "--ckpt", dir, "--n", "1", "--lines", "1", "--steps", "2"],
      ]
    ) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", `--allow-read=${root}`, CLI, ...command],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      assert.equal(out.code, 0, `cli.ts ${command[0]}: ${text(out.stderr)}`);
      if (command[0] === "eval") assert.match(text(out.stdout), new RegExp(`"step":${manifest.step}\\b`));
    }
    assert.deepEqual(await snapshot(root), before, "a reader changed the run directory");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
