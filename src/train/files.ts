/**
 * File helpers for runs: atomic writes (temporary file + rename, so a crash never leaves a half-written
 * checkpoint) and error messages that name the file.
 *
 * @module
 */

/**
 * Writes a file atomically: the bytes go to a temporary file beside it, flushed to the disk, which then
 * replaces the target (so after a crash the target holds the old bytes or the new ones, never part).
 *
 * @example Usage
 * ```ts
 * import { writeFileAtomic } from "./files.ts";
 * const path = `${await Deno.makeTempDir()}/state.json`;
 * await writeFileAtomic(path, new TextEncoder().encode("{}"));
 * console.log(await Deno.readTextFile(path)); // "{}"
 * ```
 * @param path Destination.
 * @param data The bytes or text.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const temporary = `${path}.tmp`;
  await writeFileSynced(temporary, data);
  await Deno.rename(temporary, path);
}

/**
 * Writes a file and flushes it to the disk before returning (a later rename or commit record can then
 * rely on its bytes being there after a crash).
 *
 * @example Usage
 * ```ts
 * import { writeFileSynced } from "./files.ts";
 * const path = `${await Deno.makeTempDir()}/state.json`;
 * await writeFileSynced(path, "{}");
 * console.log(await Deno.readTextFile(path)); // "{}"
 * ```
 * @param path Destination (created or truncated).
 * @param data The bytes or text.
 */
export async function writeFileSynced(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
  await file.syncData();
}

/**
 * Reads a file, turning "not found" into a message that names it.
 *
 * @param path The file.
 * @param what What the file is, for the message (e.g. "checkpoint").
 * @returns Its bytes.
 */
export async function readFileNamed(path: string, what: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot read ${what} "${path}": the file does not exist`);
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new Error(`Cannot read ${what} "${path}": it is a directory`);
    }
    throw e;
  }
}

/**
 * Reads and parses a JSON file, naming the file on failure.
 *
 * @param path The file.
 * @param what What the file is, for the message.
 * @returns The parsed value.
 */
export async function readJsonNamed(path: string, what: string): Promise<unknown> {
  const text = new TextDecoder().decode(await readFileNamed(path, what));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`Cannot read ${what} "${path}": invalid JSON (${(e as Error).message})`);
  }
}

/**
 * Whether a path exists (other errors, such as a missing permission, are raised).
 *
 * @example Usage
 * ```ts
 * import { pathExists } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * console.log(await pathExists(dir), await pathExists(`${dir}/state.json`)); // true false
 * ```
 * @param path The path.
 * @returns True when it exists.
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
