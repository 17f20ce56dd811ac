/**
 * embedding: the gather out[t, e] = table[ids[t], e] and its backward, the scatter-add
 * dtable[v, e] += Σ_{t : ids[t] = v} dout[t, e], done deterministically (the same bits every run).
 *
 * Forward: one invocation per output element; ids outside [0, V) read as zero rows.
 *
 * Backward, in three steps, none with float atomics (WGSL has none, and a compare-exchange loop would
 * both serialise on frequent ids — the pad token fills a large share of a batch — and sum in a
 * scheduling-dependent order):
 * 1. A stable LSD radix sort of the positions by id, 8 bits per pass (2 passes for V ≤ 65535): per
 *    256-position block a digit histogram (`embedding_sort_histogram`, stored digit-major), one
 *    exclusive scan over all of them (`embedding_sort_scan`, one workgroup), and a stable scatter in
 *    which each position's rank among equal digits of its block comes from a shared-memory count
 *    (`embedding_sort_scatter`). Out-of-range ids sort last under the key V and are skipped.
 * 2. Each id's range [start, end) in the sorted order (`embedding_backward_bounds`).
 * 3. A segmented sum: the sorted order is cut into segments of 64 entries; the first entry of every run
 *    of one id inside a segment sums that run, in sorted (= position) order, for each column
 *    (`embedding_backward_partial`); then one invocation per (v, e) adds the partials of v's runs in
 *    order into dtable (`embedding_backward_sum`). No loop is longer than 64 entries plus N/64 partials,
 *    so a frequent id costs little more than a rare one.
 * Saved for backward: nothing but the ids. Reference: tests/ref/embedding.ts (float64).
 *
 * @module
 */
import { defineKernel, type KernelSpec } from "../src/gpu/kernel.ts";
import { pointwiseKernel, workgroupEntry } from "./_wgsl.ts";

/** Sorted entries per segment of the segmented sum. */
export const EMBEDDING_SEGMENT = 64;

/** Positions per block of the radix sort (one workgroup each). */
export const EMBEDDING_SORT_BLOCK = 256;

/** out[t·cols + e] = table[ids[t]·cols + e], or 0 when ids[t] ∉ [0, vocab); n = N·cols elements. */
export const EMBEDDING_FORWARD: KernelSpec = pointwiseKernel({
  name: "embedding_forward",
  reads: ["table", "ids"],
  writes: ["out"],
  uniforms: { n: "u32", cols: "u32", vocab: "u32" },
  elements: { ids: "u32" },
  body:
    /* wgsl */ `// ids are i32 on the host: a negative id reads as a huge u32, out of range like any other.
  let id = ids[i / params.cols];
  var value = 0.0;
  if (id < params.vocab) { value = table[id * params.cols + i % params.cols]; }
  out[i] = value;`,
});

/**
 * hist[d·blocks + b] = number of positions of block b whose key min(keys[t], vocab) has digit d at
 * `shift`; one workgroup per block of 256 positions.
 */
export const EMBEDDING_SORT_HISTOGRAM: KernelSpec = defineKernel({
  name: "embedding_sort_histogram",
  reads: ["keys"],
  writes: ["hist"],
  uniforms: { n: "u32", blocks: "u32", shift: "u32", vocab: "u32" },
  elements: { keys: "u32", hist: "u32" },
  body: /* wgsl */ `
var<workgroup> counts: array<atomic<u32>, 256>;

${workgroupEntry("embedding_sort_histogram", "256", "b", "params.blocks")}
  atomicStore(&counts[lid], 0u);
  workgroupBarrier();
  let t = b * 256u + lid;
  if (t < params.n) {
    let key = min(keys[t], params.vocab);
    atomicAdd(&counts[(key >> params.shift) & 255u], 1u);
  }
  workgroupBarrier();
  hist[lid * params.blocks + b] = atomicLoad(&counts[lid]);
}
`,
});

/** hist[0…m) ← its exclusive prefix sum, in one workgroup (each invocation scans a contiguous slice). */
export const EMBEDDING_SORT_SCAN: KernelSpec = defineKernel({
  name: "embedding_sort_scan",
  reads: [],
  writes: ["hist"],
  uniforms: { m: "u32" },
  elements: { hist: "u32" },
  body: /* wgsl */ `
var<workgroup> partial: array<u32, 256>;

@compute @workgroup_size(256)
fn embedding_sort_scan(@builtin(local_invocation_index) lid: u32) {
  let per = (params.m + 255u) / 256u;
  let start = min(params.m, lid * per);
  let end = min(params.m, start + per);
  var own = 0u;
  for (var i = start; i < end; i++) { own += hist[i]; }
  partial[lid] = own;
  workgroupBarrier();
  // Hillis–Steele inclusive scan of the 256 slice sums.
  for (var offset = 1u; offset < 256u; offset = offset << 1u) {
    var add = 0u;
    if (lid >= offset) { add = partial[lid - offset]; }
    workgroupBarrier();
    partial[lid] += add;
    workgroupBarrier();
  }
  var run = partial[lid] - own;
  for (var i = start; i < end; i++) {
    let c = hist[i];
    hist[i] = run;
    run += c;
  }
}
`,
});

/**
 * Stable scatter of one radix pass: position t of block b goes to hist[d·blocks + b] + (number of
 * earlier positions of block b with the same digit d). The first pass reads the ids as keys and takes
 * t itself as the value (`first` = 1).
 */
