/**
 * GPU provider selection (src/gpu/device.ts): the built-in provider by default, `auto` keeping to it on a
 * CPU adapter without loading Dawn, and every way Dawn can be unusable answered by one message that says
 * what is missing and what fixes it: no ffi permission, the package absent (a process with an empty
 * Deno cache and no network), no adapter or no subgroup matrices on this machine.
 */
import assert from "node:assert/strict";
import { ignore } from "../_gpu.ts";
import { GpuUnavailableError } from "../../src/errors.ts";
import { DAWN_PACKAGE, dawnFlags, requestGpu } from "../../src/gpu/device.ts";
import { Engine } from "../../src/tensor/engine.ts";

Deno.test("Dawn runs without shader robustness unless debugging, with extra toggles enabled", () => {
  const toggles = (flags: string[], kind: "enable" | "disable") =>
    flags.find((f) => f.startsWith(`${kind}-dawn-features=`))!.split("=")[1]!.split(",");
  const fast = dawnFlags([], false), debug = dawnFlags(["skip_validation"], true);
  assert.ok(toggles(fast, "enable").includes("disable_robustness"));
  assert.ok(!toggles(debug, "enable").includes("disable_robustness"));
  assert.ok(toggles(debug, "enable").includes("skip_validation"));
  for (const flags of [fast, debug]) {
    assert.ok(toggles(flags, "enable").includes("allow_unsafe_apis"));
    assert.ok(toggles(flags, "enable").includes("vulkan_enable_f16_on_nvidia"));
    assert.deepEqual(toggles(flags, "disable"), ["timestamp_quantization"]);
  }
});

Deno.test("requestGpu refuses a provider it does not know", async () => {
  // deno-lint-ignore no-explicit-any
  await assert.rejects(requestGpu({ provider: "metal" as any }), RangeError);
});

Deno.test({ name: "the built-in provider is the default and gives f32 products", ignore }, async () => {
  const engine = await Engine.create();
  assert.equal(engine.runtime.gpu.provider, "deno");
  assert.equal(engine.runtime.gpu.features.subgroupMatrix, false);
  assert.equal(engine.precision, "f32");
});

Deno.test({
  name: "Dawn without the ffi permission is refused with the flag that fixes it",
  permissions: { ffi: false },
}, async () => {
  await assert.rejects(requestGpu({ provider: "dawn" }), (error: Error) => {
    assert.ok(error instanceof GpuUnavailableError, String(error));
    assert.match(error.message, /--allow-ffi/);
    assert.match(error.message, /--gpu deno/);
    return true;
  });
});

Deno.test({
  name: "auto keeps to the built-in provider when ffi is not granted",
  permissions: { ffi: false, read: true, env: true },
  ignore,
}, async () => {
  const gpu = await requestGpu({ provider: "auto" });
  assert.equal(gpu.provider, "deno");
});

Deno.test({
  name: "auto keeps to a CPU adapter without loading Dawn, even with ffi granted",
  ignore,
}, async () => {
  // With an empty Deno cache and --cached-only, loading Dawn fails, and DIFFLM_DEBUG makes auto say so;
  // on a fallback adapter auto must not even try.
  const script = new URL("./_provider_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--cached-only", "--no-lock", "--allow-ffi", "--allow-read", "--allow-env", script, "auto"],
    env: { DENO_DIR: await Deno.makeTempDir(), NO_COLOR: "1", DIFFLM_DEBUG: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const adapter = await (await navigator.gpu.requestAdapter())!;
  if (adapter.info.isFallbackAdapter) {
    assert.ok(out.success, text);
    assert.match(text, /provider deno/);
    assert.doesNotMatch(text, /Dawn/, "auto tried Dawn on a CPU adapter");
  } else {
    console.log(`a hardware adapter is present; auto may choose Dawn here: ${text.trim()}`);
  }
});

Deno.test({
  name: "Dawn absent from the cache and unreachable gives one message with the command that fetches it",
  ignore,
}, async () => {
  const script = new URL("./_provider_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--cached-only", "--no-lock", "--allow-ffi", "--allow-read", "--allow-env", script, "dawn"],
    env: { DENO_DIR: await Deno.makeTempDir(), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, text);
  assert.match(text, new RegExp(`Cannot load Dawn from ${DAWN_PACKAGE.replace(/[.@]/g, "\\$&")}`));
  assert.match(text, /deno cache --no-lock npm:webgpu/);
  assert.doesNotMatch(text, /^\s+at /m, "a stack trace was printed");
});
