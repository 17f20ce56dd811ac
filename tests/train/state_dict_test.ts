/**
 * config.json and state.json as read by src/train/state_dict.ts: each damaged file is named in the message
 * with the field at fault, never blamed on another file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_TRAIN } from "../../src/diffusion/config.ts";
import { loadCheckpoint } from "../../src/train/checkpoint.ts";
import {
  checkpointFilePath,
  decodeCheckpointManifest,
  decodeRunConfig,
  decodeRunState,
  samplingWeightsFile,
} from "../../src/train/state_dict.ts";

const GOOD_CONFIG = {
  model: { vocabSize: 11, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2 },
  train: DEFAULT_TRAIN,
  tokenizer: { file: "tokenizer.model", vocabSize: 11 },
  seed: 0,
  corpus: null,
  preset: "tiny",
};
const GOOD_STATE = { step: 3, epoch: 0, tokens: 96, random: 4294967295, seedCounter: 9, data: null };

Deno.test('config.json with "model": "x" is blamed on config.json, not the weights', () => {
  const cases: [unknown, RegExp, ErrorConstructor][] = [
    [{ ...GOOD_CONFIG, model: "x" }, /"model" is "x", expected an object/, TypeError],
    [{ ...GOOD_CONFIG, model: [16] }, /"model" is \[16\], expected an object/, TypeError],
    [{ ...GOOD_CONFIG, train: undefined }, /"train" is missing, expected an object/, TypeError],
    [
      { ...GOOD_CONFIG, tokenizer: { file: "../x", vocabSize: 11 } },
      /"tokenizer.file" is "..\/x"/,
      TypeError,
    ],
    [
      { ...GOOD_CONFIG, tokenizer: { file: "t.model", vocabSize: "11" } },
      /"tokenizer.vocabSize" is "11"/,
      TypeError,
    ],
    [
      { ...GOOD_CONFIG, model: { ...GOOD_CONFIG.model, heads: 3 } },
      /modelDim 16 is not a multiple of heads 3/,
      RangeError,
    ],
    [
      { ...GOOD_CONFIG, model: { ...GOOD_CONFIG.model, layers: "2" } },
      /layers is 2, expected a positive integer/,
      RangeError,
    ],
    [null, /it holds null, expected an object/, TypeError],
  ];
  for (const [config, message, Class] of cases) {
    assert.throws(() => decodeRunConfig(JSON.stringify(config), "runs/a/config.json"), (e: Error) => {
      assert.ok(e instanceof Class, `${e}`);
      assert.match(e.message, /^Cannot read run config "runs\/a\/config\.json": /);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.throws(() => decodeRunConfig("{", "runs/a/config.json"), /config\.json": invalid JSON/);
  const config = decodeRunConfig(new TextEncoder().encode(JSON.stringify(GOOD_CONFIG)), "c.json");
  assert.equal(config.model.modelDim, 16);
  assert.equal(config.model.dropout, 0.1, "fields left out take the defaults");
});

Deno.test("state.json holding null or lacking a field is named with the field", () => {
  const cases: [unknown, RegExp][] = [
    [null, /it holds null, expected an object/],
    [[], /it holds \[\], expected an object/],
    [{ ...GOOD_STATE, step: undefined }, /"step" is missing, expected an integer/],
    [{ ...GOOD_STATE, tokens: -1 }, /"tokens" is -1/],
    [{ ...GOOD_STATE, epoch: "1" }, /"epoch" is "1"/],
    [{ ...GOOD_STATE, random: 2 ** 32 }, /"random" is 4294967296, expected an integer in \[0, 4294967295\]/],
    [{ ...GOOD_STATE, data: undefined }, /"data" is missing/],
  ];
  for (const [state, message] of cases) {
    assert.throws(() => decodeRunState(JSON.stringify(state), "runs/a/state.json"), (e: Error) => {
      assert.ok(e instanceof TypeError, `${e}`);
      assert.match(e.message, /^Cannot read training state "runs\/a\/state\.json": /);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.deepEqual(decodeRunState(JSON.stringify(GOOD_STATE), "s.json"), GOOD_STATE);
});

Deno.test("loadCheckpoint names config.json when its model is not an object", async () => {
  const dir = await Deno.makeTempDir({ prefix: "difflm-config-" });
  try {
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ ...GOOD_CONFIG, model: "x" }));
    await assert.rejects(
      () => loadCheckpoint(dir),
      new RegExp(`Cannot read run config "${join(dir, "config.json")}": "model" is "x"`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkpoint.json lacking a field is named, and a good one gives the committed files' paths", () => {
  const good = { generation: 3, step: 12, files: { "model.safetensors": 10, "state.json": 5 } };
  const cases: [unknown, RegExp][] = [
    [null, /it holds null, expected an object/],
    [{ ...good, generation: 0 }, /"generation" is 0, expected a positive integer/],
    [{ ...good, step: undefined }, /"step" is missing/],
    [{ ...good, files: { "model.safetensors": 10 } }, /"files" must list model\.safetensors and state\.json/],
    [{ ...good, files: { ...good.files, "../x": 1 } }, /"files" lists "..\/x" of 1 bytes/],
  ];
  for (const [record, message] of cases) {
    assert.throws(
      () => decodeCheckpointManifest(JSON.stringify(record), "run/checkpoint.json"),
      (e: Error) => {
        assert.ok(e instanceof TypeError, `${e}`);
        assert.match(e.message, /^Cannot read checkpoint record "run\/checkpoint\.json": /);
        assert.match(e.message, message);
        return true;
      },
    );
  }
  const manifest = decodeCheckpointManifest(JSON.stringify(good), "run/checkpoint.json");
  assert.equal(
    checkpointFilePath(manifest, samplingWeightsFile(manifest)),
    "checkpoints/3/model.safetensors",
  );
  manifest.files["average.safetensors"] = 10;
  assert.equal(
    checkpointFilePath(manifest, samplingWeightsFile(manifest)),
    "checkpoints/3/average.safetensors",
  );
});
