/// <reference lib="dom" />
/**
 * The demo page's script (bundled to `web/dist/app.js` by `deno task web`): loads a run by URL, samples
 * on the browser's WebGPU and shows the text denoising step by step, for free generation, a prompt or a
 * template with `_` blanks, and fine-tunes the model on pasted lines. Plain DOM, no framework; every control
 * is a native form element.
 *
 * The page's progress is also readable by scripts (the browser test drives it): `document.body.dataset.state`
 * is one of `starting`, `no-webgpu`, `loading`, `ready`, `sampling`, `training`, `done` or `error`, and
 * `globalThis.difflmDemo` holds the adapter, the last result and its per-step ids, and the last fine-tuning losses.
 *
 * @module
 */
import {
  checkSamplingLimits,
  Engine,
  fetchRun,
  fineTune,
  type GenerateRequest,
  getGpu,
  type Gpu,
  GpuUnavailableError,
  type OpenedRun,
  Sampler,
  type SamplingMethod,
} from "../src/browser.ts";

/** What the page exposes to scripts: the adapter, and the last sampling run. */
interface DemoState {
  adapter: { description: string; vendor: string; architecture: string; fallback: boolean } | null;
  provider: string;
  vocabSize: number | null;
  last: {
    request: GenerateRequest;
    options: { steps: number; length: number; seed: number; method: SamplingMethod };
    ids: number[][];
    texts: string[];
    stepIds: number[][][];
    stepMs: number[];
  } | null;
  tuned: { losses: number[]; stepMs: number[] } | null;
  error: string | null;
}

const demo: DemoState = {
  adapter: null,
  provider: "",
  vocabSize: null,
  last: null,
  tuned: null,
  error: null,
};
(globalThis as { difflmDemo?: DemoState }).difflmDemo = demo;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const support = $<HTMLParagraphElement>("support");
const loadForm = $<HTMLFormElement>("load-form");
const runUrl = $<HTMLInputElement>("run-url");
const sampleForm = $<HTMLFormElement>("sample-form");
const text = $<HTMLInputElement>("text");
const sampleButton = $<HTMLButtonElement>("sample");
const stopButton = $<HTMLButtonElement>("stop");
const progress = $<HTMLParagraphElement>("progress");
const samples = $<HTMLOListElement>("samples");
const history = $<HTMLOListElement>("history");
const tuneForm = $<HTMLFormElement>("tune-form");
const tuneButton = $<HTMLButtonElement>("tune");
const tuneProgress = $<HTMLParagraphElement>("tune-progress");
const tuneLog = $<HTMLOListElement>("tune-log");

let engine: Engine | null = null;
let run: OpenedRun | null = null;
let stopRequested = false;

function setState(state: string): void {
  document.body.dataset.state = state;
}

function show(id: string, value: string): void {
  $(id).textContent = value;
}

function fail(message: string): void {
  demo.error = message;
  support.textContent = message;
  support.hidden = false;
  setState("error");
}

function provider(): string {
  const brands =
    (navigator as Navigator & { userAgentData?: { brands: { brand: string; version: string }[] } })
      .userAgentData?.brands.filter((b) => !/not.?a.?brand/i.test(b.brand)).map((b) =>
        `${b.brand} ${b.version}`
      );
  return `the browser's WebGPU (navigator.gpu${brands?.length ? `, ${brands.join(", ")}` : ""})`;
}

/** Checks for WebGPU and opens the device; says clearly what is missing when it cannot. */
async function startGpu(): Promise<Gpu | null> {
  if (!globalThis.isSecureContext) {
    fail("WebGPU needs a secure context: open this page over https or from http://127.0.0.1 / localhost.");
    setState("no-webgpu");
    return null;
  }
  if (!("gpu" in navigator) || !navigator.gpu) {
    fail(
      "This browser has no WebGPU (navigator.gpu is missing), so the model cannot run here. Use a browser " +
        "with WebGPU: Chrome or Edge 113 or later, Safari 26, or Firefox 141 on Windows; Chromium on Linux " +
        "needs --enable-unsafe-webgpu.",
    );
    setState("no-webgpu");
    return null;
  }
  try {
    return await getGpu();
  } catch (error) {
    // The library's own message is written for Deno (drivers to install); a browser reader needs this one.
    const detail = error instanceof GpuUnavailableError ? "" : ` (${(error as Error).message})`;
    fail(
      `This browser has WebGPU (navigator.gpu) but offers no adapter${detail}, so the model cannot run here. ` +
        "The GPU may be blocklisted or WebGPU turned off: check chrome://gpu (or about:support in Firefox); " +
        "Chromium on Linux needs --enable-unsafe-webgpu.",
    );
    setState("no-webgpu");
    return null;
  }
}

