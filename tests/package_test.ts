/**
 * The package as its users get it: the command line runs through the package's export map, the exports
 * are the ones documented, and the commands a user runs need no package from a registry.
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const rootPath = decodeURIComponent(root.pathname);

/** Runs `deno` with the arguments in `cwd`, with the given environment added; returns exit code and output. */
async function deno(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd ?? rootPath,
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

Deno.test("the ./cli export runs the command line through the package's export map", async () => {
  const consumer = await Deno.makeTempDir();
  try {
    // `links` makes jsr:@difflm/core resolve to this directory, through its deno.json exports.
    await Deno.writeTextFile(`${consumer}/deno.json`, JSON.stringify({ links: [rootPath] }));
    const { code, stdout, stderr } = await deno(["run", "jsr:@difflm/core/cli", "--help"], { cwd: consumer });
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^usage: deno run \[permissions\] cli\.ts <command>/m);
    assert.match(stdout, /^ {2}train /m);
  } finally {
    await Deno.remove(consumer, { recursive: true });
  }
});

Deno.test("deno.json exports the entry modules the README documents", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const documented = {
    ".": "./mod.ts",
    "./tokenizer": "./tokenizer.ts",
    "./kernels": "./kernels.ts",
    "./cli": "./cli.ts",
    "./browser": "./src/browser.ts",
  };
  for (const [name, file] of Object.entries(documented)) {
    assert.equal(config.exports[name], file, `export "${name}"`);
    assert.ok(
      readme.includes(`\`@difflm/core${name.slice(1)}\``),
      `README names @difflm/core${name.slice(1)}`,
    );
  }
});

Deno.test("the entry modules' module graphs hold no registry package", async () => {
  for (const entry of ["cli.ts", "mod.ts", "tokenizer.ts", "kernels.ts", "src/browser.ts"]) {
    const { code, stdout, stderr } = await deno(["info", "--json", entry]);
    assert.equal(code, 0, stderr);
    const graph = JSON.parse(stdout) as { modules: { specifier: string }[]; npmPackages?: object };
    const remote = graph.modules.map((m) => m.specifier).filter((s) => !/^(file|node):/.test(s));
    assert.deepEqual(remote, [], `${entry} imports ${remote.join(", ")}`);
    assert.deepEqual(Object.keys(graph.npmPackages ?? {}), [], `${entry} needs npm packages`);
  }
});

Deno.test("deno task train and sample start with no registry reachable and an empty Deno cache", async () => {
  const cache = await Deno.makeTempDir();
  try {
    // Nothing listens on port 9: any download fails at once, so a task that needs one fails.
    const env = {
      DENO_DIR: cache,
      NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
      JSR_URL: "http://127.0.0.1:9/",
    };
    for (const task of ["train", "sample"]) {
      const { code, stdout, stderr } = await deno(["task", task, "--help"], { env });
      assert.equal(code, 0, `deno task ${task} --help failed:\n${stderr}`);
      assert.match(stdout, new RegExp(`^usage: .*cli\\.ts ${task}`, "m"));
      assert.doesNotMatch(stderr, /Download/, `deno task ${task} downloaded:\n${stderr}`);
    }
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("no code block of the package's docs is left out of the doc tests", async () => {
  // `deno test --doc` type-checks and runs every ts block of the modules and Markdown files; an `ignore`
  // attribute would exempt a block from both, so none may carry one.
  const files = ["mod.ts", "tokenizer.ts", "kernels.ts", "cli.ts", "README.md"].map((f) => new URL(f, root));
  const walk = async (dir: URL): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (/\.(ts|md)$/.test(entry.name)) files.push(url);
    }
  };
  for (const dir of ["src/", "kernels/", "docs/"]) await walk(new URL(dir, root));
  const ignored: string[] = [];
  for (const url of files) {
    (await Deno.readTextFile(url)).split("\n").forEach((line, i) => {
      if (/^\s*(\*\s*)?```\w+.*\bignore\b/.test(line)) ignored.push(`${url.pathname}:${i + 1}`);
    });
  }
  assert.deepEqual(ignored, []);
});
