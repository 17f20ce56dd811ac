/**
 * Every kernel the sampler and trainer dispatch gives the same outputs on Chromium's WebGPU (SwiftShader in
 * CI) as on Deno's, within the tolerance of each in _kernel_cases.ts: the same cases on the same inputs,
 * run in a headless page (_kernel_page.ts, driven by _drive_kernels.ts) and here. Skipped with a printed
 * reason without Chromium or a Deno adapter.
 */
import assert from "node:assert/strict";
import { ignore as noAdapter, testEngine } from "../_gpu.ts";
import { assertClose } from "../_check.ts";
import { findChromium, runDeno } from "./_chromium.ts";
import { KERNEL_TOLERANCES, runKernelCases } from "./_kernel_cases.ts";

const chromium = findChromium();
const ignore = noAdapter || "missing" in chromium;
if ("missing" in chromium) console.warn(`skipping the browser kernel test: ${chromium.missing}`);

const here = new URL(".", import.meta.url).pathname;

Deno.test({ name: "kernels in Chromium match Deno's within each kernel's tolerance", ignore }, async () => {
  const root = await Deno.makeTempDir({ prefix: "difflm-kernels-" });
  try {
    await runDeno(["bundle", "--platform", "browser", "-o", `${root}/kernels.js`, `${here}_kernel_page.ts`]);
    await Deno.writeTextFile(
      `${root}/index.html`,
      '<!doctype html><meta charset="utf-8"><title>difflm kernels</title><script type="module" src="kernels.js"></script>\n',
    );
    const path = (chromium as { path: string }).path;
    const output = await runDeno([
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      `--allow-run=${path}`,
      "--allow-env",
      `${here}_drive_kernels.ts`,
      path,
      root,
    ]);
    const browser = JSON.parse(output.trim().split("\n").at(-1)!) as Record<string, number[]>;
    const reference = await runKernelCases(await testEngine());
    assert.deepEqual(
      Object.keys(browser).sort(),
      Object.keys(KERNEL_TOLERANCES).sort(),
      "cases run in the page",
    );
    const worst: string[] = [];
    for (const [name, expected] of Object.entries(reference)) {
      const actual = browser[name]!;
      const { atol, rtol } = KERNEL_TOLERANCES[name]!;
      assertClose(actual, expected, { atol, rtol, name: `${name} in Chromium` });
      const diff = Math.max(0, ...actual.map((v, i) => Math.abs(v - expected[i]!)));
      worst.push(`${name} ${diff.toExponential(1)}`);
    }
    console.log(`largest difference from Deno per kernel: ${worst.join(", ")}`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
