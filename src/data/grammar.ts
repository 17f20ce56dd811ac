/**
 * The built-in corpus: simple English sentences from a small grammar written for difflm, and a
 * recogniser for exactly that grammar to score model samples. The vocabulary is 247 words, small enough
 * for the `tiny` preset to learn in minutes on a GPU; agreement rules make most random word strings,
 * and many near misses, ungrammatical, so the fraction of grammatical samples measures what a model
 * learnt. Pure TypeScript; imports only the data pipeline's random generator. `docs/grammar.md` holds
 * the same description with the full word lists.
 *
 * Text format: lower case, words separated by single spaces, a final " ." token.
 *
 * Productions (`?` optional, `{m,n}` repetition, `|` alternatives, terminals quoted):
 * ```
 * Sentence   → Subject Predicate PlacePP{0,2} "."
 * Subject    → NP<creature> | NP<creature> PlacePP | NP<creature> "and" NP<creature>   (the last is plural)
 * Predicate  → TV NP<object class of the verb> | IV Adverb? | Copula Adjective
 * PlacePP    → Preposition NP<place>
 * NP<class>  → Det Adjective{0,3} Noun<class>
 * ```
 * Agreement and order rules:
 * - Number: the determiner and the noun agree (`one dog`, `two dogs`, `a dog`, `these dogs`, never
 *   `two dog` or `a dogs`); `the` goes with both. Plural determiners: `the`, `these`, `those` (each
 *   optionally followed by a number word `two` … `twelve`), a bare number word, `some`, `many`. Singular:
 *   `the`, `a`/`an`, `this`, `that`, `every`, `each`, `one`.
 * - `a` before a word that starts with a consonant letter, `an` before a vowel letter (`an old owl`).
 * - Adjectives: at most three, at most one per class, in the order opinion, size, age, colour
 *   (`a happy little red hat`, never `a little happy hat` or `a big small hat`).
 * - The verb agrees with the subject's head noun, whatever stands between (`the dog near the trees
 *   sees`); a subject of two noun phrases joined by `and` is plural. Present tense: `sees` singular,
 *   `see` plural; past tense (`saw`) and the copula's `is`/`are`, `was`/`were` likewise.
 * - Transitive verbs need an object of the classes they allow (`chases` creatures, `carries` things,
 *   `sees` either); intransitive verbs take none, optionally an adverb; prepositions take a place.
 *
 * @module
 */
import {
  ADJECTIVES,
  ADVERBS,
  COPULA,
  END,
  type GrammaticalNumber,
  INTRANSITIVE,
  LEXICON,
  type NounClass,
  NOUNS,
  NUMBER_WORDS,
  PREPOSITIONS,
  TRANSITIVE,
  type VerbForm,
} from "./grammar_vocabulary.ts";
import { Xoshiro128 } from "./xoshiro128.ts";

export { grammarVocabulary, grammarWordLists } from "./grammar_vocabulary.ts";

const MAX_ADJECTIVES = 3;
const MAX_PLACE_PHRASES = 2;
/** Stream key of the sentence generator (see the `stream` argument of {@linkcode Xoshiro128}). */
const GRAMMAR_STREAM = 4;

function startsWithVowel(word: string): boolean {
  return "aeiou".includes(word[0]!);
}

// ---------------------------------------------------------------------------------------------------
// Recogniser: the grammar is LL(1) (one word of look-ahead decides every choice), so each rule is a
// function from a start position to the end position of what it matched, and the first mismatch is final:
// it throws the rule it breaks.

/**
 * The rule a text breaks first, as {@linkcode grammarError} reports it:
 * - `unknown word`: a word outside the grammar's vocabulary;
 * - `determiner`: a noun phrase that does not start with a determiner or a number word;
 * - `a/an`: `a` before a vowel or `an` before a consonant;
 * - `adjectives`: more than three, two of one class, or out of the order opinion, size, age, colour;
 * - `noun`: no noun where a noun phrase must end;
 * - `noun class`: a noun of a class the position does not take (subjects are creatures, places follow
 *   prepositions, each transitive verb takes its own object classes);
 * - `number agreement`: a singular determiner with a plural noun or the reverse;
 * - `verb`: no verb after the subject;
 * - `subject-verb agreement`: the verb's number is not the subject's;
 * - `copula adjective`: `is`/`are`/`was`/`were` not followed by an adjective;
 * - `place phrases`: more than two place phrases at the end;
 * - `sentence end`: no final `.`, or words after it.
 */
