/**
 * cli.ts train and its neighbours as a user runs them, in subprocesses: flags on resume, a damaged run
 * directory, Ctrl-C, bounded sampler flags checked before anything is read, --help and --version.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ignore } from "../_gpu.ts";
import { readCheckpointManifest } from "../../src/train/checkpoint.ts";
import { type CheckpointFile, checkpointFilePath } from "../../src/train/state_dict.ts";
import { childEnv, pollUntil } from "../_child.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const ENV = childEnv();
const TINY =
  "--batch 4 --crop 12 --model-dim 32 --embedding-dim 16 --layers 1 --heads 2 --vocab 80 --samples 0"
    .split(" ");

const root = await Deno.makeTempDir({ prefix: "difflm-cli-train-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(root, { recursive: true });
  } catch {
    // already gone
  }
});

/** Runs the CLI with read and write access to the test's folder only, as `deno task train` scopes it. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", `--allow-read=${root}`, `--allow-write=${root}`, CLI, ...args],
    env: ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(path));

/** A file of the run's committed checkpoint (`checkpoint.json` names its generation). */
async function committed(dir: string, file: CheckpointFile): Promise<string> {
  const manifest = await readCheckpointManifest(dir);
  if (!manifest) throw new Error(`no checkpoint committed in ${dir}`);
  return join(dir, checkpointFilePath(manifest, file));
}

Deno.test(
  {
    name: "flags on resume: a fixed one changed is an error, changeable ones are applied and printed",
    ignore,
  },
  async () => {
    const dir = join(root, "resume-flags");
    assert.equal((await cli(["train", ...TINY, "--steps", "2", "--ckpt", dir])).code, 0);
    const weights = await Deno.readFile(await committed(dir, "model.safetensors"));
    for (
      const [flag, value] of [["--layers", "2"], ["--preset", "small"], ["--seed", "5"], ["--crop", "16"], [
        "--vocab",
        "90",
      ]]
    ) {
      const refused = await cli(["train", "--ckpt", dir, "--steps", "3", flag!, value!]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, new RegExp(`Cannot change ${flag} when resuming`));
      assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
    }
    assert.deepEqual(await Deno.readFile(await committed(dir, "model.safetensors")), weights);
    assert.equal((await readJson(await committed(dir, "state.json"))).step, 2);
    // The same value as the run's is no change: the command that started the run resumes it.
    const same = await cli(["train", ...TINY, "--steps", "3", "--ckpt", dir]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /changed on resume: steps 2 → 3\n/);
    const changed = await cli(["train", "--ckpt", dir, "--steps", "5", "--lr", "0.002", "--batch", "2"]);
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stdout, /changed on resume: batch 4 → 2, lr 0\.001 → 0\.002, steps 3 → 5/);
    const config = await readJson(join(dir, "config.json"));
    assert.deepEqual([config.train.batch, config.train.lr, config.steps], [2, 0.002, 5]);
    assert.equal((await readJson(await committed(dir, "state.json"))).data.batchSize, 2);
  },
);

