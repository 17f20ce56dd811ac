/**
 * fill: the runtime's zero-fill, constant fill and copy as compute kernels, so that they stay inside the
 * open compute pass (a pass boundary, which `clearBuffer` and `copyBufferToBuffer` force, costs the host
 * far more than a dispatch in wgpu). Also used for constants, ones and the NaN poison that tests write
 * into outputs before a kernel runs.
 * Parallelism: one invocation per 32-bit word, 256 per workgroup, grid folded into 2-D past 65535
 * groups. `start` places the range inside a binding whose offset was rounded down to the device's
 * storage alignment.
 *
 * @module
 */
import type { BufferView } from "./buffer_pool.ts";
import { defineKernel, type KernelSpec } from "./kernel.ts";

/** Writes `bits` into words `start .. start + n` of `out`. */
export const FILL: KernelSpec = defineKernel({
  name: "fill",
  reads: [],
  writes: ["out"],
  uniforms: { n: "u32", start: "u32", bits: "u32" },
  elements: { out: "u32" },
  body: /* wgsl */ `
@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i < params.n) { out[params.start + i] = params.bits; }
}
`,
});

/** Copies `n` words from `src[srcStart ..]` to `dst[dstStart ..]` (two distinct buffers). */
export const COPY: KernelSpec = defineKernel({
  name: "copy_words",
  reads: ["src"],
  writes: ["dst"],
  uniforms: { n: "u32", srcStart: "u32", dstStart: "u32" },
  elements: { src: "u32", dst: "u32" },
  body: /* wgsl */ `
@compute @workgroup_size(256)
fn copy_words(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * 256u;
  if (i < params.n) { dst[params.dstStart + i] = src[params.srcStart + i]; }
}
`,
});

/** One dispatch of {@linkcode FILL} or {@linkcode COPY}: a bindable view and the word range in it. */
export interface WordRange {
  /** A view whose offset is rounded down to the storage alignment. */
  readonly view: BufferView;
  /** The word of `view` where the range starts. */
  readonly start: number;
}

/**
 * Splits `words` words at `byteOffset` of `buffer` into bindable pieces: each piece's view starts at an
 * aligned offset and stays under the binding size limit, whatever the offset's remainder.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { wordRanges } from "./fill.ts";
 * const { device } = await getGpu();
 * const buffer = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE });
 * const [range] = wordRanges(buffer, 260, 10, { storageAlign: 256, maxBinding: 1 << 27 });
 * console.log(range?.view.byteOffset, range?.start); // 256 1
 * buffer.destroy();
 * ```
 * @param buffer The buffer.
 * @param byteOffset Where the words start (a multiple of 4).
 * @param words How many words.
 * @param limits The device's storage offset alignment and binding size limit.
 * @returns One range per dispatch, with the number of words `n` it covers and its offset `done` in words.
 */
export function wordRanges(
  buffer: GPUBuffer,
  byteOffset: number,
  words: number,
  limits: { readonly storageAlign: number; readonly maxBinding: number },
): (WordRange & { n: number; done: number })[] {
  const align = limits.storageAlign;
  const perBinding = Math.floor((limits.maxBinding - align) / 4);
  const ranges: (WordRange & { n: number; done: number })[] = [];
  for (let done = 0; done < words;) {
    const n = Math.min(words - done, perBinding);
    const at = byteOffset + 4 * done;
    const lead = at % align;
    ranges.push({
      view: { buffer, byteOffset: at - lead, byteLength: lead + 4 * n },
      start: lead / 4,
      n,
      done,
    });
    done += n;
  }
  return ranges;
}

/**
 * The grid of a one-word-per-invocation kernel (256 per workgroup), folded into 2-D past the limit.
 *
 * @example Usage
 * ```ts
 * import { wordGrid } from "./fill.ts";
 * console.log(wordGrid(256 * 70000, 65535)); // [35000, 2]
 * ```
 * @param words Invocations needed.
 * @param maxGroups The device's `maxComputeWorkgroupsPerDimension`.
 * @returns Workgroups in x and y.
 */
export function wordGrid(words: number, maxGroups: number): [number, number] {
  const groups = Math.ceil(words / 256);
  const y = Math.ceil(groups / maxGroups);
  return [Math.ceil(groups / y), y];
}
