/**
 * Finding run directories: the latest run under `runs/` when no `--ckpt` is given.
 *
 * @module
 */
import { join } from "node:path";
import { MANIFEST_FILE } from "../train/state_dict.ts";

/**
 * The run directory under `root` whose checkpoint was committed last.
 *
 * @param root The folder holding runs.
 * @returns Its path.
 * @throws {Error} If there is no run with a checkpoint.
 */
export async function latestRun(root = "runs"): Promise<string> {
  let best: { path: string; time: number } | null = null;
  try {
    for await (const entry of Deno.readDir(root)) {
      if (!entry.isDirectory) continue;
      try {
        const info = await Deno.stat(join(root, entry.name, MANIFEST_FILE));
        const time = info.mtime?.getTime() ?? 0;
        if (!best || time > best.time) best = { path: join(root, entry.name), time };
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (!best) {
    throw new Error(
      `Cannot find a trained run under "${root}/": train one with cli.ts train, or give --ckpt`,
    );
  }
  return best.path;
}
