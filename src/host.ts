/**
 * What difflm asks of the runtime it runs in beyond WebGPU — an environment variable, whether a
 * permission is granted, the operating system, a file's bytes — through this one seam. Deno answers;
 * in a browser (or any runtime without the `Deno` global) every answer is "absent", so the library's
 * sampling path runs unchanged in a web page and its bundle holds no use of Deno's namespace.
 *
 * @module
 */

/** The part of Deno's namespace difflm uses. */
interface DenoHost {
  env: { get(name: string): string | undefined };
  permissions: { querySync(descriptor: Deno.PermissionDescriptor): { state: string } };
  build: { os: string };
  readFile(path: string | URL): Promise<Uint8Array<ArrayBuffer>>;
}

/** Deno's namespace where the runtime has one. */
function deno(): DenoHost | undefined {
  return (globalThis as { Deno?: DenoHost }).Deno;
}

/**
 * Whether a permission is granted, asked without prompting; false outside Deno.
 *
 * @example Usage
 * ```ts
 * import { permissionGranted } from "./host.ts";
 * console.log(typeof permissionGranted({ name: "ffi" })); // boolean
 * ```
 * @param descriptor The permission.
 * @returns True when granted.
 */
export function permissionGranted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return deno()?.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Reads an environment variable if the runtime allows it, without prompting.
 *
 * @example Usage
 * ```ts
 * import { readEnv } from "./host.ts";
 * console.log(readEnv("DIFFLM_DEBUG") ?? "unset");
 * ```
 * @param name The variable.
 * @returns Its value, or undefined when unset, not permitted, or outside Deno.
 */
export function readEnv(name: string): string | undefined {
  if (!permissionGranted({ name: "env", variable: name })) return undefined;
  return deno()?.env.get(name);
}

/**
 * The `DIFFLM_DEBUG` level: 0 when unset, not a number or not readable; 1 flushes after every dispatch
 * and keeps Dawn's shader robustness on; 2 also logs each kernel's WGSL.
 *
 * @example Usage
 * ```ts
 * import { debugLevel } from "./host.ts";
 * console.log(debugLevel() >= 0); // true
 * ```
 * @returns The level.
 */
export function debugLevel(): number {
  return Number(readEnv("DIFFLM_DEBUG") ?? "0") || 0;
}

/**
 * The operating system Deno reports (`linux`, `darwin`, `windows`, …), or undefined outside Deno.
 *
 * @example Usage
 * ```ts
 * import { hostOs } from "./host.ts";
 * console.log(hostOs());
 * ```
 * @returns The OS name.
 */
export function hostOs(): string | undefined {
  return deno()?.build.os;
}

/** Whether this runtime offers Deno's namespace (native addons, files, permissions). */
export function isDeno(): boolean {
  return deno() !== undefined;
}

/**
 * A file's bytes, where the runtime has files.
 *
 * @example Usage
 * ```ts
 * import { readHostFile } from "./host.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hi");
 * console.log((await readHostFile(path)).length); // 2
 * ```
 * @param path The file (a path or a `file:` URL).
 * @returns Its bytes.
 * @throws {TypeError} Outside Deno, naming the file.
 */
export function readHostFile(path: string | URL): Promise<Uint8Array<ArrayBuffer>> {
  const host = deno();
  if (!host) return Promise.reject(new TypeError(`Cannot read "${path}": this runtime has no file access`));
  return host.readFile(path);
}
