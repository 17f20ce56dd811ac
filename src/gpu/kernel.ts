/**
 * Kernel specs: each WGSL module is declared once as data (its entry point, storage bindings in
 * binding order, and the uniform struct), so that launchers bind by name and tests can check that the
 * WGSL text and the spec agree.
 *
 * Vocabulary: a *kernel* is one `@compute` entry point in a complete WGSL module; a *variant* is the text
 * a builder produces for one set of options (tile size, epilogue, f16); the pipeline cache is keyed by the
 * spec (entry point and WGSL text), never by tensor sizes, which travel in uniforms.
 *
 * Convention for every kernel family: a kernel is built with {@linkcode defineKernel}, which writes the
 * binding declarations from the spec (no hand-written `@binding` lines); a family whose text depends on
 * options exports a builder made by {@linkcode kernelVariants}, keyed by those options only. The shapes
 * that recur — pointwise kernels, a workgroup per row, workgroup tree reductions, column sums over row
 * segments — come from kernels/_wgsl.ts, and tests/kernels/specs_test.ts compiles every family's
 * kernels against their specs.
 *
 * @module
 */

/** The scalar types a uniform field may have. */
export type UniformType = "u32" | "i32" | "f32";

/**
 * A compute kernel: one entry point of a complete WGSL module. Storage buffers sit in group 0 at
 * bindings 0…n−1 in the order `reads` then `writes`; the uniform struct (if any) follows at binding n
 * as `var<uniform> params: Params` with fields in the order of `uniforms`.
 *
 * @example Usage
 * ```ts
 * import type { KernelSpec } from "@difflm/core/kernels";
 * const scale: KernelSpec = {
 *   name: "scale_forward",
 *   reads: ["inp"],
 *   writes: ["out"],
 *   uniforms: { n: "u32", factor: "f32" },
 *   code: `struct Params { n: u32, factor: f32 }
 * @group(0) @binding(0) var<storage, read> inp: array<f32>;
 * @group(0) @binding(1) var<storage, read_write> out: array<f32>;
 * @group(0) @binding(2) var<uniform> params: Params;
 * @compute @workgroup_size(64) fn scale_forward(@builtin(global_invocation_id) id: vec3u) {
 *   if (id.x < params.n) { out[id.x] = inp[id.x] * params.factor; }
 * }`,
 * };
 * console.log(scale.name);
 * ```
 */
export interface KernelSpec {
  /** The `@compute` entry point; also the label in error messages and timings. */
  readonly name: string;
  /** The complete WGSL module. */
  readonly code: string;
  /** Storage buffers read only (`var<storage, read>`), in binding order. */
  readonly reads: readonly string[];
  /** Storage buffers written (`var<storage, read_write>`), after the reads in binding order. */
  readonly writes: readonly string[];
  /** Uniform fields in struct order; omit when the kernel takes no uniforms. */
  readonly uniforms?: Readonly<Record<string, UniformType>>;
}

/** The element type of a storage binding's `array<…>` (`f16` and `vec4h` need `enable f16;`). */
export type StorageElement = "f32" | "i32" | "u32" | "vec4f" | "f16" | "vec4h";

/**
 * A kernel before its binding declarations are written: the spec's fields, the element type of every
 * storage binding that is not `f32`, and the rest of the WGSL module.
 */
export interface KernelDefinition {
  /** The `@compute` entry point. */
  readonly name: string;
  /** Storage buffers read only, in binding order. */
  readonly reads: readonly string[];
  /** Storage buffers written, after the reads in binding order. */
  readonly writes: readonly string[];
  /** Uniform fields in struct order; omit when the kernel takes no uniforms. */
  readonly uniforms?: Readonly<Record<string, UniformType>>;
  /** Element types of the storage bindings that are not `array<f32>`. */
  readonly elements?: Readonly<Record<string, StorageElement>>;
  /** The WGSL after the declarations: constants, workgroup memory, helper functions, the entry point. */
  readonly body: string;
}

function wgslElement(element: StorageElement = "f32"): string {
  return element === "vec4h" ? "vec4<f16>" : element;
}

/**
 * Writes the declarations a kernel's spec implies: `struct Params` with the uniform fields in order, one
 * `var<storage>` per binding (reads `read`, then writes `read_write`, at bindings 0…n−1), and
 * `var<uniform> params: Params` at binding n.
 *
 * @example Usage
 * ```ts
 * import { bindingDeclarations } from "./kernel.ts";
 * console.log(bindingDeclarations({ reads: ["inp"], writes: ["out"], uniforms: { n: "u32" } }));
 * ```
 * @param io The bindings, uniforms and element types.
 * @returns The WGSL declarations, one per line.
 */
