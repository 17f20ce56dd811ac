// deno-lint-ignore-file no-console
/**
 * `cli.ts eval`: measures a trained run. On the built-in corpus: the share of unconditional samples
 * that are grammatical, and the share of masked spans of held-out sentences restored exactly. On any
 * corpus: the estimator's token accuracy and cross-entropy at t = 0.1, 0.5, 0.9 on held-out lines.
 *
 * @module
 */
import { collateIds } from "../data/collate.ts";
import { CorpusIndex } from "../data/corpus_index.ts";
import { builtinCorpus, generateSentences, grammarError, isGrammatical } from "../data/grammar.ts";
import { Xoshiro128 } from "../data/xoshiro128.ts";
import type { Diffusion } from "../diffusion/diffusion.ts";
import {
  MAX_SAMPLE_LENGTH,
  MAX_SAMPLES,
  MAX_SAMPLING_STEPS,
  type SampleDecoder,
  Sampler,
} from "../diffusion/sampler.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { loadRun } from "../train/checkpoint.ts";
import { Engine } from "../tensor/engine.ts";
import { BUILTIN_CORPUS } from "../train/run.ts";
import {
  ENGINE_USAGE,
  engineFlagOptions,
  engineFlags,
  numberFlag,
  parseFlags,
  samplingMethod,
} from "./_args.ts";
import { latestRun } from "./_runs.ts";

export const EVAL_USAGE = `usage: deno run --allow-read=runs cli.ts eval [options]

Measures a trained run. Built-in corpus: share of grammatical unconditional samples, and share of
masked spans of held-out sentences restored exactly. Every corpus: token accuracy and cross-entropy of
the estimator at t = 0.1, 0.5, 0.9 on held-out lines. Prints one JSON line last.

  --ckpt DIR     run directory (default: the latest run under runs/)
  --n N          unconditional samples and infilling cases, in [1, ${MAX_SAMPLES}] (default 64)
  --lines N      held-out lines for accuracy/CE, in [1, 1e6] (default 256)
  --steps N      reverse-process steps, in [1, ${MAX_SAMPLING_STEPS}] (default 200)
  --seed N       seed, in [0, 2^32) (default 0)
  --method NAME  difflm | ddim | ddpm (default difflm)
  --length N     tokens per unconditional sample, in [1, ${MAX_SAMPLE_LENGTH}] (default: the run's crop length)
  --temperature X  softmax temperature of each estimate's token mix, in [0.001, 1000] (default 1)
  --clamp        sample with estimates clamped to token embeddings
${ENGINE_USAGE}`;

const OPTIONS = engineFlagOptions(
  ["ckpt", "n", "lines", "steps", "seed", "method", "length", "temperature"],
  ["clamp"],
);

/**
 * Token accuracy and cross-entropy of the estimator at fixed diffusion times, on held-out text (no
 * conditioning, no self-conditioning, no dropout).
 *
 * @param model The model.
 * @param tokenizer Its tokenizer.
 * @param lines Held-out lines.
 * @param options Times, batch size, crop length, seed.
 * @returns One entry per time.
 */
