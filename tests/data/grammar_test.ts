import assert from "node:assert/strict";
import {
  builtinCorpus,
  generateSentences,
  grammarError,
  type GrammarRule,
  grammarVocabulary,
  grammarWordLists,
  isGrammatical,
} from "../../src/data/grammar.ts";
import { Xoshiro128 } from "../../src/data/xoshiro128.ts";

const corpus = builtinCorpus();

Deno.test("builtinCorpus() gives 20000 grammatical, well-formatted sentences", () => {
  assert.equal(corpus.length, 20000);
  const rejected = corpus.filter((s) => !isGrammatical(s));
  assert.deepEqual(rejected, []);
  for (const s of corpus) assert.match(s, /^[a-z]+( [a-z]+)* \.$/);
  assert.ok(new Set(corpus).size > 19500, "sentences repeat too often");
});

Deno.test("generateSentences() is reproducible by seed", () => {
  assert.deepEqual(generateSentences(200, 7), generateSentences(200, 7));
  assert.notDeepEqual(generateSentences(200, 7), generateSentences(200, 8));
  assert.deepEqual(builtinCorpus({ lines: 50 }), corpus.slice(0, 50));
  assert.deepEqual(generateSentences(0, 1), []);
  assert.throws(() => generateSentences(-1, 1), RangeError);
  assert.throws(() => generateSentences(1, -1), RangeError);
});

Deno.test("the grammar's vocabulary has 247 words, all used by the built-in corpus", () => {
  const vocabulary = grammarVocabulary();
  assert.equal(vocabulary.length, 247);
  const used = new Set(corpus.flatMap((s) => s.split(" ")));
  assert.deepEqual([...used].sort(), vocabulary);
  const listed = Object.values(grammarWordLists()).flat();
  assert.deepEqual([...listed].sort(), vocabulary);
});

Deno.test("built-in sentences are short: at most 35 words, about 10 on average", () => {
  const lengths = corpus.map((s) => s.split(" ").length);
  const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
  assert.ok(Math.max(...lengths) <= 35);
  assert.ok(mean > 8 && mean < 12, `mean ${mean}`);
});

const GRAMMATICAL = [
  "the small red fox sees two old dogs near the river .",
  "the dog sleeps .",
  "the dogs sleep .",
  "a dog slept quietly .",
  "an old owl watches an apple .",
  "an eagle sees an ugly bear .",
  "one happy little old goose chased the twelve foxes under a bridge behind those houses .",
  "these three brave children carry some berries .",
  "the dog near the trees sees the cat .",
  "the dogs near the tree see the cat .",
  "the dog and the cat sleep by the lake .",
  "the mice were happy .",
  "every man is tall on the hill .",
  "many women sing loudly in the village .",
  "that farmer helped eleven geese .",
  "the babies found the ring .",
  "   the  dog sleeps   .  ",
];

const UNGRAMMATICAL: [string, string][] = [
  ["the dog see the cat .", "subject–verb agreement"],
  ["the dogs sees the cat .", "subject–verb agreement"],
  ["the dog near the trees see the cat .", "agreement with the head, not the nearest noun"],
  ["the dogs near the tree sees the cat .", "agreement with the head, not the nearest noun"],
  ["the dog and the cat sleeps .", "a coordinated subject is plural"],
  ["the dog are happy .", "copula agreement"],
  ["the dogs was happy .", "copula agreement"],
  ["a dogs sleep .", "determiner–noun number"],
  ["two dog sleeps .", "determiner–noun number"],
  ["one dogs sleep .", "determiner–noun number"],
  ["these dog sleeps .", "determiner–noun number"],
  ["every dogs sleep .", "determiner–noun number"],
  ["the two dog sleeps .", "determiner–noun number"],
  ["the one dog sleeps .", "one is not a plural number word"],
  ["a old dog sleeps .", "a before a vowel"],
  ["an dog sleeps .", "an before a consonant"],
  ["the red big dog sleeps .", "adjective order"],
  ["the old happy dog sleeps .", "adjective order"],
  ["the big small dog sleeps .", "two adjectives of one class"],
  ["the happy big old red dog sleeps .", "more than three adjectives"],
  ["the dog sleeps the cat .", "intransitive verb with an object"],
  ["the dog sees .", "transitive verb without an object"],
  ["the dog helps the ball .", "object class of the verb"],
  ["the dog carries the cat .", "object class of the verb"],
  ["the river sees the dog .", "subject must be a creature"],
  ["the dog sleeps near the cat .", "prepositions take a place"],
  ["the dog is .", "copula without an adjective"],
  ["the dog sees the cat quickly .", "adverbs follow intransitive verbs only"],
  ["the dog sleeps quickly quickly .", "one adverb at most"],
  ["the dog sleeps near the river under the tree by the lake .", "at most two place phrases"],
  ["dog the sleeps .", "word order"],
  ["the dog the cat sees .", "word order"],
  ["sees the dog the cat .", "word order"],
  ["the cat dog sleeps .", "word order"],
  ["the dog sleeps", "no final full stop"],
  ["the dog sleeps near .", "truncated place phrase"],
  ["the dog sees the .", "truncated object"],
  ["the dog near the river .", "no predicate"],
  ["the dog sleeps . .", "two full stops"],
  ["the dog sleeps . the cat sleeps .", "two sentences"],
  ["the the dog sleeps .", "double determiner"],
  ["dog sleeps .", "no determiner"],
  ["The dog sleeps .", "upper case"],
  ["the dog sleeps.", "full stop not separated"],
  ["the unicorn sleeps .", "unknown word"],
  ["", "empty"],
  [".", "only a full stop"],
];

