/**
 * Small hash structures for the encoders: a table keyed by a pair of ints, and a byte trie built on it
 * for common-prefix search over the vocabulary.
 *
 * @module
 */

/** Open-addressing hash table from an ordered pair of non-negative ints to a non-negative int. */
export class PairTable {
  #keysA: Int32Array;
  #keysB: Int32Array;
  #values: Int32Array;
  #mask: number;

  /** @param capacity Expected number of entries. */
  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.#keysA = new Int32Array(size).fill(-1);
    this.#keysB = new Int32Array(size);
    this.#values = new Int32Array(size);
    this.#mask = size - 1;
  }

  /** Sets the value of (a, b). */
  set(a: number, b: number, value: number): void {
    let slot = hashPair(a, b) & this.#mask;
    while (this.#keysA[slot] !== -1 && (this.#keysA[slot] !== a || this.#keysB[slot] !== b)) {
      slot = (slot + 1) & this.#mask;
    }
    this.#keysA[slot] = a;
    this.#keysB[slot] = b;
    this.#values[slot] = value;
  }

  /** The value of (a, b), or -1. */
  get(a: number, b: number): number {
    let slot = hashPair(a, b) & this.#mask;
    for (;;) {
      const k = this.#keysA[slot]!;
      if (k === -1) return -1;
      if (k === a && this.#keysB[slot] === b) return this.#values[slot]!;
      slot = (slot + 1) & this.#mask;
    }
  }
}

function hashPair(a: number, b: number): number {
  let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77);
  h ^= h >>> 15;
  return h >>> 0;
}

/** A trie over UTF-8 bytes whose keys carry non-negative values; children live in one {@linkcode PairTable}. */
export class ByteTrie {
  readonly #children: PairTable;
  readonly #values: Int32Array;

  /**
   * @param keys The keys as UTF-8 bytes.
   * @param values The value of each key (non-negative).
   */
  constructor(keys: readonly Uint8Array[], values: readonly number[]) {
    let total = 1;
    for (const k of keys) total += k.length;
    this.#children = new PairTable(total);
    const nodeValues = new Int32Array(total).fill(-1);
    let nodes = 1;
    keys.forEach((key, i) => {
      let node = 0;
      for (const b of key) {
        let child = this.#children.get(node, b);
        if (child < 0) {
          child = nodes++;
          this.#children.set(node, b, child);
        }
        node = child;
      }
      nodeValues[node] = values[i]!;
    });
    this.#values = nodeValues.slice(0, nodes);
  }

  /** The child of `node` along byte `b`, or -1. The root is node 0. */
  child(node: number, b: number): number {
    return this.#children.get(node, b);
  }

  /** The value of the key ending at `node`, or -1 when no key ends there. */
  value(node: number): number {
    return this.#values[node]!;
  }
}