export async function heldOutMetrics(
  model: Diffusion,
  tokenizer: Tokenizer,
  lines: readonly string[],
  options: { times: readonly number[]; batch: number; crop: number; seed: number },
): Promise<{ t: number; accuracy: number; ce: number; mse: number }[]> {
  const engine = model.engine;
  const out = [];
  for (const time of options.times) {
    let accuracy = 0, ce = 0, mse = 0, weight = 0;
    for (let start = 0; start < lines.length; start += options.batch) {
      const chunk = lines.slice(start, start + options.batch);
      while (chunk.length < options.batch) chunk.push(chunk[chunk.length % Math.max(1, chunk.length)] ?? "");
      const examples = chunk.map((text) => tokenizer.encode(text));
      const batch = collateIds(examples, new Xoshiro128(options.seed + start), {
        eosId: tokenizer.eosId,
        padId: tokenizer.padId,
        cropLength: options.crop,
      });
      const B = options.batch, L = options.crop;
      // Every real token is predicted: no conditioning, each sequence at its own length.
      const lengths = new Int32Array(B);
      for (let b = 0; b < B; b++) lengths[b] = Math.min(examples[b]!.length + 1, L);
      const rowWeight = new Float32Array(B * L);
      let n = 0;
      for (let b = 0; b < B; b++) for (let i = 0; i < lengths[b]!; i++) n++;
      for (let b = 0; b < B; b++) for (let i = 0; i < lengths[b]!; i++) rowWeight[b * L + i] = 1 / n;
      const { signal, noise } = model.schedule.factors(time);
      const values = await engine.noGrad(() =>
        engine.tidy(async () => {
          const inputs = {
            ids: engine.tensor(batch.ids, [B, L]),
            lengths: engine.tensor(lengths, [B]),
            cond: engine.zeros([B, L], "u32"),
            rowWeight: engine.tensor(rowWeight, [B * L]),
            t: engine.tensor(new Float32Array(B).fill(time), [B]),
            signal: engine.tensor(new Float32Array(B).fill(signal), [B]),
            noise: engine.tensor(new Float32Array(B).fill(noise), [B]),
          };
          const result = model.loss(inputs, { selfCondition: false, seed: options.seed, training: false });
          return await Promise.all([result.accuracy.read(), result.ce.read(), result.mse.read()]);
        })
      );
      accuracy += values[0][0]! * n;
      ce += values[1][0]! * n;
      mse += values[2][0]! * n;
      weight += n;
    }
    out.push({ t: time, accuracy: accuracy / weight, ce: ce / weight, mse: mse / weight });
  }
  return out;
}

/**
 * Infilling on held-out sentences: one span of 1–3 tokens hidden per sentence, everything else (the EOS
 * included) given. A case is `restored` when every hidden token comes back exactly, and `grammatical`
 * when the filled-in sentence is one of the grammar's (a gap often has several right answers: "the _ dog"
 * takes any adjective of the right class).
 *
 * @param sampler The sampler (with the run's tokenizer), or anything that generates from known tokens.
 * @param tokenizer The tokenizer.
 * @param sentences Held-out sentences.
 * @param seed Seed of the span choice.
 * @returns Cases tried, restored and grammatical.
 */
export async function infillingScore(
  sampler: Pick<Sampler, "length" | "generate">,
  tokenizer: SampleDecoder,
  sentences: readonly string[],
  seed: number,
): Promise<{ cases: number; restored: number; grammatical: number }> {
  const rng = new Xoshiro128(seed);
  const known: (number | null)[][] = [];
  const hidden: { positions: number[]; ids: number[] }[] = [];
  for (const sentence of sentences) {
    const ids = [...tokenizer.encode(sentence), tokenizer.eosId];
    if (ids.length < 3 || ids.length > sampler.length) continue;
    const span = rng.int(1, Math.min(3, ids.length - 2));
    const start = rng.int(0, ids.length - 1 - span);
    const row: (number | null)[] = [...ids];
    const positions: number[] = [];
    for (let i = start; i < start + span; i++) {
      row[i] = null;
      positions.push(i);
    }
    known.push(row);
    hidden.push({ positions, ids: positions.map((i) => ids[i]!) });
  }
  if (known.length === 0) return { cases: 0, restored: 0, grammatical: 0 };
  const { ids } = await sampler.generate({ known });
  let restored = 0, grammatical = 0;
  for (const [b, h] of hidden.entries()) {
    if (h.positions.every((p, k) => ids[b]![p] === h.ids[k])) restored++;
    if (isGrammatical(tokenizer.decode([...ids[b]!]))) grammatical++;
  }
  return { cases: known.length, restored, grammatical };
}

/**
 * Runs `cli.ts eval`.
 *
 * @param args The arguments after `eval`.
 * @returns The exit code.
 */
