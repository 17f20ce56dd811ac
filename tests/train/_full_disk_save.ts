/**
 * Saves a checkpoint of step 5 into the run directory given, then tries step 6 with the next generation's
 * optimiser file pointing at /dev/full (every write fails with ENOSPC), and prints the error's message.
 * Run with -A by checkpoint_test.ts: Deno asks for all permissions to write a device file.
 */
import { Diffusion } from "../../src/diffusion/diffusion.ts";
import { DEFAULT_TRAIN } from "../../src/diffusion/config.ts";
import { Engine } from "../../src/tensor/engine.ts";
import { CheckpointWriter } from "../../src/train/checkpoint.ts";

const dir = Deno.args[0]!;
const engine = await Engine.create();
const model = Diffusion.create(
  engine,
  { vocabSize: 11, embeddingDim: 8, modelDim: 16, layers: 1, heads: 2 },
  {
    seed: 0,
  },
);
const config = {
  model: model.config,
  train: { ...DEFAULT_TRAIN, batch: 4, crop: 8 },
  tokenizer: { file: "tokenizer.model", vocabSize: 11 },
  seed: 0,
  corpus: null,
  preset: "tiny",
  heldOut: { fraction: 0.01, seed: 0 },
};
const state = (step: number) => ({ step, epoch: 0, tokens: step, random: 1, seedCounter: step, data: null });
using writer = await CheckpointWriter.open(dir);
await writer.save({ model, config, state: state(5) });
await Deno.mkdir(`${dir}/checkpoints/2`);
await Deno.symlink("/dev/full", `${dir}/checkpoints/2/optimizer.safetensors`);
try {
  await writer.save({ model, config, state: state(6) });
  console.log("saved");
} catch (e) {
  console.log((e as Error).message);
}
