// deno-lint-ignore-file no-console
/**
 * Serves the demo page on http://127.0.0.1:PORT: `web/` (the page and its bundle in `web/dist/`) at `/`
 * and a run directory at `/run/`, which the page loads by default. `deno task web` builds the bundle
 * and runs this.
 *
 *     deno run --allow-net=127.0.0.1 --allow-read=web,runs web/serve.ts [--run DIR] [--port N]
 *
 * @module
 */
import { parseArgs } from "node:util";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  map: "application/json",
  json: "application/json",
  png: "image/png",
  svg: "image/svg+xml",
  css: "text/css; charset=utf-8",
};

/** Where the demo's files come from. */
export interface DemoServerOptions {
  /** The page's folder (default: this file's folder). */
  root?: string;
  /** The run directory served at `/run/`. */
  run: string;
  /** Port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** Called once listening, with the page's URL. */
  onListen?: (url: string) => void;
}

/**
 * Starts the demo's static server.
 *
 * @param options The page's folder, the run directory and the port.
 * @returns The server (`shutdown()` stops it) and the page's URL.
 */
export function serveDemo(options: DemoServerOptions): { server: Deno.HttpServer; url: string } {
  const root = options.root ?? new URL(".", import.meta.url).pathname;
  let url = "";
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: options.port,
    onListen: ({ port }) => {
      url = `http://127.0.0.1:${port}/`;
      options.onListen?.(url);
    },
  }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    if (path.split("/").includes("..")) return new Response("Bad path\n", { status: 400 });
    const file = path.startsWith("/run/")
      ? `${options.run}/${path.slice("/run/".length)}`
      : `${root}/${path === "/" ? "index.html" : path.slice(1)}`;
    try {
      const body = await Deno.readFile(file);
      const type = TYPES[file.split(".").at(-1) ?? ""] ?? "application/octet-stream";
      return new Response(body, { headers: { "content-type": type, "cache-control": "no-store" } });
    } catch (error) {
      const status = error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory
        ? 404
        : 500;
      return new Response(`Cannot read ${path}\n`, { status });
    }
  });
  return {
    server,
    get url() {
      return url;
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { run: { type: "string", default: "runs/tiny" }, port: { type: "string", default: "8123" } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`web/serve.ts: --port must be an integer in [0, 65535], got "${values.port}"`);
    Deno.exit(2);
  }
  const root = new URL(".", import.meta.url).pathname;
  try {
    await Deno.stat(`${root}dist/app.js`);
  } catch {
    console.error("web/serve.ts: web/dist/app.js is missing: build it with deno task web:build");
    Deno.exit(1);
  }
  try {
    await Deno.stat(`${values.run}/config.json`);
  } catch {
    console.error(
      `note: ${values.run}/config.json is missing, so the page will have no run to load. Train one with\n` +
        `  deno task train --ckpt ${values.run} --minutes 10\n` +
        "(see web/README.md), or give another run directory with --run DIR.",
    );
  }
  serveDemo({
    run: values.run,
    port,
    onListen: (url) =>
      console.log(`difflm demo: ${url} (run: ${values.run}); open it in a browser with WebGPU`),
  });
}
