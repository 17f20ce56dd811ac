/**
 * The browser sampling entry (src/browser.ts) bundles for the browser with nothing a page cannot load:
 * no `node:` import (Chromium refuses the scheme, and the whole bundle with it), none of the modules that
 * touch files (checkpoint.ts, files.ts, the CLI), and no `Deno.` reference at all: what the library asks
 * of its host goes through src/host.ts, which finds no Deno in a page. A reference fails with its module
 * named. page_test.ts then runs the bundle in Chromium.
 */
import assert from "node:assert/strict";

/** Modules that must stay out of the browser path. */
const FILE_MODULES = [
  /^src\/train\/checkpoint\.ts$/,
  /^src\/train\/files\.ts$/,
  /^src\/train\/run_lock\.ts$/,
  /^src\/cli\//,
  /^cli\.ts$/,
];

const entry = new URL("../../src/browser.ts", import.meta.url).pathname;

Deno.test("src/browser.ts bundles for the browser without node: imports, file modules or Deno.", async () => {
  const dir = await Deno.makeTempDir({ prefix: "difflm-bundle-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--platform", "browser", "-o", `${dir}/browser.js`, entry],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, `deno bundle failed:\n${new TextDecoder().decode(out.stderr)}`);
    const bundle = await Deno.readTextFile(`${dir}/browser.js`);

    // Comments (JSDoc examples) are neither imports nor references.
    const code = bundle.replace(/\/\*[\s\S]*?\*\//g, "");
    const nodeImports = code.match(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']node:[^"']*["']/g);
    assert.equal(nodeImports, null, `the bundle imports node: modules: ${nodeImports?.join(", ")}`);

    // The bundler marks where each module starts with a "// path.ts" line.
    const modules = new Map<string, string>();
    let current = "(bundle prelude)";
    for (const line of code.split("\n")) {
      const marker = /^\/\/ ((?:src|kernels)\/\S+\.ts|cli\.ts|mod\.ts)$/.exec(line);
      if (marker) current = marker[1]!;
      else modules.set(current, (modules.get(current) ?? "") + line + "\n");
    }
    assert.ok(
      modules.has("src/browser.ts") && modules.has("src/diffusion/sampler.ts"),
      "no module markers found",
    );
    const fileModules = [...modules.keys()].filter((m) => FILE_MODULES.some((re) => re.test(m)));
    assert.deepEqual(fileModules, [], `the bundle holds modules that touch files: ${fileModules.join(", ")}`);

    const found = new Set<string>();
    for (const [module, text] of modules) {
      const stripped = text.replace(/^\s*\/\/.*$/gm, "");
      for (const match of stripped.matchAll(/\bDeno\.[A-Za-z]+/g)) found.add(`${module}: ${match[0]}`);
    }
    assert.deepEqual([...found], [], `the browser path references Deno: ${[...found].join("; ")}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