async function loadRun(url: string): Promise<void> {
  if (!engine) return;
  setState("loading");
  sampleButton.disabled = tuneButton.disabled = true;
  progress.textContent = `Loading ${url} …`;
  run?.model.store.dispose();
  run = null;
  try {
    run = await fetchRun(url, { engine });
  } catch (error) {
    fail(
      `${
        (error as Error).message
      }. Serve a trained run at this URL (deno task web serves runs/tiny as run/; ` +
        "see web/README.md for the command that trains it).",
    );
    progress.textContent = "No run loaded.";
    return;
  }
  support.hidden = true;
  demo.error = null;
  const { config } = run.model;
  demo.vocabSize = config.vocabSize;
  show(
    "model",
    `${
      run.model.store.count.toLocaleString("en")
    } parameters (V=${config.vocabSize} E=${config.embeddingDim} ` +
      `D=${config.modelDim} layers=${config.layers} heads=${config.heads})`,
  );
  progress.textContent = "Ready.";
  sampleButton.disabled = tuneButton.disabled = false;
  setState("ready");
}

function readInt(id: string, min: number, max: number): number {
  const input = $<HTMLInputElement>(id);
  const value = Number(input.value);
  if (!Number.isInteger(value) || value < min || value > max) {
    input.focus();
    throw new RangeError(
      `${input.labels?.[0]?.textContent?.trim() ?? id} must be an integer in [${min}, ${max}]`,
    );
  }
  return value;
}

function requestOf(mode: string, count: number): GenerateRequest {
  const value = text.value.trim();
  if (mode === "prompt") {
    if (!value) throw new TypeError("Type a prompt, or choose free generation");
    return { count, prompt: value };
  }
  if (mode === "template") {
    if (!value.split(/\s+/).includes("_")) throw new TypeError("A template needs at least one _ blank");
    return { count, template: value };
  }
  return { count };
}

function renderTexts(texts: string[]): void {
  samples.replaceChildren(...texts.map((t) => {
    const li = document.createElement("li");
    li.textContent = t || "(empty)";
    return li;
  }));
}

async function sample(): Promise<void> {
  if (!run) return;
  const mode = (sampleForm.elements.namedItem("mode") as RadioNodeList).value;
  let request: GenerateRequest, steps: number, length: number, seed: number;
  const method = ($<HTMLSelectElement>("method").value) as SamplingMethod;
  try {
    steps = readInt("steps", 1, 2000);
    length = readInt("length", 1, 512);
    seed = readInt("seed", 0, 2 ** 31 - 1);
    request = requestOf(mode, readInt("count", 1, 64));
    checkSamplingLimits(run.model, { count: request.count!, length });
  } catch (error) {
    progress.textContent = (error as Error).message;
    return;
  }
  const { model, tokenizer } = run;
  const sampler = new Sampler(model, { tokenizer, steps, length, seed, method });
  const stepIds: number[][][] = [];
  const stepMs: number[] = [];
  history.replaceChildren();
  setState("sampling");
  sampleButton.disabled = tuneButton.disabled = true;
  stopButton.disabled = false;
  stopRequested = false;
  const started = performance.now();
  let previous = started;
  try {
    const result = await sampler.generate({
      ...request,
      onStep: ({ step, t, ids, texts }) => {
        const now = performance.now();
        stepMs.push(now - previous);
        previous = now;
        stepIds.push(ids.map((row) => [...row]));
        renderTexts(texts ?? []);
        const li = document.createElement("li");
        li.textContent = `t=${t.toFixed(3)}  ${(texts ?? []).join("  |  ")}`;
        history.append(li);
        progress.textContent = `Step ${step} of ${steps} (t = ${t.toFixed(3)}), ${
          stepMs.at(-1)!.toFixed(0)
        } ms`;
        showTiming(stepMs);
        if (stopRequested) throw new StopError();
      },
    });
    renderTexts(result.texts ?? []);
    const total = (performance.now() - started) / 1000;
    progress.textContent = `Done: ${steps} steps in ${total.toFixed(1)} s.`;
    demo.last = {
      request,
      options: { steps, length, seed, method },
      ids: result.ids.map((row) => [...row]),
      texts: result.texts ?? [],
      stepIds,
      stepMs,
    };
    setState("done");
  } catch (error) {
    if (error instanceof StopError) {
      progress.textContent = `Stopped after ${stepIds.length} of ${steps} steps.`;
      setState("ready");
    } else {
      fail(`Sampling failed: ${(error as Error).message}`);
    }
  } finally {
    sampleButton.disabled = tuneButton.disabled = false;
    stopButton.disabled = true;
  }
}

