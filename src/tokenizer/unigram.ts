/**
 * Unigram segmentation as SentencePiece does it: the Viterbi best path over every vocabulary match
 * (its optimized, byte-position encoder, including the float32 arithmetic that decides ties), plus
 * subword regularization: sampling from the whole lattice (forward filtering, backward sampling) or
 * from the n best paths. The sampling keeps the reference's float32 arithmetic, heap order and
 * `discrete_distribution` draws, so with the same Mersenne Twister stream it picks the same samples.
 *
 * Vocabulary: the *lattice* holds one node per vocabulary match (and an unknown node where no
 * single-character piece exists) between character positions; BOS and EOS close it.
 *
 * @module
 */
import { ByteTrie } from "./_pair_table.ts";
import type { SpanList, Vocab } from "./_vocab.ts";
import { oneCharLength } from "./normalizer.ts";
import { type RandomSource, uniformDouble } from "./mt19937.ts";
import { PieceType } from "./model_proto.ts";

/** Penalty below the lowest piece score given to an unknown character. */
const UNK_PENALTY = 10;
/** Scores beyond this are rebased to keep float32 precision on very long inputs. */
const SCORE_RESET_THRESHOLD = 100000;
/** The smallest positive float32, the reference's starting value for the highest score. */
const FLT_MIN = 1.1754943508222875e-38;
const UTF8_ENCODER = new TextEncoder();
const fround = Math.fround;

/** Options of one sampled unigram encoding. */
export interface UnigramSampleOptions {
  /** Inverse temperature applied to the scores (SentencePiece's `alpha`). */
  alpha: number;
  /** `< 0`: sample from the whole lattice; `> 1`: sample among the n best paths. */
  nbestSize: number;
  /** Random source for the draws. */
  rng: RandomSource;
}

/**
 * The lattice of one text in flat arrays. Node 0 is BOS (ends at position 0), node 1 is EOS (begins at
 * the last position); the others follow in insertion order, which is by start position, so the nodes
 * beginning at a position are a contiguous range. The nodes ending at a position are listed in
 * insertion order, as the reference lists them.
 */
class Lattice {
  /** Number of character positions. */
  chars = 0;
  /** Byte offset of each character, plus the end. */
  charStart = new Int32Array(64);
  /** Character index of each byte offset that starts a character, else -1. */
  charOfByte = new Int32Array(64);
  nodeCount = 0;
  begin = new Int32Array(64);
  end = new Int32Array(64);
  id = new Int32Array(64);
  score = new Float32Array(64);
  /** First node beginning at each position (`beginFirst[chars]` = node count). */
  beginFirst = new Int32Array(64);
  /** Nodes ending at position p: `endList[endFirst[p] … endFirst[p + 1])`. */
  endFirst = new Int32Array(64);
  endList = new Int32Array(64);

  reset(src: Uint8Array, length: number): void {
    if (this.charOfByte.length < length + 1) {
      this.charStart = new Int32Array(length * 2 + 2);
      this.charOfByte = new Int32Array(length * 2 + 2);
      this.beginFirst = new Int32Array(length * 2 + 2);
      this.endFirst = new Int32Array(length * 2 + 3);
    }
    this.charOfByte.fill(-1, 0, length + 1);
    let chars = 0;
    for (let pos = 0; pos < length; pos += Math.min(oneCharLength(src[pos]!), length - pos)) {
      this.charOfByte[pos] = chars;
      this.charStart[chars++] = pos;
    }
    this.charStart[chars] = length;
    this.charOfByte[length] = chars;
    this.chars = chars;
    this.nodeCount = 0;
    this.add(0, 0, -1, 0); // BOS
    this.add(chars, chars, -1, 0); // EOS
  }

  add(begin: number, end: number, id: number, score: number): void {
    const n = this.nodeCount++;
    if (n === this.id.length) {
      const size = n * 2;
      const grow = (a: Int32Array) => {
        const b = new Int32Array(size);
        b.set(a);
        return b;
      };
      this.begin = grow(this.begin);
      this.end = grow(this.end);
      this.id = grow(this.id);
      const score = new Float32Array(size);
      score.set(this.score);
      this.score = score;
    }
    this.begin[n] = begin;
    this.end[n] = end;
    this.id[n] = id;
    this.score[n] = score;
  }