export type GrammarRule =
  | "unknown word"
  | "determiner"
  | "a/an"
  | "adjectives"
  | "noun"
  | "noun class"
  | "number agreement"
  | "verb"
  | "subject-verb agreement"
  | "copula adjective"
  | "place phrases"
  | "sentence end";

class Violation {
  constructor(readonly rule: GrammarRule) {}
}

function fail(rule: GrammarRule): never {
  throw new Violation(rule);
}

interface Phrase {
  end: number;
  num: GrammaticalNumber;
}

function nounPhrase(words: readonly string[], i: number, classes: readonly NounClass[]): Phrase {
  const det = words[i];
  let num: GrammaticalNumber | "any";
  let j = i + 1;
  const isNumberWord = (w: string | undefined) => w !== undefined && LEXICON.get(w)?.kind === "number";
  if (det === "the") {
    num = isNumberWord(words[j]) ? "pl" : "any";
    if (num === "pl") j++;
  } else if (det === "these" || det === "those") {
    num = "pl";
    if (isNumberWord(words[j])) j++;
  } else if (det === "some" || det === "many" || isNumberWord(det)) {
    num = "pl";
  } else if (det === "a" || det === "an") {
    const next = words[j];
    if (next === undefined) fail("noun");
    if (startsWithVowel(next) !== (det === "an")) fail("a/an");
    num = "sg";
  } else if (det === "this" || det === "that" || det === "every" || det === "each" || det === "one") {
    num = "sg";
  } else {
    fail("determiner");
  }
  let lastClass = -1;
  let adjectives = 0;
  for (
    let entry = LEXICON.get(words[j] ?? "");
    entry?.kind === "adjective";
    entry = LEXICON.get(words[j] ?? "")
  ) {
    if (entry.cls <= lastClass || ++adjectives > MAX_ADJECTIVES) fail("adjectives");
    lastClass = entry.cls;
    j++;
  }
  const noun = LEXICON.get(words[j] ?? "");
  if (noun?.kind !== "noun") fail("noun");
  if (!classes.includes(noun.cls)) fail("noun class");
  if (num !== "any" && noun.num !== num) fail("number agreement");
  return { end: j + 1, num: noun.num };
}

function placePhrase(words: readonly string[], i: number): number {
  return nounPhrase(words, i + 1, ["place"]).end;
}

function subject(words: readonly string[], i: number): Phrase {
  const head = nounPhrase(words, i, ["creature"]);
  const next = LEXICON.get(words[head.end] ?? "");
  if (next?.kind === "and") return { end: nounPhrase(words, head.end + 1, ["creature"]).end, num: "pl" };
  if (next?.kind === "preposition") return { end: placePhrase(words, head.end), num: head.num };
  return head;
}

function agrees(form: VerbForm, num: GrammaticalNumber): boolean {
  return form === "past" || form === num;
}

function predicate(words: readonly string[], i: number, num: GrammaticalNumber): number {
  const verb = LEXICON.get(words[i] ?? "");
  switch (verb?.kind) {
    case "transitive":
      if (!agrees(verb.form, num)) fail("subject-verb agreement");
      return nounPhrase(words, i + 1, verb.objects).end;
    case "intransitive":
      if (!agrees(verb.form, num)) fail("subject-verb agreement");
      return LEXICON.get(words[i + 1] ?? "")?.kind === "adverb" ? i + 2 : i + 1;
    case "copula":
      if (verb.num !== num) fail("subject-verb agreement");
      if (LEXICON.get(words[i + 1] ?? "")?.kind !== "adjective") fail("copula adjective");
      return i + 2;
    default:
      return fail("verb");
  }
}

