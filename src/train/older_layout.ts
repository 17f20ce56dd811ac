/**
 * Checkpoints in the layout of an older difflm, before commit records: `model.safetensors`,
 * `optimizer.safetensors` and `state.json` beside `config.json`, committed by renames. The trainer
 * converts one into generation 1 of the current layout; readers ask for that conversion.
 *
 * @module
 */
import { join } from "node:path";
import { pathExists, readFileNamed, writeFileAtomic, writeFileSynced } from "./files.ts";
import { decodeSafetensors, encodeSafetensors, type HostTensor } from "./safetensors.ts";
import {
  type CheckpointFile,
  type CheckpointManifest,
  CHECKPOINTS_FOLDER,
  decodeRunState,
  MANIFEST_FILE,
} from "./state_dict.ts";

/** The files of a checkpoint in the layout before commit records: beside config.json, committed by renames. */
export const OLDER_LAYOUT = ["model.safetensors", "optimizer.safetensors", "state.json"] as const;
/** Where that layout kept the moving average of the weights: in the optimiser file, under this prefix. */
const OLDER_AVERAGE_PREFIX = "ema.";

/**
 * The message for a run directory holding a checkpoint in the layout before commit records.
 *
 * @example Usage
 * ```ts
 * import { assertCurrentLayout } from "./older_layout.ts";
 * await assertCurrentLayout(await Deno.makeTempDir()); // no state.json there: no error
 * ```
 * @param dir The run directory.
 * @throws {Error} If `dir` holds `state.json` beside `config.json`.
 */
export async function assertCurrentLayout(dir: string): Promise<void> {
  if (await pathExists(join(dir, "state.json"))) {
    throw new Error(
      `Cannot open run "${dir}": its checkpoint (state.json beside config.json, no ${MANIFEST_FILE}) is ` +
        `in the layout of an older difflm; resuming it with cli.ts train --ckpt converts it`,
    );
  }
}

/**
 * Converts a checkpoint in the layout before commit records into generation 1: finishes or discards that
 * layout's interrupted commit (`*.next` files, complete once `state.json.next` exists), writes the files
 * into `checkpoints/1/` (the moving average out of the optimiser file into its own), commits, then removes
 * the old files. A crash before the commit leaves the old files to convert again.
 *
 * @example Usage
 * ```ts
 * import { convertOlderLayout } from "./older_layout.ts";
 * console.log(await convertOlderLayout(await Deno.makeTempDir())); // null: no checkpoint of that layout
 * ```
 * @param dir The run directory.
 * @returns The commit record of generation 1, or null when `dir` holds no checkpoint of that layout.
 * @throws {Error} If a file of that checkpoint is damaged or from another step.
 */
export async function convertOlderLayout(dir: string): Promise<CheckpointManifest | null> {
  const complete = await pathExists(join(dir, "state.json.next"));
  for (const name of OLDER_LAYOUT) {
    if (complete && await pathExists(join(dir, `${name}.next`))) {
      await Deno.rename(join(dir, `${name}.next`), join(dir, name));
    }
    for (const stale of [`${name}.next`, `${name}.next.tmp`]) {
      await Deno.remove(join(dir, stale)).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    }
  }
  if (!(await pathExists(join(dir, "state.json")))) return null;
  const statePath = join(dir, "state.json");
  const state = await readFileNamed(statePath, "training state");
  const { step } = decodeRunState(state, statePath);
  const files = new Map<CheckpointFile, Uint8Array>();
  for (const name of ["model.safetensors", "optimizer.safetensors"] as const) {
    const path = join(dir, name);
    const bytes = await readFileNamed(path, "checkpoint");
    const { tensors, metadata } = decodeSafetensors(bytes, path);
    if (metadata.step !== String(step)) {
      throw new Error(`Cannot convert "${path}": it is from step ${metadata.step}, state.json from ${step}`);
    }
    const average = [...tensors].filter(([key]) => key.startsWith(OLDER_AVERAGE_PREFIX));
    if (average.length === 0) {
      files.set(name, bytes);
      continue;
    }
    const strip = ([key, t]: [string, HostTensor]): [string, HostTensor] => [
      key.slice(OLDER_AVERAGE_PREFIX.length),
      t,
    ];
    files.set("average.safetensors", encodeSafetensors(new Map(average.map(strip)), metadata));
    const moments = [...tensors].filter(([key]) => !key.startsWith(OLDER_AVERAGE_PREFIX));
    files.set(name, encodeSafetensors(new Map(moments), metadata));
  }
  files.set("state.json", state);
  const target = join(dir, CHECKPOINTS_FOLDER, "1");
  await Deno.remove(target, { recursive: true }).catch(() => {});
  await Deno.mkdir(target, { recursive: true });
  const manifest: CheckpointManifest = { generation: 1, step, files: {} };
  for (const [name, bytes] of files) {
    await writeFileSynced(join(target, name), bytes);
    manifest.files[name] = bytes.length;
  }
  await writeFileAtomic(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");
  for (const name of OLDER_LAYOUT) await Deno.remove(join(dir, name));
  return manifest;
}