export const EMBEDDING_SORT_SCATTER: KernelSpec = defineKernel({
  name: "embedding_sort_scatter",
  reads: ["keys_in", "vals_in", "hist"],
  writes: ["keys_out", "vals_out"],
  uniforms: { n: "u32", blocks: "u32", shift: "u32", vocab: "u32", first: "u32" },
  elements: { keys_in: "u32", vals_in: "u32", hist: "u32", keys_out: "u32", vals_out: "u32" },
  body: /* wgsl */ `
var<workgroup> digits: array<u32, 256>;

${workgroupEntry("embedding_sort_scatter", "256", "b", "params.blocks")}
  let t = b * 256u + lid;
  var key = 0u;
  var digit = 256u; // matches no real digit
  if (t < params.n) {
    key = min(keys_in[t], params.vocab);
    digit = (key >> params.shift) & 255u;
  }
  digits[lid] = digit;
  workgroupBarrier();
  if (t >= params.n) { return; }
  var rank = 0u;
  for (var j = 0u; j < lid; j++) {
    rank += select(0u, 1u, digits[j] == digit);
  }
  let dest = hist[digit * params.blocks + b] + rank;
  keys_out[dest] = key;
  vals_out[dest] = select(vals_in[t], t, params.first == 1u);
}
`,
});

/** bounds[2v], bounds[2v+1] = first and one-past-last index of key v in the sorted keys (bounds cleared first). */
export const EMBEDDING_BACKWARD_BOUNDS: KernelSpec = defineKernel({
  name: "embedding_backward_bounds",
  reads: ["keys"],
  writes: ["bounds"],
  uniforms: { n: "u32", vocab: "u32" },
  elements: { keys: "u32", bounds: "u32" },
  body: /* wgsl */ `
@compute @workgroup_size(256)
fn embedding_backward_bounds(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let k = gid.x + gid.y * groups.x * 256u;
  if (k >= params.n) { return; }
  let key = keys[k];
  if (key >= params.vocab) { return; }
  if (k == 0u || keys[k - 1u] != key) { bounds[2u * key] = k; }
  if (k + 1u == params.n || keys[k + 1u] != key) { bounds[2u * key + 1u] = k + 1u; }
}
`,
});

/**
 * For the first sorted entry k of each run of one key inside a segment of 64 entries:
 * partial[k·cols + e] = Σ over the run of dout[vals[j]·cols + e]; one invocation per (k, e).
 */
export const EMBEDDING_BACKWARD_PARTIAL: KernelSpec = pointwiseKernel({
  name: "embedding_backward_partial",
  reads: ["keys", "vals", "dout"],
  writes: ["partial"],
  uniforms: { n: "u32", cols: "u32", vocab: "u32" },
  elements: { keys: "u32", vals: "u32" },
  helpers: /* wgsl */ `
const SEGMENT = ${EMBEDDING_SEGMENT}u;
`,
  count: "params.n * params.cols",
  body: /* wgsl */ `let k = i / params.cols;
  let e = i % params.cols;
  let key = keys[k];
  if (key >= params.vocab) { return; }
  if (k % SEGMENT != 0u && keys[k - 1u] == key) { return; } // not the first of its run
  let end = min(params.n, (k / SEGMENT + 1u) * SEGMENT);
  let cols = params.cols;
  // The keys are sorted, so the run is a prefix of [k, end). Four entries per round, their loads
  // independent (a short critical path for frequent ids); the additions stay in sorted order.
  var acc = 0.0;
  for (var j = k; j < end; j += 4u) {
    if (keys[j] != key) { break; }
    var a = vec4f(dout[vals[j] * cols + e], 0.0, 0.0, 0.0);
    if (j + 1u < end && keys[j + 1u] == key) { a.y = dout[vals[j + 1u] * cols + e]; }
    if (j + 2u < end && keys[j + 2u] == key) { a.z = dout[vals[j + 2u] * cols + e]; }
    if (j + 3u < end && keys[j + 3u] == key) { a.w = dout[vals[j + 3u] * cols + e]; }
    acc += a.x;
    acc += a.y;
    acc += a.z;
    acc += a.w;
  }
  partial[i] = acc;`,
});

/**
 * dtable[v·cols + e] += Σ of the partials of key v's runs, in sorted order (one run per segment that v
 * touches); one invocation per (v, e).
 */
export const EMBEDDING_BACKWARD_SUM: KernelSpec = pointwiseKernel({
  name: "embedding_backward_sum",
  reads: ["bounds", "partial"],
  writes: ["dtable"],
  uniforms: { vocab: "u32", cols: "u32" },
  elements: { bounds: "u32" },
  helpers: /* wgsl */ `
const SEGMENT = ${EMBEDDING_SEGMENT}u;
`,
  count: "params.vocab * params.cols",
  body: /* wgsl */ `let v = i / params.cols;
  let e = i % params.cols;
  let start = bounds[2u * v];
  let end = bounds[2u * v + 1u];
  if (start >= end) { return; }
  let cols = params.cols;
  // Runs start at \`start\` and then at every segment boundary before \`end\`; four per round, their
  // loads independent, added in order.
  var acc = 0.0;
  var k = start;
  loop {
    let k1 = (k / SEGMENT + 1u) * SEGMENT;
    var a = vec4f(partial[k * cols + e], 0.0, 0.0, 0.0);
    if (k1 < end) { a.y = partial[k1 * cols + e]; }
    if (k1 + SEGMENT < end) { a.z = partial[(k1 + SEGMENT) * cols + e]; }
    if (k1 + 2u * SEGMENT < end) { a.w = partial[(k1 + 2u * SEGMENT) * cols + e]; }
    acc += a.x;
    acc += a.y;
    acc += a.z;
    acc += a.w;
    k = k1 + 3u * SEGMENT;
    if (k >= end) { break; }
  }
  dtable[i] += acc;`,
});