/**
 * The first rule of the built-in grammar (module documentation, `docs/grammar.md`) that a text breaks,
 * reading left to right, or `null` for a sentence of the grammar. Runs of whitespace count as one
 * separator and surrounding whitespace is ignored; case matters (the grammar is lower case).
 *
 * @example Usage
 * ```ts
 * import { grammarError } from "./grammar.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(grammarError("the small red fox sees two old dogs near the river ."), null);
 * assert.equal(grammarError("the small red fox see two old dogs near the river ."), "subject-verb agreement");
 * assert.equal(grammarError("a old dog sleeps ."), "a/an");
 * assert.equal(grammarError("the red small fox sleeps ."), "adjectives");
 * ```
 * @param text One sentence.
 * @returns The rule broken first, or `null`.
 */
export function grammarError(text: string): GrammarRule | null {
  const words = text.trim().split(/\s+/);
  if (!words.every((w) => LEXICON.has(w))) return "unknown word";
  try {
    const subj = subject(words, 0);
    let i = predicate(words, subj.end, subj.num);
    for (let places = 0; LEXICON.get(words[i] ?? "")?.kind === "preposition"; places++) {
      if (places === MAX_PLACE_PHRASES) fail("place phrases");
      i = placePhrase(words, i);
    }
    if (words[i] !== END || i !== words.length - 1) fail("sentence end");
    return null;
  } catch (e) {
    if (e instanceof Violation) return e.rule;
    throw e;
  }
}

/**
 * Tells whether a text is a sentence of the built-in grammar (module documentation, `docs/grammar.md`):
 * a parser for the grammar's rules, not a look-up of generated sentences. Runs of whitespace count as
 * one separator and surrounding whitespace is ignored; case matters (the grammar is lower case).
 * {@linkcode grammarError} tells which rule a text breaks.
 *
 * @example Usage
 * ```ts
 * import { isGrammatical } from "@difflm/core";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isGrammatical("the small red fox sees two old dogs near the river ."));
 * assert.ok(!isGrammatical("the small red fox see two old dogs near the river .")); // agreement
 * assert.ok(!isGrammatical("a old dog sleeps ."));                                   // a / an
 * assert.ok(!isGrammatical("the red small fox sleeps ."));                           // adjective order
 * ```
 * @param text One sentence.
 * @returns True if the grammar generates `text`.
 */
export function isGrammatical(text: string): boolean {
  return grammarError(text) === null;
}

// ---------------------------------------------------------------------------------------------------
// Generator: the same rules, choices drawn with fixed weights.

function pick<T>(rng: Xoshiro128, items: readonly T[]): T {
  return items[rng.int(0, items.length - 1)]!;
}

/** Picks an index with probability proportional to its weight. */
function weighted(rng: Xoshiro128, weights: readonly number[]): number {
  let total = 0;
  for (const w of weights) total += w;
  let u = rng.float() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0) return i;
  }
  return weights.length - 1;
}

function generateNounPhrase(rng: Xoshiro128, cls: NounClass, out: string[]): GrammaticalNumber {
  const num: GrammaticalNumber = rng.float() < 0.5 ? "sg" : "pl";
  const [sg, pl] = pick(rng, NOUNS[cls]);
  const noun = num === "sg" ? sg : pl;
  const adjectiveCount = weighted(rng, [0.45, 0.35, 0.15, 0.05]);
  const classes = [0, 1, 2, 3];
  while (classes.length > adjectiveCount) classes.splice(rng.int(0, classes.length - 1), 1);
  const adjectives = classes.map((c) => pick(rng, ADJECTIVES[c]!));
  const next = adjectives[0] ?? noun;
  if (num === "sg") {
    // the, a/an, this, that, every, each, one
    const det = pick(rng, [
      "the",
      "the",
      "the",
      "a",
      "a",
      "a",
      "this",
      "that",
      "every",
      "each",
      "one",
      "one",
    ]);
    out.push(det === "a" && startsWithVowel(next) ? "an" : det);
  } else {
    switch (weighted(rng, [0.25, 0.25, 0.1, 0.14, 0.07, 0.1, 0.09])) {
      case 0:
        out.push("the");
        break;
      case 1:
        out.push(pick(rng, NUMBER_WORDS));
        break;
      case 2:
        out.push("the", pick(rng, NUMBER_WORDS));
        break;
      case 3:
        out.push(pick(rng, ["these", "those"]));
        break;
      case 4:
        out.push(pick(rng, ["these", "those"]), pick(rng, NUMBER_WORDS));
        break;
      case 5:
        out.push("some");
        break;
      default:
        out.push("many");
    }
  }
  out.push(...adjectives, noun);
  return num;
}

