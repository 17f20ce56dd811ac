/**
 * The command line end to end, in subprocesses as a user runs it: a tiny run trained inside the test,
 * sampled and evaluated; resuming after a kill; permission and input errors as one line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ignore } from "../_gpu.ts";
import { decodeSafetensors } from "../../src/train/safetensors.ts";
import { loadRun, readCheckpointManifest } from "../../src/train/checkpoint.ts";
import { childEnv, pollUntil, spawnDeno } from "../_child.ts";
import { engineFlags, UsageError } from "../../src/cli/_args.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const TINY = [
  "--batch",
  "4",
  "--crop",
  "12",
  "--model-dim",
  "32",
  "--embedding-dim",
  "16",
  "--layers",
  "1",
  "--heads",
  "2",
  "--vocab",
  "80",
  "--samples",
  "1",
  "--sample-steps",
  "3",
  "--log-every",
  "1",
];

async function cli(
  args: string[],
  permissions: string[] = ["-A"],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, CLI, ...args],
    env: childEnv(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** The path of a file of the run's committed checkpoint. */
async function committed(dir: string, name: string): Promise<string> {
  const manifest = await readCheckpointManifest(dir);
  assert.ok(manifest, `${dir} has no committed checkpoint`);
  return join(dir, "checkpoints", String(manifest.generation), name);
}

/** The step of the run's committed checkpoint. */
async function committedStep(dir: string): Promise<number | undefined> {
  return (await readCheckpointManifest(dir))?.step;
}

/** Copies a run directory with its checkpoints. */
async function copyRun(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyRun(join(from, entry.name), join(to, entry.name));
    else await Deno.copyFile(join(from, entry.name), join(to, entry.name));
  }
}

const root = await Deno.makeTempDir({ prefix: "difflm-cli-" });
const run = join(root, "run");

Deno.test(
  { name: "cli.ts train writes a complete run directory with scoped permissions", ignore },
  async () => {
    const result = await cli(["train", ...TINY, "--steps", "3", "--ckpt", run], [
      `--allow-read=${root}`,
      `--allow-write=${root}`,
    ]);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /samples at step 0:/);
    assert.match(result.stdout, /checkpoint: .* \(step 3/);
    for (const file of ["config.json", "checkpoint.json", "tokenizer.model"]) {
      assert.ok((await Deno.stat(join(run, file))).size > 0, file);
    }
    for (const file of ["model.safetensors", "optimizer.safetensors", "state.json"]) {
      assert.ok((await Deno.stat(await committed(run, file))).size > 0, file);
    }
    assert.match(await Deno.readTextFile(join(run, "loss.svg")), /^<svg/);
    const log = (await Deno.readTextFile(join(run, "log.jsonl"))).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(log.map((r) => r.step), [1, 2, 3]);
    for (const key of ["step", "loss", "mse", "ce", "accuracy", "lr", "tokens_per_s"]) {
      assert.ok(log.every((r) => typeof r[key] === "number"), key);
    }
    const model = decodeSafetensors(await Deno.readFile(await committed(run, "model.safetensors")));
    assert.deepEqual(model.tensors.get("estimator.encoder_layers.0.attention.w_q.weight")?.shape, [32, 32]);
    assert.deepEqual(model.tensors.get("estimator.encoder_layers.0.ffn.0.weight")?.shape, [128, 32]);
    assert.equal(JSON.parse(await Deno.readTextFile(await committed(run, "state.json"))).step, 3);
  },
);