  /** Builds the begin ranges and end lists once all nodes are added. */
  index(): void {
    const chars = this.chars;
    const n = this.nodeCount;
    let node = 2;
    for (let p = 0; p < chars; p++) {
      this.beginFirst[p] = node;
      while (node < n && this.begin[node] === p) node++;
    }
    this.beginFirst[chars] = n;
    if (this.endList.length < n) this.endList = new Int32Array(n * 2);
    const endFirst = this.endFirst;
    endFirst.fill(0, 0, chars + 2);
    endFirst[1] = 1; // BOS ends at 0
    for (let i = 2; i < n; i++) endFirst[this.end[i]! + 1]!++;
    for (let p = 1; p <= chars + 1; p++) endFirst[p]! += endFirst[p - 1]!;
    const fill = endFirst.slice(0, chars + 1);
    this.endList[fill[0]!++] = 0;
    for (let i = 2; i < n; i++) this.endList[fill[this.end[i]!]!++] = i;
  }

  /** First and one-past-last node beginning at `pos` (EOS alone at the last position). */
  beginRange(pos: number): [number, number] {
    return pos < this.chars ? [this.beginFirst[pos]!, this.beginFirst[pos + 1]!] : [1, 2];
  }
}

/**
 * A unigram model ready to segment normalized text.
 *
 * @example Usage
 * ```ts
 * import { ModelType, PieceType, Tokenizer } from "@difflm/core/tokenizer";
 * // UnigramModel is used through Tokenizer, which picks it for unigram models.
 * const piece = (piece: string, score: number, type: PieceType = PieceType.NORMAL) => ({ piece, score, type });
 * const tok = Tokenizer.fromProto({
 *   pieces: [piece("<unk>", 0, PieceType.UNKNOWN), piece("▁", -3), piece("▁in", -2), piece("▁the", -2)]
 *     .concat(["i", "n", "t", "h", "e"].map((c) => piece(c, -4))),
 *   trainerSpec: { modelType: ModelType.UNIGRAM },
 *   normalizerSpec: {},
 * });
 * console.log(tok.encodeAsPieces("in the inn")); // ["▁in", "▁the", "▁in", "n"]: the most likely segmentation
 * ```
 */
export class UnigramModel {
  readonly #vocab: Vocab;
  readonly #trie: ByteTrie;
  readonly #minScore: number;
  readonly #maxScore: number;
  #bestScore = new Float32Array(256);
  #startsAt = new Int32Array(256);
  #bestId = new Int32Array(256);
  readonly #lattice = new Lattice();

  /** @param vocab The model's vocabulary. */
  constructor(vocab: Vocab) {
    this.#vocab = vocab;
    const keys: Uint8Array[] = [];
    const values: number[] = [];
    for (const [piece, id] of vocab.mergeable) {
      keys.push(UTF8_ENCODER.encode(piece));
      values.push(id);
    }
    this.#trie = new ByteTrie(keys, values);
    let minScore = 3.4028234663852886e38;
    let maxScore = FLT_MIN;
    vocab.types.forEach((type, id) => {
      if (type !== PieceType.NORMAL) return;
      minScore = Math.min(minScore, vocab.scores[id]!);
      maxScore = Math.max(maxScore, vocab.scores[id]!);
    });
    this.#minScore = minScore;
    this.#maxScore = maxScore;
  }