export async function evalCommand(args: string[]): Promise<number> {
  const flags = parseFlags("eval", args, OPTIONS);
  if (flags.help) {
    console.log(EVAL_USAGE);
    return 0;
  }
  // Every flag is checked before the run is read or the GPU started.
  const n = numberFlag("--n", flags.n, { integer: true, min: 1, max: MAX_SAMPLES }) ?? 64;
  const lineCount = numberFlag("--lines", flags.lines, { integer: true, min: 1, max: 1e6 }) ?? 256;
  const steps = numberFlag("--steps", flags.steps, { integer: true, min: 1, max: MAX_SAMPLING_STEPS }) ?? 200;
  const seed = numberFlag("--seed", flags.seed, { integer: true, min: 0, max: 2 ** 32 - 1 }) ?? 0;
  const length = numberFlag("--length", flags.length, { integer: true, min: 1, max: MAX_SAMPLE_LENGTH });
  const temperature = numberFlag("--temperature", flags.temperature, { min: 1e-3, max: 1e3 });
  const method = samplingMethod(flags.method);
  const choice = engineFlags(flags);
  const dir = flags.ckpt ?? await latestRun();
  const { model, tokenizer, config, state, averaged } = await loadRun(dir, {
    engine: await Engine.create(choice),
  });
  const crop = config.train.crop;
  const corpus = config.corpus
    ? await CorpusIndex.build(config.corpus)
    : CorpusIndex.fromLines(builtinCorpus(config.builtinCorpus ?? BUILTIN_CORPUS));
  const split = corpus.split(config.heldOut.fraction, config.heldOut.seed);
  const lines = await corpus.readLines(split.heldOut.slice(0, lineCount));
  const report: Record<string, unknown> = { run: dir, step: state.step, averaged };
  console.log(
    `run ${dir} at step ${state.step}${
      averaged ? " (averaged weights)" : ""
    }; ${lines.length} held-out lines`,
  );
  const metrics = await heldOutMetrics(model, tokenizer, lines, {
    times: [0.1, 0.5, 0.9],
    batch: Math.min(config.train.batch, 64),
    crop,
    seed,
  });
  for (const m of metrics) {
    console.log(
      `t=${m.t}: token accuracy ${(100 * m.accuracy).toFixed(1)}%, cross-entropy ${m.ce.toFixed(4)}`,
    );
  }
  report.held_out = metrics;
  if (!config.corpus) {
    const sampler = new Sampler(model, {
      steps,
      length: length ?? crop,
      seed,
      tokenizer,
      method,
      clamp: flags.clamp === true,
      temperature,
    });
    const { texts } = await sampler.generate({ count: n });
    // The rule each sample breaks first (null when grammatical): one parse gives every count below.
    const rules = texts.map((t) => grammarError(t));
    const grammatical = rules.filter((r) => r === null).length;
    // A softer signal: samples made only of the grammar's words (ignoring agreement and order).
    const inVocabulary = rules.filter((r) => r !== "unknown word").length;
    console.log(`samples made only of grammar words: ${inVocabulary}/${texts.length}`);
    report.in_vocabulary = inVocabulary / texts.length;
    console.log(
      `unconditional samples grammatical: ${grammatical}/${texts.length} (${
        (100 * grammatical / texts.length).toFixed(1)
      }%)`,
    );
    const failures: Record<string, number> = {};
    for (const rule of rules) if (rule) failures[rule] = (failures[rule] ?? 0) + 1;
    const ranked = Object.entries(failures).sort((a, b) => b[1] - a[1]);
    if (ranked.length) console.log(`rules broken first: ${ranked.map(([r, c]) => `${r} ${c}`).join(", ")}`);
    report.failures = Object.fromEntries(ranked);
    for (const [k, text] of texts.slice(0, 5).entries()) console.log(`  ${rules[k] ?? "ok"}: ${text}`);
    // Fresh sentences from the grammar with another seed: held out by construction.
    const fresh = generateSentences(n, 1_000_003 + seed);
    const infill = await infillingScore(sampler, tokenizer, fresh, seed);
    console.log(`infilled spans restored exactly: ${infill.restored}/${infill.cases}`);
    console.log(`infilled sentences grammatical: ${infill.grammatical}/${infill.cases}`);
    report.grammatical = grammatical / texts.length;
    report.samples = texts.length;
    report.infilling = infill.cases ? infill.restored / infill.cases : null;
    report.infilling_grammatical = infill.cases ? infill.grammatical / infill.cases : null;
    report.infilling_cases = infill.cases;
  }
  console.log(JSON.stringify(report));
  return 0;
}
