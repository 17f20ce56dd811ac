/**
 * A headless Chromium driven through the DevTools protocol over a WebSocket: enough to open a page,
 * evaluate expressions in it and take a screenshot. No dependencies: Chromium is started with
 * `--remote-debugging-port=0` and the port is read from `DevToolsActivePort` in its profile folder.
 *
 * WebGPU in headless Chromium runs on SwiftShader (its own Vulkan on the CPU) and needs
 * `--enable-unsafe-webgpu`; `--no-sandbox` is needed when running as root, as CI does. Also how the
 * browser tests run Deno subprocesses.
 */
import { childEnv } from "../_child.ts";

/** The repository's root, where the browser tests run their subprocesses. */
export const REPO = new URL("../../", import.meta.url).pathname;

/**
 * Runs `deno ARGS` in the repository's root and returns its stdout; a non-zero exit fails with its output.
 *
 * @param args Arguments after `deno`.
 * @returns What it printed on stdout.
 */
export async function runDeno(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO,
    env: childEnv(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) {
    throw new Error(
      `deno ${args.join(" ")} failed (exit ${out.code}):\n${stdout}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return stdout;
}

/** Where Chromium is, or why there is none. */
export function findChromium(): { path: string } | { missing: string } {
  const candidates = [Deno.env.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  for (const path of candidates) {
    if (!path) continue;
    try {
      if (Deno.statSync(path).isFile) return { path };
    } catch {
      // not here
    }
  }
  return {
    missing:
      "Chromium is not installed (looked for $CHROMIUM, /usr/bin/chromium, /usr/bin/chromium-browser); " +
      "install it with apt-get install -y chromium",
  };
}

/** A running headless Chromium with one page. */
export class Chromium {
  #process: Deno.ChildProcess;
  #profile: string;
  #socket: WebSocket;
  #nextId = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** Messages the page logged (console and uncaught exceptions), for failure reports. */
  readonly log: string[] = [];

  private constructor(process: Deno.ChildProcess, profile: string, socket: WebSocket) {
    this.#process = process;
    this.#profile = profile;
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.id !== undefined) {
        const waiter = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.error) waiter?.reject(new Error(`DevTools: ${message.error.message}`));
        else waiter?.resolve(message.result);
      } else if (message.method === "Runtime.consoleAPICalled") {
        const args = message.params.args.map((a: { value?: unknown; description?: string }) =>
          a.value ?? a.description
        );
        this.log.push(`console.${message.params.type}: ${args.join(" ")}`);
      } else if (message.method === "Runtime.exceptionThrown") {
        const details = message.params.exceptionDetails;
        this.log.push(`exception: ${details.exception?.description ?? details.text}`);
      }
    };
  }

  /**
   * Starts Chromium headless on `about:blank` with WebGPU enabled and connects to its page.
   *
   * @param path The Chromium executable.
   * @param options Window size, and `webgpu: false` to leave WebGPU's software adapter off.
   * @returns The browser.
   */
  static async launch(
    path: string,
    options: { width?: number; height?: number; webgpu?: boolean } = {},
  ): Promise<Chromium> {
    const profile = await Deno.makeTempDir({ prefix: "difflm-chromium-" });
    const process = new Deno.Command(path, {
      args: [
        "--headless=new",
        "--no-sandbox",
        // Without it, headless Chromium on a machine with no GPU has navigator.gpu but no adapter.
        ...(options.webgpu === false ? [] : ["--enable-unsafe-webgpu"]),
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        `--window-size=${options.width ?? 1000},${options.height ?? 900}`,
        "--disable-gpu-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      let port = "";
      for (let i = 0; i < 300 && !port; i++) {
        try {
          port = (await Deno.readTextFile(`${profile}/DevToolsActivePort`)).split("\n")[0]!.trim();
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      if (!port) throw new Error("Chromium did not open its DevTools port within 30 s");
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
        type: string;
        webSocketDebuggerUrl: string;
      }[];
      const page = targets.find((t) => t.type === "page");
      if (!page) throw new Error("Chromium has no page target");
      const socket = new WebSocket(page.webSocketDebuggerUrl);
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () => reject(new Error("Cannot connect to Chromium's DevTools WebSocket"));
      });
      const browser = new Chromium(process, profile, socket);
      await browser.send("Runtime.enable");
      await browser.send("Page.enable");
      return browser;
    } catch (error) {
      process.kill("SIGKILL");
      await process.status;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      throw error;
    }
  }

  /** Sends one DevTools command and waits for its result. */
  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#nextId++;
    this.#socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }));
  }

  /** Navigates the page and waits for its load event. */
  async goto(url: string): Promise<void> {
    await this.send("Page.navigate", { url });
    await this.waitFor("document.readyState === 'complete'", 30_000);
  }

  /** Evaluates an expression in the page (awaiting a promise) and returns its value as JSON. */
  async evaluate<T>(expression: string): Promise<T> {
    const result = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    }) as {
      result: { value?: T };
      exceptionDetails?: { exception?: { description?: string }; text: string };
    };
    if (result.exceptionDetails) {
      const d = result.exceptionDetails;
      throw new Error(`The page threw evaluating ${expression}: ${d.exception?.description ?? d.text}`);
    }
    return result.result.value as T;
  }

  /** Polls an expression until it is truthy; throws after `timeoutMs` with the page's log. */
  async waitFor(expression: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await this.evaluate<boolean>(`!!(${expression})`).catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `Timed out after ${timeoutMs} ms waiting for ${expression}; page log:\n${this.log.join("\n")}`,
    );
  }

  /** A PNG of the page's viewport. */
  async screenshot(): Promise<Uint8Array> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" }) as { data: string };
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  /** Closes the browser and removes its profile. */
  async close(): Promise<void> {
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
    for (const waiter of this.#pending.values()) waiter.reject(new Error("Chromium closed"));
    this.#pending.clear();
    try {
      this.#process.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.#process.status;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}
