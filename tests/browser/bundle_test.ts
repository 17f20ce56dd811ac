/**
 * The browser sampling entry (src/browser.ts) bundles for the browser with nothing a page cannot load:
 * no `node:` import (Chromium refuses the scheme, and the whole bundle with it), none of the modules that
 * touch files (checkpoint.ts, files.ts, the CLI), and no `Deno.` reference beyond the known ones listed
 * below — each guarded by `typeof Deno` or inside a function the browser path never calls. A new
 * reference fails with its module named; a listed one that disappears is printed, so the list shrinks.
 * page_test.ts then runs the bundle in Chromium.
 */
import assert from "node:assert/strict";

/** `Deno.` references the bundle may still hold, by module, each with why the page never reaches it. */
const KNOWN_DENO_REFERENCES: readonly { module: string; reference: string; why: string }[] = [
  { module: "src/gpu/device.ts", reference: "Deno.build", why: "guessBackend checks typeof Deno first" },
  { module: "src/gpu/device.ts", reference: "Deno.permissions", why: "readEnv checks typeof Deno first" },
  { module: "src/gpu/device.ts", reference: "Deno.env", why: "readEnv checks typeof Deno first" },
  {
    module: "src/tokenizer/tokenizer.ts",
    reference: "Deno.readFile",
    why: "Tokenizer.load reads a path; the browser path calls Tokenizer.fromBytes",
  },
];
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
    const known = new Set(KNOWN_DENO_REFERENCES.map((k) => `${k.module}: ${k.reference}`));
    const unexpected = [...found].filter((f) => !known.has(f));
    assert.deepEqual(unexpected, [], `the browser path references Deno: ${unexpected.join("; ")}`);
    const gone = [...known].filter((k) => !found.has(k));
    if (gone.length) {
      console.log(`no longer in the bundle, remove from KNOWN_DENO_REFERENCES: ${gone.join("; ")}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
