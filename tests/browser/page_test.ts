/**
 * The demo page in real headless Chromium (WebGPU on SwiftShader): a tiny run trained here with the CLI is
 * served with the page built by `deno task web:build`, and the page is driven through the DevTools
 * protocol as a reader would use it (fill the form, press Sample; _drive_page.ts, in its own process with
 * network access to 127.0.0.1 only). Checks that the page says so where there is no WebGPU adapter; that
 * sampling ran on the page's WebGPU and finished; that the tokens come from the model's vocabulary and keep
 * the template's words and the prompt; that the browser draws the same tokens as Deno from the same weights
 * and seed, at every step; and that fine-tuning in the tab on pasted lines takes the same steps as under
 * Deno (losses to float tolerance).
 *
 * Skipped with a printed reason when Chromium is missing (.ci/run installs it) or Deno has no WebGPU
 * adapter. `DIFFLM_WEB_SCREENSHOT=FILE` saves a screenshot of the page after the template is filled;
 * `DIFFLM_WEB_RUN=DIR` uses an existing run instead of training one (for the README's screenshot).
 */
import assert from "node:assert/strict";
import { ignore as noAdapter } from "../_gpu.ts";
import { findChromium, runDeno } from "./_chromium.ts";
import type { PageDemo, PageRequest, TuneRequest } from "./_drive_page.ts";
import { loadRun } from "../../src/train/checkpoint.ts";
import { Sampler } from "../../src/diffusion/sampler.ts";
import { fineTune } from "../../src/browser.ts";
import { assertClose } from "../_check.ts";

const chromium = findChromium();
const ignore = noAdapter || "missing" in chromium;
if ("missing" in chromium) console.warn(`skipping the browser test: ${chromium.missing}`);
else if (noAdapter) console.warn("skipping the browser test: Deno has no WebGPU adapter to compare with");

/** SwiftShader compiles pipelines slowly (~30 s before the first step): a tiny model and few steps. */
const TINY_RUN = [
  ..."--batch 4 --crop 12 --model-dim 32 --embedding-dim 16 --layers 1 --heads 2 --vocab 80".split(" "),
  ..."--steps 3 --samples 0 --log-every 1".split(" "),
];
const SAMPLING = { steps: 4, length: 12, count: 2, seed: 7 };
const TEMPLATE = "the _ fox sees _ _ .";
const PROMPT = "the small";
const TUNE: TuneRequest = {
  mode: "tune",
  text: "the red fox sees a dog .\nthe old cats see two birds near the river .",
  steps: 2,
  batch: 2,
  lr: 1e-3,
  seed: 3,
};

