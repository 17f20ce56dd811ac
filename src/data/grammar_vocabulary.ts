/**
 * The built-in grammar's words: nouns, adjectives and verbs with their classes and forms, the closed
 * word classes, and the lexicon the recogniser reads them through (see `grammar.ts` for the grammar).
 *
 * @module
 */

/** The classes of nouns: who acts, what is acted on, where. */
export type NounClass = "creature" | "thing" | "place";
/** Singular or plural. */
export type GrammaticalNumber = "sg" | "pl";
/** A verb's form: present singular, present plural or past. */
export type VerbForm = "sg" | "pl" | "past";

/** Nouns as [singular, plural]; chosen so that `a`/`an` follows the first letter. */
export const NOUNS: Readonly<Record<NounClass, readonly (readonly [string, string])[]>> = {
  creature: [
    ["dog", "dogs"],
    ["cat", "cats"],
    ["fox", "foxes"],
    ["bird", "birds"],
    ["horse", "horses"],
    ["cow", "cows"],
    ["pig", "pigs"],
    ["duck", "ducks"],
    ["frog", "frogs"],
    ["rabbit", "rabbits"],
    ["wolf", "wolves"],
    ["mouse", "mice"],
    ["goose", "geese"],
    ["bear", "bears"],
    ["owl", "owls"],
    ["eagle", "eagles"],
    ["ant", "ants"],
    ["puppy", "puppies"],
    ["boy", "boys"],
    ["girl", "girls"],
    ["man", "men"],
    ["woman", "women"],
    ["child", "children"],
    ["farmer", "farmers"],
    ["king", "kings"],
    ["queen", "queens"],
    ["teacher", "teachers"],
    ["baby", "babies"],
  ],
  thing: [
    ["ball", "balls"],
    ["apple", "apples"],
    ["box", "boxes"],
    ["stone", "stones"],
    ["book", "books"],
    ["hat", "hats"],
    ["key", "keys"],
    ["cup", "cups"],
    ["egg", "eggs"],
    ["stick", "sticks"],
    ["bone", "bones"],
    ["berry", "berries"],
    ["cake", "cakes"],
    ["ring", "rings"],
  ],
  place: [
    ["river", "rivers"],
    ["house", "houses"],
    ["tree", "trees"],
    ["hill", "hills"],
    ["road", "roads"],
    ["garden", "gardens"],
    ["forest", "forests"],
    ["lake", "lakes"],
    ["bridge", "bridges"],
    ["field", "fields"],
    ["wall", "walls"],
    ["table", "tables"],
    ["barn", "barns"],
    ["village", "villages"],
    ["island", "islands"],
  ],
};

/** Adjectives by class, classes in the order they must appear. */
export const ADJECTIVES: readonly (readonly string[])[] = [
  ["happy", "sad", "lazy", "clever", "angry", "quiet", "brave", "ugly"], // opinion
  ["big", "small", "little", "tiny", "large", "tall"], // size
  ["old", "young", "new"], // age
  ["red", "blue", "green", "brown", "black", "white", "grey", "yellow", "orange"], // colour
];
/** The names of the adjective classes, in their order. */
export const ADJECTIVE_CLASS_NAMES = ["opinion", "size", "age", "colour"] as const;

/** Transitive verbs: [present singular, present plural, past, object classes]. */
export const TRANSITIVE: readonly (readonly [string, string, string, readonly NounClass[]])[] = [
  ["sees", "see", "saw", ["creature", "thing"]],
  ["watches", "watch", "watched", ["creature", "thing"]],
  ["finds", "find", "found", ["creature", "thing"]],
  ["likes", "like", "liked", ["creature", "thing"]],
  ["wants", "want", "wanted", ["creature", "thing"]],
  ["catches", "catch", "caught", ["creature", "thing"]],
  ["pushes", "push", "pushed", ["creature", "thing"]],
  ["chases", "chase", "chased", ["creature"]],
  ["follows", "follow", "followed", ["creature"]],
  ["helps", "help", "helped", ["creature"]],
  ["carries", "carry", "carried", ["thing"]],
  ["holds", "hold", "held", ["thing"]],
];

/** Intransitive verbs: [present singular, present plural, past]. */
export const INTRANSITIVE: readonly (readonly [string, string, string])[] = [
  ["sleeps", "sleep", "slept"],
  ["runs", "run", "ran"],
  ["sits", "sit", "sat"],
  ["jumps", "jump", "jumped"],
  ["sings", "sing", "sang"],
  ["waits", "wait", "waited"],
  ["swims", "swim", "swam"],
  ["plays", "play", "played"],
  ["hides", "hide", "hid"],
  ["rests", "rest", "rested"],
];