Deno.test({ name: "cli.ts sample and eval run on the trained checkpoint", ignore }, async () => {
  const sample = await cli([
    "sample",
    "--ckpt",
    run,
    "--n",
    "2",
    "--steps",
    "3",
    "--template",
    "the _ dog _ .",
  ], [
    `--allow-read=${root}`,
  ]);
  assert.equal(sample.code, 0, sample.stderr);
  assert.equal(sample.stdout.trim().split("\n").length, 2);
  const live = await cli([
    "sample",
    "--ckpt",
    run,
    "--n",
    "1",
    "--steps",
    "20",
    "--show-steps",
    "--method",
    "ddim",
  ]);
  assert.equal(live.code, 0, live.stderr);
  assert.match(live.stdout, /step 20\/20/);
  const evaluation = await cli(["eval", "--ckpt", run, "--n", "4", "--steps", "3", "--lines", "8"], [
    `--allow-read=${root}`,
  ]);
  assert.equal(evaluation.code, 0, evaluation.stderr);
  const report = JSON.parse(evaluation.stdout.trim().split("\n").at(-1)!);
  assert.equal(report.step, 3);
  assert.equal(report.held_out.length, 3);
  assert.ok(report.grammatical >= 0 && report.grammatical <= 1);
  assert.ok(report.infilling_grammatical >= report.infilling - 1e-9 && report.infilling_grammatical <= 1);
  const failed = Object.values(report.failures as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.equal(failed, Math.round(report.samples * (1 - report.grammatical)));
  assert.equal(report.samples, 4);
});

Deno.test({
  name: "a killed run resumes from its last checkpoint with the saved weights and moments",
  ignore,
}, async () => {
  const dir = join(root, "killed");
  const child = spawnDeno(
    ["run", "-A", CLI, "train", ...TINY, "--steps", "100000", "--ckpt-every", "2", "--ckpt", dir],
    "null",
  );
  const step = await pollUntil(async () => await committedStep(dir) ?? 0, (step) => step >= 4, 200);
  child.kill("SIGKILL");
  await child.status;
  assert.ok(step >= 4, `no checkpoint past step 4 appeared (step ${step})`);
  // The kill may have come between a checkpoint's files and its commit: the committed one is what resumes.
  const saved = { step: (await committedStep(dir))! };
  const weights = await Deno.readFile(await committed(dir, "model.safetensors"));
  const moments = await Deno.readFile(await committed(dir, "optimizer.safetensors"));
  // Resuming with the saved step as the target trains nothing and leaves the checkpoint as saved.
  const again = await cli(["train", "--ckpt", dir, "--steps", String(saved.step), "--samples", "0"]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`resuming .* at step ${saved.step}`));
  assert.equal(await committedStep(dir), saved.step);
  assert.deepEqual(await Deno.readFile(await committed(dir, "model.safetensors")), weights);
  assert.deepEqual(await Deno.readFile(await committed(dir, "optimizer.safetensors")), moments);
  // Continuing trains on from there.
  const more = await cli(["train", "--ckpt", dir, "--steps", String(saved.step + 1), "--samples", "0"]);
  assert.equal(more.code, 0, more.stderr);
  assert.equal(await committedStep(dir), saved.step + 1);
});

Deno.test(
  { name: "resuming is exact: a resumed step equals the step the original run took", ignore },
  async () => {
    const a = join(root, "exact-a"), b = join(root, "exact-b");
    assert.equal((await cli(["train", ...TINY, "--steps", "2", "--ckpt", a, "--samples", "0"])).code, 0);
    await copyRun(a, b);
    assert.equal((await cli(["train", "--ckpt", a, "--steps", "3", "--samples", "0"])).code, 0);
    assert.equal((await cli(["train", "--ckpt", b, "--steps", "3", "--samples", "0"])).code, 0);
    assert.deepEqual(
      await Deno.readFile(await committed(a, "model.safetensors")),
      await Deno.readFile(await committed(b, "model.safetensors")),
    );
  },
);