function generatePlacePhrase(rng: Xoshiro128, out: string[]): void {
  out.push(pick(rng, PREPOSITIONS));
  generateNounPhrase(rng, "place", out);
}

function generateSentence(rng: Xoshiro128): string {
  const out: string[] = [];
  let num: GrammaticalNumber;
  const subjectShape = weighted(rng, [0.75, 0.15, 0.1]);
  num = generateNounPhrase(rng, "creature", out);
  if (subjectShape === 1) {
    generatePlacePhrase(rng, out);
  } else if (subjectShape === 2) {
    out.push("and");
    generateNounPhrase(rng, "creature", out);
    num = "pl";
  }
  const past = rng.float() < 0.3;
  const form = past ? 2 : num === "sg" ? 0 : 1;
  switch (weighted(rng, [0.5, 0.3, 0.2])) {
    case 0: {
      const verb = pick(rng, TRANSITIVE);
      out.push(verb[form]);
      generateNounPhrase(rng, pick(rng, verb[3]), out);
      break;
    }
    case 1:
      out.push(pick(rng, INTRANSITIVE)[form]);
      if (rng.float() < 0.35) out.push(pick(rng, ADVERBS));
      break;
    default:
      out.push(COPULA[past ? 1 : 0]![num === "sg" ? 0 : 1], pick(rng, pick(rng, ADJECTIVES)));
  }
  const places = weighted(rng, [0.45, 0.45, 0.1]);
  for (let p = 0; p < places; p++) generatePlacePhrase(rng, out);
  out.push(END);
  return out.join(" ");
}

/**
 * Generates sentences of the built-in grammar, deterministically for a seed.
 *
 * @example Usage
 * ```ts
 * import { generateSentences } from "./grammar.ts";
 * import { isGrammatical } from "@difflm/core";
 * import assert from "node:assert/strict";
 *
 * const sentences = generateSentences(3, 42);
 * assert.deepEqual(generateSentences(3, 42), sentences);
 * assert.ok(sentences.every(isGrammatical));
 * ```
 * @param count How many sentences, a non-negative integer.
 * @param seed A non-negative integer.
 * @returns The sentences, lower case, words separated by single spaces, ending in " .".
 * @throws {RangeError} If `count` or `seed` is not a non-negative integer.
 */
export function generateSentences(count: number, seed: number): string[] {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(`Cannot generate ${count} sentences: count must be a non-negative integer`);
  }
  const rng = new Xoshiro128(seed, [GRAMMAR_STREAM]);
  return Array.from({ length: count }, () => generateSentence(rng));
}

/** Options of {@linkcode builtinCorpus}. */
export interface BuiltinCorpusOptions {
  /**
   * Number of sentences.
   *
   * @default {20000}
   */
  lines?: number;
  /**
   * Seed of the generator.
   *
   * @default {0}
   */
  seed?: number;
}

/**
 * The built-in corpus: {@linkcode generateSentences} with default size and seed, one sentence per line.
 *
 * @example Usage
 * ```ts
 * import { builtinCorpus } from "@difflm/core";
 *
 * const lines = builtinCorpus({ lines: 5 });
 * console.log(lines.length); // 5
 * ```
 * @param options Number of lines and seed.
 * @returns The sentences.
 * @throws {RangeError} If `lines` or `seed` is not a non-negative integer.
 */
export function builtinCorpus(options: BuiltinCorpusOptions = {}): string[] {
  const { lines = 20000, seed = 0 } = options;
  return generateSentences(lines, seed);
}