/** The copula: [present singular, present plural] and [past singular, past plural]. */
export const COPULA: readonly (readonly [string, string])[] = [["is", "are"], ["was", "were"]];
/** Adverbs, which may follow an intransitive verb. */
export const ADVERBS = ["quickly", "slowly", "quietly", "loudly"] as const;
/** Prepositions, which take a place. */
export const PREPOSITIONS = ["near", "under", "behind", "beside", "in", "on", "above", "by"] as const;
/** Determiners of a singular noun. */
export const SINGULAR_DETERMINERS = ["the", "a", "an", "this", "that", "every", "each", "one"] as const;
/** Plural determiners that may be followed by a number word. */
export const PLURAL_DEMONSTRATIVES = ["the", "these", "those"] as const;
/** Plural determiners that stand alone. */
export const PLURAL_QUANTIFIERS = ["some", "many"] as const;
/** Number words, plural determiners alone or after a demonstrative. */
export const NUMBER_WORDS = [
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
  "ten",
  "eleven",
  "twelve",
] as const;
/** The token that ends a sentence. */
export const END = ".";

/** What the recogniser knows about a word. */
export type Entry =
  | { kind: "noun"; cls: NounClass; num: GrammaticalNumber }
  | { kind: "adjective"; cls: number }
  | { kind: "transitive"; form: VerbForm; objects: readonly NounClass[] }
  | { kind: "intransitive"; form: VerbForm }
  | { kind: "copula"; num: GrammaticalNumber }
  | { kind: "adverb" }
  | { kind: "preposition" }
  | { kind: "determiner" }
  | { kind: "number" }
  | { kind: "and" }
  | { kind: "end" };

/** The lexicon: each word belongs to exactly one category (checked when the module loads). */
export const LEXICON: ReadonlyMap<string, Entry> = (() => {
  const lexicon = new Map<string, Entry>();
  const add = (word: string, entry: Entry) => {
    if (lexicon.has(word)) throw new Error(`Cannot build the grammar's lexicon: "${word}" is listed twice`);
    lexicon.set(word, entry);
  };
  for (const cls of ["creature", "thing", "place"] as const) {
    for (const [sg, pl] of NOUNS[cls]) {
      add(sg, { kind: "noun", cls, num: "sg" });
      add(pl, { kind: "noun", cls, num: "pl" });
    }
  }
  ADJECTIVES.forEach((words, cls) => words.forEach((w) => add(w, { kind: "adjective", cls })));
  for (const [sg, pl, past, objects] of TRANSITIVE) {
    add(sg, { kind: "transitive", form: "sg", objects });
    add(pl, { kind: "transitive", form: "pl", objects });
    add(past, { kind: "transitive", form: "past", objects });
  }
  for (const [sg, pl, past] of INTRANSITIVE) {
    add(sg, { kind: "intransitive", form: "sg" });
    add(pl, { kind: "intransitive", form: "pl" });
    add(past, { kind: "intransitive", form: "past" });
  }
  for (const [sg, pl] of COPULA) {
    add(sg, { kind: "copula", num: "sg" });
    add(pl, { kind: "copula", num: "pl" });
  }
  for (const w of ADVERBS) add(w, { kind: "adverb" });
  for (const w of PREPOSITIONS) add(w, { kind: "preposition" });
  for (const w of new Set([...SINGULAR_DETERMINERS, ...PLURAL_DEMONSTRATIVES, ...PLURAL_QUANTIFIERS])) {
    add(w, { kind: "determiner" });
  }
  for (const w of NUMBER_WORDS) add(w, { kind: "number" });
  add("and", { kind: "and" });
  add(END, { kind: "end" });
  return lexicon;
})();

/**
 * Every word the grammar uses, the final "." included, sorted.
 *
 * @example Usage
 * ```ts
 * import { grammarVocabulary } from "./grammar.ts";
 * console.log(grammarVocabulary().length); // 247
 * ```
 * @returns The vocabulary (a fresh array).
 */
export function grammarVocabulary(): string[] {
  return [...LEXICON.keys()].sort();
}

/**
 * The grammar's word lists by category, as documented in `docs/grammar.md`.
 *
 * @example Usage
 * ```ts
 * import { grammarWordLists } from "./grammar.ts";
 * console.log(grammarWordLists()["adjectives (colour)"]!.includes("red")); // true
 * ```
 * @returns Category name → words (fresh arrays).
 */
export function grammarWordLists(): Record<string, string[]> {
  const lists: Record<string, string[]> = {};
  for (const cls of ["creature", "thing", "place"] as const) {
    lists[`nouns (${cls})`] = NOUNS[cls].flatMap(([sg, pl]) => [sg, pl]);
  }
  ADJECTIVES.forEach((words, c) => lists[`adjectives (${ADJECTIVE_CLASS_NAMES[c]})`] = [...words]);
  lists["transitive verbs"] = TRANSITIVE.flatMap(([sg, pl, past]) => [sg, pl, past]);
  lists["intransitive verbs"] = INTRANSITIVE.flatMap((forms) => [...forms]);
  lists["copula"] = COPULA.flat();
  lists["adverbs"] = [...ADVERBS];
  lists["prepositions"] = [...PREPOSITIONS];
  lists["determiners"] = [
    ...new Set([...SINGULAR_DETERMINERS, ...PLURAL_DEMONSTRATIVES, ...PLURAL_QUANTIFIERS]),
  ];
  lists["number words"] = [...NUMBER_WORDS];
  lists["other"] = ["and", END];
  return lists;
}
