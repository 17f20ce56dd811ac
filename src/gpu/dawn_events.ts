/**
 * How Dawn's promises settle in Deno. dawn.node settles every promise it hands out (buffer maps, error
 * scopes, `onSubmittedWorkDone`) by polling Dawn from a chain of `setImmediate` calls, each scheduled by a
 * native function. In Deno 2.9 such an immediate can sit unrun for up to ~2 s while the event loop sleeps,
 * and a timer armed meanwhile waits with it; timers alone never stalled. Measured (Dawn on SwiftShader, a
 * small train step): the step's GPU work ended 250 ms after it was submitted, the poll that would have seen
 * it was scheduled at 40 ms and ran at 1715 ms, so its metrics arrived at 1.7 – 2.3 s in half the steps;
 * the synced seed-preset step on an H200 took 82 – 2616 ms around 66 ms of GPU work. Routed through
 * `setTimeout(fn, 0)`, every step's metrics arrived with its GPU work.
 *
 * @module
 */

/** The two scheduling functions this module reads and replaces (globalThis, or a stand-in in tests). */
export interface Scheduler {
  setImmediate: (callback: () => void) => unknown;
  setTimeout: (callback: () => void, ms: number) => unknown;
}

const ROUTED = Symbol.for("difflm.addonImmediatesOnTimers");

/** Whether a function is native code (a Node-API addon's callback): its source text says so. */
function isNative(fn: unknown): boolean {
  return typeof fn === "function" && /\{\s*\[native code\]\s*\}$/.test(Function.prototype.toString.call(fn));
}

/**
 * Replaces `setImmediate` on `scope` so that native callbacks (dawn.node's polls) run from `setTimeout(fn,
 * 0)` instead; JavaScript callbacks keep the original `setImmediate`. Installing twice is a no-op.
 *
 * @example Usage
 * ```ts
 * import { routeAddonImmediatesOnTimers } from "./dawn_events.ts";
 * routeAddonImmediatesOnTimers(); // before loading dawn.node
 * ```
 * @param scope Where `setImmediate` and `setTimeout` live.
 */
export function routeAddonImmediatesOnTimers(
  scope: Scheduler = globalThis as unknown as Scheduler,
): void {
  const current = scope.setImmediate as Scheduler["setImmediate"] & { [ROUTED]?: true };
  if (typeof current !== "function" || current[ROUTED]) return;
  const routed = Object.assign(
    (callback: () => void, ...rest: unknown[]) =>
      isNative(callback)
        ? scope.setTimeout(callback, 0)
        : (current as (callback: () => void, ...rest: unknown[]) => unknown)(callback, ...rest),
    { [ROUTED]: true as const },
  );
  scope.setImmediate = routed;
}
