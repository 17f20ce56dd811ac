/**
 * dawn.node's polls (native callbacks handed to `setImmediate`) go through `setTimeout(fn, 0)`, which does
 * not stall in Deno; JavaScript callbacks keep `setImmediate` (src/gpu/dawn_events.ts).
 */
import assert from "node:assert/strict";
import { routeAddonImmediatesOnTimers, type Scheduler } from "../../src/gpu/dawn_events.ts";

function recordingScheduler(): Scheduler & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    setImmediate: (callback) => (calls.push("immediate"), callback()),
    setTimeout: (callback, ms) => (calls.push(`timeout ${ms}`), callback()),
  };
}

Deno.test("native callbacks given to setImmediate run from setTimeout(fn, 0); JavaScript ones do not", () => {
  const scope = recordingScheduler();
  routeAddonImmediatesOnTimers(scope);
  let ran = 0;
  const js = () => void ran++;
  // A bound function's source text is `function () { [native code] }`, as a Node-API callback's is.
  const native = js.bind(null);
  scope.setImmediate(js);
  scope.setImmediate(native);
  assert.deepEqual(scope.calls, ["immediate", "timeout 0"]);
  assert.equal(ran, 2);
});

Deno.test("routing addon immediates twice wraps setImmediate once", () => {
  const scope = recordingScheduler();
  routeAddonImmediatesOnTimers(scope);
  const once = scope.setImmediate;
  routeAddonImmediatesOnTimers(scope);
  assert.equal(scope.setImmediate, once);
  scope.setImmediate(() => {});
  assert.deepEqual(scope.calls, ["immediate"]);
});

Deno.test("a JavaScript function whose body mentions native code keeps setImmediate", () => {
  const scope = recordingScheduler();
  routeAddonImmediatesOnTimers(scope);
  scope.setImmediate(function () {
    return "{ [native code] }";
  });
  assert.deepEqual(scope.calls, ["immediate"]);
});