  /**
   * Appends the Viterbi segmentation of normalized UTF-8 `src[0, length)` to `out`.
   *
   * @param src Normalized text as UTF-8.
   * @param length Number of valid bytes in `src`.
   * @param out Receives the spans with their ids.
   */
  encode(src: Uint8Array, length: number, out: SpanList): void {
    if (length === 0) return;
    if (this.#bestScore.length < length + 1) {
      this.#bestScore = new Float32Array(length * 2 + 1);
      this.#startsAt = new Int32Array(length * 2 + 1);
      this.#bestId = new Int32Array(length * 2 + 1);
    }
    const bestScore = this.#bestScore;
    const startsAt = this.#startsAt;
    const bestId = this.#bestId;
    bestScore.fill(0, 0, length + 1);
    startsAt.fill(-1, 0, length + 1);
    const types = this.#vocab.types;
    const scores = this.#vocab.scores;
    const trie = this.#trie;
    const unkScore = fround(this.#minScore - UNK_PENALTY);
    const maxScore = this.#maxScore;
    const unkId = this.#vocab.unkId;
    let maxFrontier = 0;
    for (let start = 0; start < length;) {
      let tillHere = bestScore[start]!;
      if (tillHere < -SCORE_RESET_THRESHOLD || tillHere > SCORE_RESET_THRESHOLD) {
        for (let i = start; i <= maxFrontier; i++) {
          if (i === start || startsAt[i] !== -1) bestScore[i] = fround(bestScore[i]! - tillHere);
        }
        tillHere = 0;
      }
      const charLen = Math.min(oneCharLength(src[start]!), length - start);
      let hasSingleNode = false;
      let node = 0;
      for (let pos = start; pos < length;) {
        node = trie.child(node, src[pos]!);
        if (node < 0) break;
        pos++;
        const id = trie.value(node);
        if (id < 0 || types[id] === PieceType.UNUSED) continue;
        if (pos > maxFrontier) maxFrontier = pos;
        const pieceLen = pos - start;
        // The reference mixes float and double here; ties depend on it.
        const score = types[id] === PieceType.USER_DEFINED ? fround(pieceLen * maxScore) - 0.1 : scores[id]!;
        const candidate = score + tillHere;
        if (startsAt[pos] === -1 || candidate > bestScore[pos]!) {
          bestScore[pos] = candidate;
          startsAt[pos] = start;
          bestId[pos] = id;
        }
        if (pieceLen === charLen) hasSingleNode = true;
      }
      if (!hasSingleNode) {
        const pos = start + charLen;
        if (pos > maxFrontier) maxFrontier = pos;
        const candidate = fround(unkScore + tillHere);
        if (startsAt[pos] === -1 || candidate > bestScore[pos]!) {
          bestScore[pos] = candidate;
          startsAt[pos] = start;
          bestId[pos] = unkId;
        }
      }
      start += charLen;
    }
    const first = out.length;
    for (let end = length; end > 0;) {
      const start = startsAt[end]!;
      out.push(start, end - start, bestId[end]!);
      end = start;
    }
    // Spans were appended back to front.
    for (let i = first, j = out.length - 1; i < j; i++, j--) {
      swap(out.start, i, j);
      swap(out.len, i, j);
      swap(out.id, i, j);
    }
  }

  /**
   * Appends a sampled segmentation of normalized UTF-8 `src[0, length)` to `out`.
   *
   * @param src Normalized text as UTF-8.
   * @param length Number of valid bytes in `src`.
   * @param options Inverse temperature, n-best size and random source.
   * @param out Receives the spans with their ids.
   */
  sample(src: Uint8Array, length: number, options: UnigramSampleOptions, out: SpanList): void {
    if (length === 0) return;
    const lattice = this.#buildLattice(src, length);
    const path = options.nbestSize > 1
      ? this.#sampleNBest(lattice, options.nbestSize, options.alpha, options.rng)
      : this.#sampleLattice(lattice, options.alpha, options.rng);
    for (const n of path) {
      const start = lattice.charStart[lattice.begin[n]!]!;
      out.push(start, lattice.charStart[lattice.end[n]!]! - start, lattice.id[n]!);
    }
  }

  #buildLattice(src: Uint8Array, length: number): Lattice {
    const lattice = this.#lattice;
    lattice.reset(src, length);
    const types = this.#vocab.types;
    const unkScore = fround(this.#minScore - UNK_PENALTY);
    const charOfByte = lattice.charOfByte;
    for (let c = 0; c < lattice.chars; c++) {
      let hasSingleNode = false;
      let node = 0;
      for (let pos = lattice.charStart[c]!; pos < length;) {
        node = this.#trie.child(node, src[pos]!);
        if (node < 0) break;
        pos++;
        const id = this.#trie.value(node);
        if (id < 0 || types[id] === PieceType.UNUSED) continue;
        const endChar = charOfByte[pos]!;
        if (endChar < 0) continue;
        const charLength = endChar - c;
        const score = types[id] === PieceType.USER_DEFINED
          ? fround(fround(charLength * this.#maxScore) - 0.1)
          : this.#vocab.scores[id]!;
        lattice.add(c, endChar, id, score);
        if (charLength === 1) hasSingleNode = true;
      }
      if (!hasSingleNode) lattice.add(c, c + 1, this.#vocab.unkId, unkScore);
    }
    lattice.index();
    return lattice;
  }

  /**
   * Forward algorithm: log of the summed weight of all paths from BOS to each node's start. Float32
   * arithmetic where the reference uses floats, so that the sampled paths match it.
   */
  #forward(lattice: Lattice, invTheta: number): Float32Array {
    const alpha = new Float32Array(lattice.nodeCount);
    const { endFirst, endList, score } = lattice;
    for (let pos = 0; pos <= lattice.chars; pos++) {
      const [rb, re] = lattice.beginRange(pos);
      const eb = endFirst[pos]!;
      const ee = endFirst[pos + 1]!;
      for (let r = rb; r < re; r++) {
        let acc = 0;
        for (let k = eb; k < ee; k++) {
          const l = endList[k]!;
          const y = fround(fround(invTheta * score[l]!) + alpha[l]!);
          acc = k === eb ? y : logSumExp(acc, y);
        }
        alpha[r] = acc;
      }
    }
    return alpha;
  }

  /** Forward filtering, backward sampling: a path drawn with probability ∝ exp(alpha · score). */
  #sampleLattice(lattice: Lattice, alpha: number, rng: RandomSource): number[] {
    const invTheta = fround(alpha);
    const forward = this.#forward(lattice, invTheta);
    const { endFirst, endList, score } = lattice;
    const path: number[] = [];
    const probs: number[] = [];
    let node = 1;
    let z = forward[1]!;
    for (;;) {
      const pos = lattice.begin[node]!;
      const eb = endFirst[pos]!;
      const ee = endFirst[pos + 1]!;
      probs.length = 0;
      for (let k = eb; k < ee; k++) {
        const l = endList[k]!;
        probs.push(fround(Math.exp(fround(fround(forward[l]! + fround(invTheta * score[l]!)) - z))));
      }
      node = endList[eb + discreteSample(probs, rng)]!;
      if (node === 0) break;
      z = forward[node]!;
      path.push(node);
    }
    return path.reverse();
  }

  /**
   * The n best paths by A* search (the Viterbi scores are the exact heuristic), then one drawn with
   * probability ∝ exp(alpha · score). Float32 scores and libstdc++'s heap order, so that ties between
   * equally scored paths resolve as in the reference.
   */
  #sampleNBest(lattice: Lattice, nbestSize: number, alpha: number, rng: RandomSource): number[] {
    const { endFirst, endList } = lattice;
    // Viterbi from BOS: best score of a path ending with each node (the first best wins ties).
    const backtrace = new Float32Array(lattice.nodeCount);
    for (let pos = 0; pos <= lattice.chars; pos++) {
      const [rb, re] = lattice.beginRange(pos);
      for (let r = rb; r < re; r++) {
        let best = 0;
        for (let k = endFirst[pos]!; k < endFirst[pos + 1]!; k++) {
          const score = fround(backtrace[endList[k]!]! + lattice.score[r]!);
          if (k === endFirst[pos] || score > best) best = score;
        }
        backtrace[r] = best;
      }
    }
    const agenda: Hypothesis[] = [];
    heapPush(agenda, { node: 1, next: null, fx: backtrace[1]!, gx: 0 });
    const results: { path: number[]; score: number }[] = [];
    const limit = Math.max(1, Math.min(nbestSize, 1024));
    while (agenda.length > 0) {
      const top = heapPop(agenda);
      if (top.node === 0) {
        const path: number[] = [];
        for (let h = top.next; h !== null && h.next !== null; h = h.next) path.push(h.node);
        results.push({ path, score: top.fx });
        if (results.length === limit) break;
        continue;
      }
      const pos = lattice.begin[top.node]!;
      for (let k = endFirst[pos]!; k < endFirst[pos + 1]!; k++) {
        const l = endList[k]!;
        heapPush(agenda, {
          node: l,
          next: top,
          fx: fround(backtrace[l]! + top.gx),
          gx: fround(lattice.score[l]! + top.gx),
        });
      }
      if (agenda.length >= MAX_AGENDA_SIZE) {
        // Keep the best hypotheses only, as the reference does for long or repetitive inputs.
        const kept: Hypothesis[] = [];
        const size = Math.min(MIN_AGENDA_SIZE, limit * 10);
        for (let i = 0; i < size; i++) heapPush(kept, heapPop(agenda));
        agenda.length = 0;
        for (const h of kept) agenda.push(h);
      }
    }
    const invTheta = fround(alpha);
    const probs = results.map((r) => fround(Math.exp(fround(invTheta * r.score))));
    return results[discreteSample(probs, rng)]!.path;
  }
}

/** A partial path of the n-best search, from a lattice node back to EOS. */
interface Hypothesis {
  node: number;
  next: Hypothesis | null;
  /** Priority: the path's score so far plus the best score from BOS to `node`. */
  fx: number;
  /** Score of the nodes from `node` (exclusive) to EOS. */
  gx: number;
}

/** Agenda sizes at which the n-best search shrinks its agenda, and to what. */
const MAX_AGENDA_SIZE = 100000;
const MIN_AGENDA_SIZE = 512;

/** `std::priority_queue::push` (libstdc++ `__push_heap`), a max-heap on `fx`. */
function heapPush(heap: Hypothesis[], value: Hypothesis): void {
  heap.push(value);
  siftUp(heap, heap.length - 1, value);
}

/** Moves `value` from `hole` up past the parents with a lower `fx` (libstdc++ `__push_heap`). */
function siftUp(heap: Hypothesis[], hole: number, value: Hypothesis): void {
  let parent = (hole - 1) >> 1;
  while (hole > 0 && heap[parent]!.fx < value.fx) {
    heap[hole] = heap[parent]!;
    hole = parent;
    parent = (hole - 1) >> 1;
  }
  heap[hole] = value;
}

/** `std::priority_queue::pop` (libstdc++ `__pop_heap` / `__adjust_heap`); returns the old top. */
function heapPop(heap: Hypothesis[]): Hypothesis {
  const top = heap[0]!;
  const value = heap.pop()!;
  const len = heap.length;
  if (len === 0) return top;
  let hole = 0;
  let child = 0;
  while (child < (len - 1) >> 1) {
    child = 2 * (child + 1);
    if (heap[child]!.fx < heap[child - 1]!.fx) child--;
    heap[hole] = heap[child]!;
    hole = child;
  }
  if ((len & 1) === 0 && child === (len - 2) >> 1) {
    child = 2 * (child + 1);
    heap[hole] = heap[child - 1]!;
    hole = child - 1;
  }
  siftUp(heap, hole, value);
  return top;
}

function swap(a: Int32Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

/** log(exp(x) + exp(y)) as the reference computes it: float inputs, the correction term in double. */
function logSumExp(x: number, y: number): number {
  const lo = Math.min(x, y);
  const hi = Math.max(x, y);
  if (hi > fround(lo + 50)) return hi;
  return fround(hi + Math.log(Math.exp(fround(lo - hi)) + 1));
}

/**
 * Index drawn with probability ∝ `weights[i]`, exactly as libstdc++'s `discrete_distribution` draws it:
 * normalized cumulative weights (the last forced to 1), then `lower_bound` of a uniform double. Fewer
 * than two weights return 0 without a draw; all-zero weights give NaNs and hence index 0, as there.
 */
export function discreteSample(weights: readonly number[], rng: RandomSource): number {
  const n = weights.length;
  if (n < 2) return 0;
  let total = 0;
  for (const w of weights) total += w;
  const cumulative = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) {
    acc += weights[i]! / total;
    cumulative[i] = acc;
  }
  cumulative[n - 1] = 1;
  const u = uniformDouble(rng);
  let first = 0;
  let len = n;
  while (len > 0) {
    const half = len >> 1;
    const middle = first + half;
    if (cumulative[middle]! < u) {
      first = middle + 1;
      len = len - half - 1;
    } else len = half;
  }
  return first;
}