Deno.test(
  { name: "train on a directory holding part of a run names what is missing and overwrites nothing", ignore },
  async () => {
    const dir = join(root, "damaged");
    assert.equal((await cli(["train", ...TINY, "--steps", "1", "--ckpt", dir])).code, 0);
    const weights = await Deno.readFile(await committed(dir, "model.safetensors"));
    for (const missing of ["config.json", "checkpoint.json"]) {
      await Deno.rename(join(dir, missing), join(root, "aside"));
      const refused = await cli(["train", ...TINY, "--steps", "2", "--ckpt", dir]);
      assert.equal(refused.code, 1, refused.stdout);
      assert.match(refused.stderr, new RegExp(`part of a run, ${missing.replace(".", "\\.")} missing`));
      await Deno.rename(join(root, "aside"), join(dir, missing));
      assert.deepEqual(await Deno.readFile(await committed(dir, "model.safetensors")), weights);
    }
    await Deno.remove(join(dir, "checkpoint.json"));
    const fresh = await cli(["train", ...TINY, "--steps", "1", "--seed", "4", "--ckpt", dir, "--fresh"]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal((await readJson(join(dir, "config.json"))).seed, 4);
    assert.equal((await readJson(await committed(dir, "state.json"))).step, 1);
    const needsDir = await cli(["train", "--fresh"]);
    assert.equal(needsDir.code, 2);
    assert.match(needsDir.stderr, /--fresh needs --ckpt/);
  },
);

Deno.test(
  {
    name: "Ctrl-C during train finishes the step, writes its checkpoint, and the next run resumes from it",
    ignore,
  },
  async () => {
    const dir = join(root, "interrupted");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-read=${root}`,
        `--allow-write=${root}`,
        CLI,
        "train",
        ...TINY,
        "--log-every",
        "1",
        ...[
          "--steps",
          "100000",
          "--ckpt-every",
          "100000",
          "--ckpt",
          dir,
        ],
      ],
      env: ENV,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const logged = await pollUntil(
      async () => (await Deno.readTextFile(join(dir, "log.jsonl")).catch(() => "")).trim().split("\n").length,
      (logged) => logged >= 3,
      100,
    );
    child.kill("SIGINT");
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.ok(logged >= 3, "training never logged three steps");
    assert.equal(out.code, 130, new TextDecoder().decode(out.stderr));
    const step = Number(/stopped by SIGINT at step (\d+); continue with --ckpt/.exec(stdout)?.[1]);
    assert.ok(step >= 3, stdout);
    assert.equal((await readJson(await committed(dir, "state.json"))).step, step);
    const log = (await Deno.readTextFile(join(dir, "log.jsonl"))).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(log.at(-1).step, step);
    const resumed = await cli(["train", "--ckpt", dir, "--steps", String(step + 2)]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`resuming .* at step ${step}\\n`));
    assert.equal((await readJson(await committed(dir, "state.json"))).step, step + 2);
  },
);

Deno.test("sampler flags out of range are refused with their range before the run is read", async () => {
  const nowhere = join(root, "no-such-run");
  const cases: [string[], RegExp][] = [
    [["sample", "--steps", "1e8"], /--steps: "1e8" is not an integer in \[1, 10000\]/],
    [["sample", "--steps", "1e9"], /--steps: "1e9" is not an integer in \[1, 10000\]/],
    [["sample", "--n", "100000"], /--n: "100000" is not an integer in \[1, 4096\]/],
    [["sample", "--n", "-5"], /--n: "-5" is not an integer in \[1, 4096\]/],
    [["sample", "--seed", "4294967296"], /--seed: "4294967296" is not an integer in \[0, 4294967295\]/],
    [["sample", "--length", "0"], /--length: "0"/],
    [["sample", "--temperature", "0"], /--temperature: "0" is not a number in \[0\.001, 1000\]/],
    [["sample", "--prompt", "a", "--template", "_"], /--prompt or --template, not both/],
    [["eval", "--n", "0"], /--n: "0"/],
    [["eval", "--steps", "-1"], /--steps: "-1"/],
    [["train", "--samples", "100"], /--samples: "100" is not an integer in \[0, 64\]/],
    [["train", "--gpu", "cuda"], /--gpu: "cuda"; expected auto, deno or dawn/],
    [["sample", "--precision", "f16"], /--precision: "f16"; expected f32 or mixed/],
  ];
  for (const [args, message] of cases) {
    const result = await cli([...args, "--ckpt", nowhere]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /no-such-run/);
  }
  const help = await cli(["sample", "--help"]);
  for (const range of ["[1, 10000]", "[1, 4096]", "[0, 2^32)", "[0.001, 1000]"]) {
    assert.ok(help.stdout.includes(range), range);
  }
});

Deno.test("--help works on every command and subcommand, and --version prints the version", async () => {
  const version = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url))).version;
  const v = await cli(["--version"]);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), `difflm ${version}`);
  for (const command of ["train", "sample", "eval", "info"]) {
    const result = await cli([command, "--help"]);
    assert.equal(result.code, 0, `${command}: ${result.stderr}`);
    assert.match(result.stdout, new RegExp(`usage: .*cli\\.ts ${command}`));
  }
  for (const sub of ["train", "encode", "decode"]) {
    const result = await cli(["tokenizer", sub, "--help"]);
    assert.equal(result.code, 0, `tokenizer ${sub}: ${result.stderr}`);
    assert.match(result.stderr, new RegExp(`tokenizer ${sub}`));
  }
  const unknown = await cli(["info", "--verbose"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown argument "--verbose" for info/);
});