class StopError extends Error {}

async function tune(): Promise<void> {
  if (!run) return;
  let steps: number, batch: number, seed: number;
  const lr = Number($<HTMLInputElement>("tune-lr").value);
  try {
    steps = readInt("tune-steps", 1, 1000);
    batch = readInt("tune-batch", 1, 256);
    seed = readInt("seed", 0, 2 ** 31 - 1);
  } catch (error) {
    tuneProgress.textContent = (error as Error).message;
    return;
  }
  setState("training");
  sampleButton.disabled = tuneButton.disabled = true;
  tuneLog.replaceChildren();
  const losses: number[] = [];
  const stepMs: number[] = [];
  let previous = performance.now();
  try {
    await fineTune(run, $<HTMLTextAreaElement>("tune-text").value, {
      steps,
      batch,
      lr,
      seed,
      onStep: (m) => {
        const now = performance.now();
        stepMs.push(now - previous);
        previous = now;
        losses.push(m.loss);
        const li = document.createElement("li");
        li.textContent = `loss ${m.loss.toFixed(4)} (mse ${m.mse.toFixed(4)}, ce ${m.ce.toFixed(4)}), ` +
          `accuracy ${m.accuracy.toFixed(3)}, ${stepMs.at(-1)!.toFixed(0)} ms`;
        tuneLog.append(li);
        tuneProgress.textContent = `Training step ${m.step} of ${steps}`;
      },
    });
    tuneProgress.textContent =
      `Trained ${steps} steps: loss ${losses[0]!.toFixed(3)} → ${losses.at(-1)!.toFixed(3)}. ` +
      "Samples now use the new weights; Load run restores the run's.";
    demo.tuned = { losses, stepMs };
    setState("done");
  } catch (error) {
    tuneProgress.textContent = (error as Error).message;
    if (error instanceof RangeError) setState("ready");
    else fail(`Fine-tuning failed: ${(error as Error).message}`);
  } finally {
    sampleButton.disabled = tuneButton.disabled = false;
  }
}

function showTiming(stepMs: number[]): void {
  const later = stepMs.slice(1);
  const mean = later.length ? later.reduce((a, b) => a + b, 0) / later.length : stepMs[0]!;
  show(
    "step-time",
    `${mean.toFixed(0)} ms per step` +
      (later.length ? ` (the first took ${stepMs[0]!.toFixed(0)} ms: it compiles the kernels)` : ""),
  );
}

function syncMode(): void {
  const mode = (sampleForm.elements.namedItem("mode") as RadioNodeList).value;
  const label = $("text-label");
  text.disabled = mode === "free";
  label.textContent = mode === "template" ? "Template (words and _ blanks)" : "Prompt";
  if (mode === "template" && !text.value.includes("_")) text.value = "the _ _ fox sees a _ .";
}

async function main(): Promise<void> {
  setState("starting");
  demo.provider = provider();
  show("provider", demo.provider);
  const params = new URLSearchParams(location.search);
  runUrl.value = params.get("run") ?? runUrl.value;
  sampleForm.addEventListener("change", syncMode);
  syncMode();
  loadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void loadRun(runUrl.value);
  });
  sampleForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void sample();
  });
  stopButton.addEventListener("click", () => stopRequested = true);
  tuneForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void tune();
  });
  const gpu = await startGpu();
  if (!gpu) {
    show("adapter", "none");
    sampleButton.disabled = tuneButton.disabled = true;
    return;
  }
  const info = gpu.adapter.info;
  demo.adapter = {
    description: gpu.description,
    vendor: info.vendor,
    architecture: info.architecture,
    fallback: gpu.fallback,
  };
  show(
    "adapter",
    [info.vendor, info.architecture, info.description].filter(Boolean).join(" / ") +
      (gpu.fallback ? " (software fallback adapter)" : ""),
  );
  engine = await Engine.create();
  demo.provider =
    `${provider()}; provider "${gpu.provider}" (the runtime's own WebGPU), precision ${engine.precision}`;
  show("provider", demo.provider);
  await loadRun(runUrl.value);
}

main().catch((error) => fail(`The page failed to start: ${(error as Error).message}`));
