/**
 * Child processes of tests: `deno` with the environment every test child gets (no colours; a runtime
 * directory, which the GPU driver wants), and waiting for what a child writes.
 */

/** The environment of a child `deno`. */
export function childEnv(): Record<string, string> {
  return { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" };
}

/** Starts `deno args` with {@linkcode childEnv}; stdout and stderr are piped or dropped. */
export function spawnDeno(args: string[], output: "piped" | "null"): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), { args, env: childEnv(), stdout: output, stderr: output }).spawn();
}

/**
 * Waits `ms` milliseconds and calls `read`, at most `tries` times, until `done` holds for what it read.
 *
 * @returns The last value read.
 */
export async function pollUntil<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  ms: number,
  tries = 600,
): Promise<T> {
  let value: T;
  let i = 0;
  do {
    await new Promise((r) => setTimeout(r, ms));
    value = await read();
  } while (++i < tries && !done(value));
  return value;
}