Deno.test(
  { name: "web demo: samples, continues a prompt, fills a template and fine-tunes in Chromium", ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "difflm-web-" });
    const run = Deno.env.get("DIFFLM_WEB_RUN") ?? `${root}/run`;
    try {
      if (!Deno.env.get("DIFFLM_WEB_RUN")) {
        await runDeno([
          "run",
          "-A",
          "cli.ts",
          "train",
          ...TINY_RUN,
          "--ckpt",
          run,
        ]);
      }
      await runDeno(["task", "web:build"]);
      const requests: PageRequest[] = [
        { mode: "template", text: TEMPLATE, ...SAMPLING },
        { mode: "prompt", text: PROMPT, ...SAMPLING },
        { mode: "free", text: "", ...SAMPLING },
      ];
      const screenshot = Deno.env.get("DIFFLM_WEB_SCREENSHOT");
      const output = await runDeno([
        "run",
        "--allow-net=127.0.0.1",
        "--allow-read",
        "--allow-write",
        `--allow-run=${(chromium as { path: string }).path}`,
        "--allow-env",
        "tests/browser/_drive_page.ts",
        (chromium as { path: string }).path,
        run,
        JSON.stringify([...requests, TUNE]),
        ...(screenshot ? [screenshot] : []),
      ]);
      const { noWebgpu, results } = JSON.parse(output.trim().split("\n").at(-1)!) as {
        noWebgpu: { state: string; message: string };
        results: PageDemo[];
      };
      const [filled, continued, free, tuned] = results;
      assert.equal(noWebgpu.state, "no-webgpu", `without an adapter the page said: ${noWebgpu.message}`);
      assert.match(noWebgpu.message, /offers no adapter, so the model cannot run here/);

      // The same run and requests under Deno: the page must draw the same tokens at every step.
      const { model, tokenizer, config } = await loadRun(run);
      const V = model.config.vocabSize;
      const sampler = () => new Sampler(model, { ...SAMPLING, tokenizer });
      const sameTokens = async (page: PageDemo, request: PageRequest) => {
        const steps: number[][][] = [];
        const reference = await sampler().generate({
          count: SAMPLING.count,
          ...(request.mode === "template" ? { template: request.text } : {}),
          ...(request.mode === "prompt" ? { prompt: request.text } : {}),
          onStep: ({ ids }) => void steps.push(ids.map((row) => [...row])),
        });
        assert.equal(
          page.last!.stepIds.length,
          SAMPLING.steps,
          `${request.mode}: the page did not show every step`,
        );
        steps.forEach((ids, step) => {
          assert.deepEqual(
            page.last!.stepIds[step],
            ids,
            `${request.mode}: step ${step + 1} differs from Deno's`,
          );
        });
        assert.deepEqual(
          page.last!.ids,
          reference.ids.map((row) => [...row]),
          `${request.mode}: final tokens differ`,
        );
      };

      try {
        assert.ok(filled!.adapter, "the page reported no WebGPU adapter");
        const given = sampler().conditioning({ template: TEMPLATE, count: SAMPLING.count });
        for (const [b, row] of filled!.last!.ids.entries()) {
          assert.equal(row.length, SAMPLING.length);
          for (const [i, id] of row.entries()) {
            assert.ok(
              Number.isInteger(id) && id >= 0 && id < V,
              `token ${id} is outside the vocabulary of ${V}`,
            );
            if (given.mask[b * SAMPLING.length + i]) {
              assert.equal(id, given.ids[b * SAMPLING.length + i], `the template's token ${i} was not kept`);
            }
          }
          const text = filled!.last!.texts[b]!;
          assert.equal(text, tokenizer.decode(row));
          assert.ok(text.includes("fox sees"), `"${text}" lost the template's words`);
        }
        const promptIds = tokenizer.encode(PROMPT);
        for (const row of continued!.last!.ids) assert.deepEqual(row.slice(0, promptIds.length), promptIds);
        for (const text of continued!.last!.texts) {
          assert.ok(
            text.startsWith(PROMPT),
            `"${text}" lost the prompt`,
          );
        }
        await sameTokens(filled!, requests[0]!);
        await sameTokens(continued!, requests[1]!);
        await sameTokens(free!, requests[2]!);
        // Fine-tuning in the tab: the same steps as fineTune under Deno, to float tolerance (sin, cos and
        // log differ slightly between the browser's WGSL and Deno's).
        const losses = (await fineTune({ model, tokenizer, config }, TUNE.text, TUNE)).map((m) => m.loss);
        assert.ok(losses.every(Number.isFinite), `Deno's fine-tuning losses: ${losses}`);
        assertClose(tuned!.tuned!.losses, losses, { atol: 1e-3, rtol: 1e-3, name: "fine-tuning losses" });
      } finally {
        model.store.dispose();
      }
      const ms = (list: number[]) => list.map((v) => v.toFixed(0)).join(", ");
      console.log(
        `browser adapter ${filled!.adapter!.vendor}/${
          filled!.adapter!.architecture
        }: steps of the first request ` +
          `${ms(filled!.last!.stepMs)} ms (the first compiles the kernels), of the last ${
            ms(free!.last!.stepMs)
          } ms; fine-tuning steps ${ms(tuned!.tuned!.stepMs)} ms`,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);
