// deno-lint-ignore-file no-console
/**
 * Drives the demo page in headless Chromium for page_test.ts, in its own process so that only it has
 * network access (to 127.0.0.1): serves `web/` with a run at `/run/`, opens the page, and for each
 * request fills the form as a reader would and presses Sample. Prints one JSON line: `noWebgpu`, what the
 * page showed in a Chromium without a WebGPU adapter (its state and message), and `results`, the page's
 * state after each request (the adapter, the final ids and texts, the ids and time of every step, the
 * fine-tuning losses).
 *
 *     deno run --allow-net=127.0.0.1 --allow-read --allow-write --allow-run --allow-env \
 *       tests/browser/_drive_page.ts CHROMIUM RUN_DIR REQUESTS_JSON [SCREENSHOT.png]
 *
 * REQUESTS_JSON is a list of `{ mode: "free" | "prompt" | "template", text, steps, length, count, seed }`
 * (sampling) or `{ mode: "tune", text, steps, batch, lr, seed }` (fine-tuning on the lines of text); the
 * screenshot is taken after the first request.
 */
import { Chromium } from "./_chromium.ts";
import { serveDemo } from "../../web/serve.ts";

/** One sampling request made through the page's form. */
export interface PageRequest {
  mode: "free" | "prompt" | "template";
  text: string;
  steps: number;
  length: number;
  count: number;
  seed: number;
}

/** One fine-tuning request made through the page's form. */
export interface TuneRequest {
  mode: "tune";
  text: string;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
}

/** What the page exposes as `globalThis.difflmDemo`. */
export interface PageDemo {
  error: string | null;
  adapter: { description: string; vendor: string; architecture: string; fallback: boolean } | null;
  last: { ids: number[][]; texts: string[]; stepIds: number[][][]; stepMs: number[] } | null;
  tuned: { losses: number[]; stepMs: number[] } | null;
}

async function runOnPage(page: Chromium, request: PageRequest | TuneRequest): Promise<PageDemo> {
  await page.evaluate(`(() => {
    const r = ${JSON.stringify(request)};
    const set = (id, value) => document.getElementById(id).value = String(value);
    if (r.mode === "tune") {
      set("tune-text", r.text);
      set("tune-steps", r.steps);
      set("tune-batch", r.batch);
      set("tune-lr", r.lr);
      set("seed", r.seed);
      document.getElementById("tune").click();
      return;
    }
    document.querySelector("input[name=mode][value=" + r.mode + "]").click();
    for (const id of ["text", "steps", "length", "count", "seed"]) set(id, r[id]);
    document.getElementById("sample").click();
  })()`);
  await page.waitFor("['done', 'error'].includes(document.body.dataset.state)", 150_000);
  const demo = await page.evaluate<PageDemo>("globalThis.difflmDemo");
  if (demo.error) throw new Error(`The page failed: ${demo.error}\n${page.log.join("\n")}`);
  // So that the next request's completion is seen.
  await page.evaluate("document.body.dataset.state = 'ready'");
  return demo;
}

if (import.meta.main) {
  const [chromium, run, requestsJson, screenshot] = Deno.args;
  if (!chromium || !run || !requestsJson) {
    console.error("usage: _drive_page.ts CHROMIUM RUN_DIR REQUESTS_JSON [SCREENSHOT.png]");
    Deno.exit(2);
  }
  const requests = JSON.parse(requestsJson) as (PageRequest | TuneRequest)[];
  let url = "";
  const { server } = serveDemo({ run, port: 0, onListen: (u) => url = u });
  while (!url) await new Promise((r) => setTimeout(r, 10));
  // First a browser without a WebGPU adapter: the page must say so.
  const bare = await Chromium.launch(chromium, { webgpu: false });
  let noWebgpu: { state: string; message: string };
  try {
    await bare.goto(`${url}?run=run/`);
    await bare.waitFor("['ready', 'error', 'no-webgpu'].includes(document.body.dataset.state)", 60_000);
    noWebgpu = await bare.evaluate(
      "({ state: document.body.dataset.state, message: document.getElementById('support').textContent })",
    );
  } finally {
    await bare.close();
  }
  const page = await Chromium.launch(chromium, { width: 1000, height: 980 });
  try {
    await page.goto(`${url}?run=run/`);
    await page.waitFor("['ready', 'error', 'no-webgpu'].includes(document.body.dataset.state)", 60_000);
    const state = await page.evaluate<string>("document.body.dataset.state");
    if (state !== "ready") {
      const message = await page.evaluate<string>("document.getElementById('support').textContent");
      throw new Error(`The page did not load the run: ${state}: ${message}\n${page.log.join("\n")}`);
    }
    const results: PageDemo[] = [];
    for (const request of requests) {
      results.push(await runOnPage(page, request));
      if (screenshot && results.length === 1) await Deno.writeFile(screenshot, await page.screenshot());
    }
    console.log(JSON.stringify({ noWebgpu, results }));
  } finally {
    await page.close();
    await server.shutdown();
  }
}