/** The rule grammarError() names for each entry of UNGRAMMATICAL, in order. */
const BROKEN_RULES: GrammarRule[] = [
  "subject-verb agreement",
  "subject-verb agreement",
  "subject-verb agreement",
  "subject-verb agreement",
  "subject-verb agreement",
  "subject-verb agreement",
  "subject-verb agreement",
  "number agreement",
  "number agreement",
  "number agreement",
  "number agreement",
  "number agreement",
  "number agreement",
  "noun",
  "a/an",
  "a/an",
  "adjectives",
  "adjectives",
  "adjectives",
  "adjectives",
  "sentence end",
  "determiner",
  "noun class",
  "noun class",
  "noun class",
  "noun class",
  "copula adjective",
  "sentence end",
  "sentence end",
  "place phrases",
  "determiner",
  "verb",
  "determiner",
  "verb",
  "sentence end",
  "determiner",
  "noun",
  "verb",
  "sentence end",
  "sentence end",
  "noun",
  "determiner",
  "unknown word",
  "unknown word",
  "unknown word",
  "unknown word",
  "determiner",
];

Deno.test("grammarError() names the first rule each ungrammatical sentence breaks, null for sentences", () => {
  assert.equal(BROKEN_RULES.length, UNGRAMMATICAL.length);
  for (const [k, [s, why]] of UNGRAMMATICAL.entries()) {
    assert.equal(grammarError(s), BROKEN_RULES[k], `"${s}" (${why})`);
  }
  for (const s of GRAMMATICAL) assert.equal(grammarError(s), null, s);
  for (const s of corpus.slice(0, 500)) assert.equal(grammarError(s), null, s);
});

Deno.test("isGrammatical() accepts hand-written sentences of the grammar", () => {
  for (const s of GRAMMATICAL) assert.ok(isGrammatical(s), s);
});

Deno.test("isGrammatical() rejects agreement violations, order swaps and truncations", () => {
  for (const [s, why] of UNGRAMMATICAL) assert.ok(!isGrammatical(s), `accepted "${s}" (${why})`);
});

Deno.test("isGrammatical() rejects most corruptions of generated sentences", () => {
  const rng = new Xoshiro128(1);
  const vocabulary = grammarVocabulary().filter((w) => w !== ".");
  let swaps = 0;
  let swapsAccepted = 0;
  let salad = 0;
  let truncations = 0;
  for (const s of corpus.slice(0, 2000)) {
    const words = s.split(" ");
    // Swap two adjacent different words (not the full stop).
    const i = rng.int(0, words.length - 3);
    if (words[i] !== words[i + 1]) {
      const swapped = [...words];
      [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
      swaps++;
      if (isGrammatical(swapped.join(" "))) swapsAccepted++;
    }
    // Random words of the right length.
    const random = words.map((w) => (w === "." ? w : vocabulary[rng.int(0, vocabulary.length - 1)]!));
    if (isGrammatical(random.join(" "))) salad++;
    // Cut before the last word: always ungrammatical without the full stop.
    if (isGrammatical(words.slice(0, -1).join(" "))) truncations++;
  }
  assert.ok(swapsAccepted / swaps < 0.1, `${swapsAccepted} of ${swaps} swaps accepted`);
  assert.ok(salad <= 2, `${salad} random word strings accepted`);
  assert.equal(truncations, 0);
});