export function bindingDeclarations(io: Omit<KernelDefinition, "name" | "body">): string {
  const lines: string[] = [];
  if (io.uniforms) {
    lines.push(`struct Params { ${Object.entries(io.uniforms).map(([k, t]) => `${k}: ${t}`).join(", ")} }`);
  }
  const storage = [...io.reads, ...io.writes];
  storage.forEach((name, i) => {
    const access = i < io.reads.length ? "read" : "read_write";
    lines.push(
      `@group(0) @binding(${i}) var<storage, ${access}> ${name}: array<${wgslElement(io.elements?.[name])}>;`,
    );
  });
  if (io.uniforms) lines.push(`@group(0) @binding(${storage.length}) var<uniform> params: Params;`);
  return lines.join("\n");
}

/**
 * Builds a kernel spec whose WGSL module opens with the declarations written from the spec
 * ({@linkcode bindingDeclarations}), so that the two cannot disagree.
 *
 * @example Usage
 * ```ts
 * import { defineKernel } from "./kernel.ts";
 * const scale = defineKernel({
 *   name: "scale_forward",
 *   reads: ["inp"],
 *   writes: ["out"],
 *   uniforms: { n: "u32", factor: "f32" },
 *   body: `@compute @workgroup_size(64) fn scale_forward(@builtin(global_invocation_id) id: vec3u) {
 *   if (id.x < params.n) { out[id.x] = inp[id.x] * params.factor; }
 * }`,
 * });
 * console.log(scale.code.split("\n")[1]); // @group(0) @binding(0) var<storage, read> inp: array<f32>;
 * ```
 * @param definition The kernel.
 * @returns The spec, its `code` a complete WGSL module.
 */
export function defineKernel(definition: KernelDefinition): KernelSpec {
  const { name, reads, writes, uniforms, body } = definition;
  const code = `${bindingDeclarations(definition)}\n${body}`;
  return uniforms ? { name, reads, writes, uniforms, code } : { name, reads, writes, code };
}

/**
 * Memoises a family's spec builder by the options that change its WGSL text, so that a launcher asks
 * for its spec on every dispatch and gets the same object (whose pipeline the runtime finds at once).
 *
 * @example Usage
 * ```ts
 * import { defineKernel, kernelVariants } from "./kernel.ts";
 * const fillSpec = kernelVariants((value: number) =>
 *   defineKernel({
 *     name: "fill_value",
 *     reads: [],
 *     writes: ["out"],
 *     body: `@compute @workgroup_size(1) fn fill_value() { out[0] = ${value}.0; }`,
 *   })
 * );
 * console.log(fillSpec(3) === fillSpec(3)); // true
 * ```
 * @param build Builds the spec of one variant.
 * @param key The cache key of a variant: everything `build` reads (defaults to its JSON).
 * @returns The memoised builder.
 */
export function kernelVariants<V>(
  build: (variant: V) => KernelSpec,
  key: (variant: V) => string = (variant) => JSON.stringify(variant),
): (variant: V) => KernelSpec {
  const specs = new Map<string, KernelSpec>();
  return (variant) => {
    const k = key(variant);
    let spec = specs.get(k);
    if (!spec) specs.set(k, spec = build(variant));
    return spec;
  };
}

/**
 * Formats a WGSL compilation failure: the messages with line:column, then the numbered source.
 *
 * @param spec The kernel that failed.
 * @param messages The compiler's messages.
 * @returns A readable multi-line message.
 */
export function formatCompileError(spec: KernelSpec, messages: readonly GPUCompilationMessage[]): string {
  const errors = messages.filter((m) => m.type === "error")
    .map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
  const numbered = spec.code.split("\n").map((line, i) => `${String(i + 1).padStart(4)} | ${line}`).join(
    "\n",
  );
  return `Cannot compile kernel "${spec.name}": ${errors.join("; ")}\n${numbered}`;
}

/**
 * Reads the storage-binding and uniform declarations of a WGSL module, for checking a spec against its
 * text: names in binding order with their access mode, and the fields of `struct Params`.
 *
 * @param code A WGSL module.
 * @returns The storage bindings and uniform fields as declared.
 */
export function parseBindings(code: string): {
  storage: { binding: number; name: string; access: "read" | "read_write" }[];
  uniforms: { binding: number; fields: [string, string][] } | null;
} {
  const storage: { binding: number; name: string; access: "read" | "read_write" }[] = [];
  let uniforms: { binding: number; fields: [string, string][] } | null = null;
  const declaration =
    /@group\(0\)\s*@binding\((\d+)\)\s*var<(storage|uniform)(?:,\s*(read_write|read))?>\s*(\w+)/g;
  for (const m of code.matchAll(declaration)) {
    const binding = Number(m[1]);
    if (m[2] === "storage") {
      storage.push({ binding, name: m[4]!, access: (m[3] ?? "read") as "read" | "read_write" });
    } else {
      const struct = /struct\s+Params\s*\{([^}]*)\}/.exec(code);
      const fields: [string, string][] = [];
      for (const f of (struct?.[1] ?? "").split(",")) {
        const fm = /(\w+)\s*:\s*(\w+)/.exec(f);
        if (fm) fields.push([fm[1]!, fm[2]!]);
      }
      uniforms = { binding, fields };
    }
  }
  storage.sort((a, b) => a.binding - b.binding);
  return { storage, uniforms };
}
