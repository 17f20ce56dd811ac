import assert from "node:assert/strict";
import { infillingScore } from "../../src/cli/eval.ts";
import { generateSentences, grammarVocabulary } from "../../src/data/grammar.ts";
import type { GenerateRequest, GenerateResult } from "../../src/diffusion/sampler.ts";

/** Word-level stand-in for the run's tokenizer: ids 4… for the grammar's words, EOS 1, pad 2. */
const words = grammarVocabulary();
const tokenizer = {
  eosId: 1,
  padId: 2,
  encode: (text: string) => text.split(" ").map((w) => 4 + words.indexOf(w)),
  decode(ids: readonly number[]) {
    const out: string[] = [];
    for (const id of ids) {
      if (id === 1) break;
      if (id >= 4) out.push(words[id - 4]!);
    }
    return out.join(" ");
  },
};

/** Fills every gap of a request with `fill(original row, position)`, pads after the row. */
function fakeSampler(fill: (row: readonly (number | null)[], position: number) => number, length = 32) {
  return {
    length,
    generate(request: GenerateRequest): Promise<GenerateResult> {
      const ids = request.known!.map((row) => {
        const out = new Int32Array(length).fill(2);
        row.forEach((id, i) => out[i] = id ?? fill(row, i));
        return out;
      });
      return Promise.resolve({ ids, texts: ids.map((row) => tokenizer.decode([...row])) });
    },
  };
}

Deno.test("infillingScore counts exact restorations and grammatical completions", async () => {
  const sentences = generateSentences(40, 9);
  // An oracle that knows the held-out sentences restores every gap: all cases restored and grammatical.
  const byPrefix = new Map(sentences.map((s) => [s, [...tokenizer.encode(s), 1]]));
  const oracle = fakeSampler((row, i) => {
    for (const ids of byPrefix.values()) {
      if (ids.length === row.length && row.every((id, k) => id === null || id === ids[k])) return ids[i]!;
    }
    throw new Error("no sentence matches the row");
  });
  const perfect = await infillingScore(oracle, tokenizer, sentences, 3);
  assert.ok(perfect.cases >= 35, `cases ${perfect.cases}`);
  assert.equal(perfect.restored, perfect.cases);
  assert.equal(perfect.grammatical, perfect.cases);
  // Filling every gap with an id no sentence uses restores nothing; the sentences then lack the span,
  // which leaves most of them ungrammatical (dropping an optional adjective or phrase does not).
  const wrong = await infillingScore(fakeSampler(() => 3), tokenizer, sentences, 3);
  assert.equal(wrong.cases, perfect.cases);
  assert.equal(wrong.restored, 0);
  assert.ok(wrong.grammatical < wrong.cases / 2, `grammatical ${wrong.grammatical} of ${wrong.cases}`);
});
