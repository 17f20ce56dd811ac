// deno-lint-ignore-file no-console
/**
 * Opens the kernel page (kernel_parity_test.ts builds it into ROOT: index.html and kernels.js) in headless
 * Chromium and prints one JSON line: the outputs of every kernel case on the page's WebGPU.
 *
 *     deno run --allow-net=127.0.0.1 --allow-read --allow-write --allow-run --allow-env \
 *       tests/browser/_drive_kernels.ts CHROMIUM ROOT
 */
import { Chromium } from "./_chromium.ts";
import { serveDemo } from "../../web/serve.ts";

if (import.meta.main) {
  const [chromium, root] = Deno.args;
  if (!chromium || !root) {
    console.error("usage: _drive_kernels.ts CHROMIUM ROOT");
    Deno.exit(2);
  }
  let url = "";
  const { server } = serveDemo({ root, run: root, port: 0, onListen: (u) => url = u });
  while (!url) await new Promise((r) => setTimeout(r, 10));
  const page = await Chromium.launch(chromium);
  try {
    await page.goto(url);
    await page.waitFor("globalThis.kernelResults || globalThis.kernelError", 150_000);
    const error = await page.evaluate<string | undefined>("globalThis.kernelError");
    if (error) throw new Error(`The kernel page failed: ${error}\n${page.log.join("\n")}`);
    console.log(JSON.stringify(await page.evaluate("globalThis.kernelResults")));
  } finally {
    await page.close();
    await server.shutdown();
  }
}
