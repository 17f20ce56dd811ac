/**
 * The browser entry (src/browser.ts) under Deno: a run opened from bytes or fetched by URL (a flat folder,
 * or a run directory whose checkpoint.json names the committed generation) samples as the model it was
 * saved from; bad files give one message naming the file; the limits check names the buffer and the limit.
 */
import assert from "node:assert/strict";
import { ignore, testEngine } from "./_gpu.ts";
import {
  checkSamplingLimits,
  Diffusion,
  type Engine,
  fetchRun,
  modelConfig,
  openRun,
  Sampler,
  Tokenizer,
} from "../src/browser.ts";
import { encodeSafetensors, type HostTensor } from "../src/train/safetensors.ts";
import { trainTokenizer } from "../src/tokenizer/trainer.ts";
import { builtinCorpus } from "../src/data/grammar.ts";

const MODEL = { embeddingDim: 8, modelDim: 16, layers: 1, heads: 2, dropout: 0 };

/** A tiny tokenizer and model, and their files as a run would hold them. */
async function tinyRun(engine: Engine) {
  const tokenizerBytes = await trainTokenizer({ corpus: builtinCorpus({ lines: 300 }), vocabSize: 60 });
  const tokenizer = Tokenizer.fromBytes(tokenizerBytes);
  const model = Diffusion.create(engine, { ...MODEL, vocabSize: tokenizer.vocabSize }, { seed: 5 });
  const params = await model.store.read("params");
  const weights = new Map<string, HostTensor>();
  for (const [name, data] of params) weights.set(name, { shape: [...model.store.shapeOf(name)], data });
  const config = {
    model: model.config,
    train: {},
    tokenizer: { file: "tokenizer.model", vocabSize: tokenizer.vocabSize },
  };
  return {
    model,
    tokenizer,
    files: {
      "config.json": new TextEncoder().encode(JSON.stringify(config)),
      "tokenizer.model": tokenizerBytes,
      "model.safetensors": encodeSafetensors(weights),
    } as Record<string, Uint8Array>,
  };
}

/** A fetch over an in-memory folder at https://example.org/run/ that records what was asked. */
function folderFetch(files: Record<string, Uint8Array>, asked: string[]): typeof fetch {
  return (input: string | URL | Request) => {
    const url = String(input instanceof Request ? input.url : input);
    asked.push(url);
    const name = url.replace("https://example.org/run/", "");
    const body = files[name];
    return Promise.resolve(
      body ? new Response(body.slice()) : new Response("not found", { status: 404, statusText: "Not Found" }),
    );
  };
}

const sample = (model: Diffusion, tokenizer: Tokenizer) =>
  new Sampler(model, { tokenizer, steps: 3, length: 8, seed: 4 }).generate({ count: 2 });

Deno.test(
  { name: "browser: a run fetched by URL samples as the model it was saved from", ignore },
  async () => {
    const engine = await testEngine();
    const { model, tokenizer, files } = await tinyRun(engine);
    const expected = await sample(model, tokenizer);
    for (const layout of ["flat", "run directory"] as const) {
      const served = layout === "flat" ? files : {
        "config.json": files["config.json"]!,
        "tokenizer.model": files["tokenizer.model"]!,
        "checkpoint.json": new TextEncoder().encode(
          JSON.stringify({ generation: 3, step: 10, files: { "model.safetensors": 1, "state.json": 1 } }),
        ),
        "checkpoints/3/model.safetensors": files["model.safetensors"]!,
      };
      const asked: string[] = [];
      const run = await fetchRun("https://example.org/run", { engine, fetch: folderFetch(served, asked) });
      try {
        assert.equal(
          run.weights,
          layout === "flat"
            ? "https://example.org/run/model.safetensors"
            : "https://example.org/run/checkpoints/3/model.safetensors",
        );
        assert.deepEqual(await sample(run.model, run.tokenizer), expected, layout);
        assert.ok(!asked.some((u) => u.includes("optimizer")), "sampling fetched the optimiser state");
      } finally {
        run.model.store.dispose();
      }
    }
    model.store.dispose();
  },
);

Deno.test({ name: "browser: bad run files give one message naming the file", ignore }, async () => {
  const engine = await testEngine();
  const { model, files } = await tinyRun(engine);
  model.store.dispose();
  const asked: string[] = [];
  const { "model.safetensors": _, ...noWeights } = files;
  await assert.rejects(
    fetchRun("https://example.org/run/", { engine, fetch: folderFetch(noWeights, asked) }),
    { message: "Cannot fetch https://example.org/run/model.safetensors: HTTP 404 Not Found" },
  );
  const base = { weights: files["model.safetensors"]!, tokenizer: files["tokenizer.model"]! };
  assert.throws(() => openRun(engine, { ...base, config: "{" }, "runs/x"), {
    name: "SyntaxError",
    message: /^Cannot read run config "runs\/x\/config.json": invalid JSON/,
  });
  const badRecord = { ...files, "checkpoint.json": new TextEncoder().encode('{"files": {}}') };
  await assert.rejects(
    fetchRun("https://example.org/run/", { engine, fetch: folderFetch(badRecord, asked) }),
    {
      name: "TypeError",
      message:
        'Cannot read checkpoint record "https://example.org/run/checkpoint.json": "generation" or "files" is missing',
    },
  );
  const config = JSON.parse(new TextDecoder().decode(files["config.json"]));
  assert.throws(
    () =>
      openRun(
        engine,
        { ...base, config: { ...config, model: { ...config.model, vocabSize: 61 } } },
        "runs/x",
      ),
    { name: "TypeError", message: /^Cannot open runs\/x: the tokenizer has 60 pieces, the model 61$/ },
  );
  assert.throws(
    () =>
      openRun(engine, { ...base, config: { ...config, model: { ...config.model, modelDim: 32 } } }, "runs/x"),
    {
      name: "TypeError",
      message: /^Cannot load runs\/x\/model.safetensors: ".*" has shape \[\d+,\d+\], expected \[\d+,\d+\]$/,
    },
  );
});

Deno.test("browser: checkSamplingLimits names the buffer and the limit before any dispatch", () => {
  const limits = { maxStorageBufferBindingSize: 1 << 20, maxBufferSize: 1 << 22 };
  const engine = { runtime: { gpu: { limits } } } as unknown as Engine;
  const model = new Diffusion(engine, modelConfig({ ...MODEL, vocabSize: 1000 }));
  checkSamplingLimits(model, { count: 4, length: 16 }); // 4·16·1000·4 bytes = 256 KB of logits: fits
  assert.throws(() => checkSamplingLimits(model, { count: 8, length: 64 }), {
    name: "RangeError",
    message: "Cannot sample 8×64 tokens: the logits (B·L·V) needs 2048000 bytes, over the device's " +
      "maxStorageBufferBindingSize 1048576",
  });
  const wide = new Diffusion(engine, modelConfig({ ...MODEL, vocabSize: 40000 })); // a 1.28 MB table
  assert.throws(() => checkSamplingLimits(wide, { count: 1, length: 1 }), {
    name: "RangeError",
    message: 'Cannot load the model: parameter "embedding.weight" has 1280000 bytes, over the device\'s ' +
      "maxStorageBufferBindingSize 1048576",
  });
  const small = {
    runtime: { gpu: { limits: { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 1 << 20 } } },
  };
  assert.throws(
    () =>
      checkSamplingLimits(new Diffusion(small as unknown as Engine, wide.config), { count: 1, length: 1 }),
    {
      name: "RangeError",
      message:
        /^Cannot load the model: its parameter arena of \d+ bytes is over the device's maxBufferSize 1048576$/,
    },
  );
});
