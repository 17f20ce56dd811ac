/**
 * One trainer per run directory: an exclusive advisory lock on `train.lock`, taken by the process that
 * writes checkpoints and held until it closes the run. The operating system drops the lock when the process
 * ends, however it ends, so a crashed or killed trainer never leaves it stuck; the file's text (the holder's
 * pid and start time) only makes the message of a refused lock useful. Readers take no lock.
 *
 * @module
 */

/** The lock file's name inside a run directory. */
export const LOCK_FILE = "train.lock";

/** Who holds a run's lock, as its lock file says. */
interface LockHolder {
  pid: number;
  started: string;
}

/**
 * The exclusive right to write checkpoints into one run directory.
 *
 * @example Usage
 * ```ts
 * import { RunLock } from "./run_lock.ts";
 * using lock = await RunLock.acquire(await Deno.makeTempDir());
 * console.log(lock.held); // true, until the end of the scope
 * // … train and write checkpoints …
 * ```
 */
export class RunLock {
  /** The run directory. */
  readonly dir: string;
  #file: Deno.FsFile | null;

  private constructor(dir: string, file: Deno.FsFile) {
    this.dir = dir;
    this.#file = file;
  }

  /**
   * Takes the run's lock (creating `train.lock` if needed) without waiting.
   *
   * @example Usage
   * ```ts
   * import { RunLock } from "./run_lock.ts";
   * const lock = await RunLock.acquire(await Deno.makeTempDir());
   * lock.release();
   * ```
   * @param dir The run directory (it must exist).
   * @returns The held lock.
   * @throws {Error} If another process holds it: the message names that process.
   */
  static async acquire(dir: string): Promise<RunLock> {
    const path = `${dir}/${LOCK_FILE}`;
    // Not truncated on open: the holder's text stays readable for the message below.
    const file = await Deno.open(path, { read: true, write: true, create: true });
    let locked = false;
    try {
      locked = await file.tryLock(true);
      if (!locked) {
        const holder = await readHolder(file);
        throw new Error(
          `Cannot train in "${dir}": another process ${
            holder ? `(pid ${holder.pid}, started ${holder.started}) ` : ""
          }is training there (${path} is locked); wait for it to end or stop it`,
        );
      }
      const holder: LockHolder = { pid: Deno.pid, started: new Date().toISOString() };
      await file.truncate(0);
      await file.seek(0, Deno.SeekMode.Start);
      await file.write(new TextEncoder().encode(JSON.stringify(holder) + "\n"));
      return new RunLock(dir, file);
    } catch (e) {
      if (locked) file.unlockSync();
      file.close();
      throw e;
    }
  }

  /** Whether this object still holds the lock. */
  get held(): boolean {
    return this.#file !== null;
  }

  /**
   * Releases the lock (the file stays: removing it could let a second trainer lock a new file while a
   * third still holds the old one).
   *
   * @example Usage
   * ```ts
   * import { RunLock } from "./run_lock.ts";
   * const dir = await Deno.makeTempDir();
   * const lock = await RunLock.acquire(dir);
   * lock.release();
   * console.log(lock.held); // false; the directory may be locked again
   * (await RunLock.acquire(dir)).release();
   * ```
   */
  release(): void {
    if (!this.#file) return;
    this.#file.unlockSync();
    this.#file.close();
    this.#file = null;
  }

  /** Releases the lock. */
  [Symbol.dispose](): void {
    this.release();
  }
}

async function readHolder(file: Deno.FsFile): Promise<LockHolder | null> {
  try {
    const stat = await file.stat();
    const bytes = new Uint8Array(Math.min(stat.size, 4096));
    await file.seek(0, Deno.SeekMode.Start);
    const n = await file.read(bytes);
    const holder = JSON.parse(new TextDecoder().decode(bytes.subarray(0, n ?? 0)));
    return Number.isInteger(holder?.pid) ? holder : null;
  } catch {
    // Unreadable (on Windows a locked file cannot be read): the message goes without the holder.
    return null;
  }
}