Deno.test(
  {
    name: "--ema keeps an average of the weights: saved, resumed exactly, and what loadRun samples with",
    ignore,
  },
  async () => {
    const a = join(root, "ema-a"), b = join(root, "ema-b");
    assert.equal(
      (await cli(["train", ...TINY, "--ema", "0.5", "--steps", "2", "--ckpt", a, "--samples", "0"])).code,
      0,
    );
    await copyRun(a, b);
    assert.equal((await cli(["train", "--ckpt", a, "--steps", "4", "--samples", "0"])).code, 0);
    assert.equal((await cli(["train", "--ckpt", b, "--steps", "3", "--samples", "0"])).code, 0);
    assert.equal((await cli(["train", "--ckpt", b, "--steps", "4", "--samples", "0"])).code, 0);
    for (const file of ["model.safetensors", "optimizer.safetensors", "average.safetensors"]) {
      assert.deepEqual(
        await Deno.readFile(await committed(a, file)),
        await Deno.readFile(await committed(b, file)),
        file,
      );
    }
    const weights = decodeSafetensors(await Deno.readFile(await committed(a, "model.safetensors"))).tensors;
    const averages =
      decodeSafetensors(await Deno.readFile(await committed(a, "average.safetensors"))).tensors;
    const name = "estimator.out.weight";
    const average = averages.get(name)!.data;
    assert.notDeepEqual(average, weights.get(name)!.data);
    const run = await loadRun(a);
    assert.equal(run.averaged, true);
    assert.deepEqual((await run.model.store.read()).get(name), average);
    const evaluated = await cli(["eval", "--ckpt", a, "--n", "2", "--lines", "4", "--steps", "2"]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    assert.match(evaluated.stdout, /\(averaged weights\)/);
    run.model.store.dispose();
  },
);

Deno.test(
  { name: "missing permissions and bad input give one clear line and a non-zero exit", ignore },
  async () => {
    const noWrite = await cli(["train", ...TINY, "--steps", "1", "--ckpt", join(root, "denied")], [
      `--allow-read=${root}`,
    ]);
    assert.notEqual(noWrite.code, 0);
    assert.match(noWrite.stderr, /--allow-write/);
    assert.doesNotMatch(noWrite.stderr, /\n\s+at /);
    const badFlag = await cli(["train", "--steps", "many"]);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Invalid value for --steps: "many"/);
    const corpus = join(root, "bad.txt");
    await Deno.writeFile(corpus, new Uint8Array([0x61, 0x0a, 0xff, 0xfe, 0x0a]));
    const badCorpus = await cli([
      "train",
      ...TINY,
      "--steps",
      "1",
      "--corpus",
      corpus,
      "--ckpt",
      join(root, "bad"),
    ]);
    assert.equal(badCorpus.code, 1);
    assert.match(badCorpus.stderr, /bad\.txt/);
    assert.equal(badCorpus.stderr.trim().split("\n").length, 1, badCorpus.stderr);
    const noRun = await cli(["sample", "--ckpt", join(root, "nothing")]);
    assert.equal(noRun.code, 1);
    assert.match(noRun.stderr, /nothing/);
  },
);

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(root, { recursive: true });
  } catch {
    // already gone
  }
});

Deno.test(
  {
    name: "cli.ts train on a CPU adapter with no stopping point: small batches, and the last step is logged",
    ignore,
  },
  async () => {
    const dir = join(root, "demo");
    const info = await cli(["info"]);
    const fallback = /fallback \(software\): true/.test(info.stdout);
    // TINY without its --batch and --log-every: the batch is the demonstration's on a CPU adapter, and the
    // one step that a limit of 0.001 minutes leaves is logged although 1000 steps lie between log lines.
    const args = TINY.filter((_, i, all) =>
      !["--batch", "--log-every"].includes(all[i - 1] ?? "") &&
      !["--batch", "--log-every"].includes(all[i]!)
    );
    const result = await cli(["train", ...args, "--log-every", "1000", "--minutes", "0.001", "--ckpt", dir]);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
    const step = (await committedStep(dir))!;
    assert.ok(step >= 1, result.stdout);
    assert.match(result.stdout, new RegExp(`^step ${step}/\\d+ .* loss \\d`, "m"));
    const log = (await Deno.readTextFile(join(dir, "log.jsonl"))).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(log.map((r) => r.step), [step]);
    if (fallback) {
      assert.equal(config.train.batch, 8);
      assert.match(
        result.stdout,
        /CPU adapter: training stops after 0\.001 minutes, batches of 8, samples of 3 /,
      );
    } else {
      assert.equal(config.train.batch, 256);
    }
  },
);

Deno.test(
  { name: "cli.ts train --minutes stops at the time limit with a checkpoint and samples", ignore },
  async () => {
    const dir = join(root, "timed");
    // A limit already reached: no step is taken, yet the run is saved and sampled, and says how to go on.
    const result = await cli(["train", ...TINY, "--epochs", "3", "--minutes", "0", "--ckpt", dir]);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /time limit of 0 minutes reached at step 0; continue with --ckpt /);
    assert.match(result.stdout, /samples at step 0:/);
    assert.equal(await committedStep(dir), 0);
    const on = await cli(["train", "--ckpt", dir, "--steps", "2", "--samples", "0"]);
    assert.equal(on.code, 0, on.stderr);
    assert.doesNotMatch(on.stdout, /time limit/);
    assert.equal(await committedStep(dir), 2);
    const bad = await cli(["train", ...TINY, "--minutes", "soon"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid value for --minutes: "soon"/);
  },
);

Deno.test("the commands ask for the GPU provider auto unless --gpu names one", () => {
  // auto takes Dawn only where the ffi permission lets it load (deno task train grants it).
  assert.deepEqual(engineFlags({}), { gpu: "auto" });
  assert.deepEqual(engineFlags({ gpu: "deno", precision: "f32" }), { gpu: "deno", precision: "f32" });
  assert.throws(() => engineFlags({ gpu: "cuda" }), UsageError);
});
