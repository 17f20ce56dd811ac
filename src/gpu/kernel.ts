/**
 * Kernel specs: each WGSL module is declared once as data (its entry point, storage bindings in
 * binding order, and the uniform struct), so that launchers bind by name and tests can check that the
 * WGSL text and the spec agree.
 *
 * Vocabulary: a *kernel* is one `@compute` entry point in a complete WGSL module; a *variant* is the text
 * a builder produces for one set of options (tile size, epilogue, f16); the pipeline cache is keyed by the
 * WGSL text, never by tensor sizes, which travel in uniforms.
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

/** Pads a uniform struct of 4-byte scalars to WGSL's uniform size rule (a multiple of 16 bytes). */
export function uniformByteSize(spec: KernelSpec): number {
  const fields = Object.keys(spec.uniforms ?? {}).length;
  return Math.max(16, Math.ceil((fields * 4) / 16) * 16);
}

/**
 * Writes the uniform values of a dispatch into `view` at `byteOffset`, in the spec's field order.
 *
 * @param spec The kernel (for messages).
 * @param fields The spec's uniform fields in order, as `Object.entries(spec.uniforms)`.
 * @param values One number per uniform field.
 * @param view Destination.
 * @param byteOffset Where the struct starts.
 */
export function packUniforms(
  spec: KernelSpec,
  fields: readonly (readonly [string, UniformType])[],
  values: Readonly<Record<string, number>>,
  view: DataView,
  byteOffset: number,
): void {
  let offset = byteOffset;
  let given = 0;
  for (const name in values) if (values[name] !== undefined) given++;
  if (given > fields.length) {
    const unknown = Object.keys(values).find((name) => !fields.some(([f]) => f === name));
    throw new TypeError(`Cannot run kernel "${spec.name}": unknown uniform "${unknown}"`);
  }
  for (let i = 0; i < fields.length; i++) {
    const [name, type] = fields[i]!;
    const value = values[name];
    if (value === undefined || !Number.isFinite(value)) {
      throw new TypeError(
        `Cannot run kernel "${spec.name}": uniform "${name}" is ${value}, expected a finite number`,
      );
    }
    if (type === "f32") view.setFloat32(offset, value, true);
    else if (type === "i32") view.setInt32(offset, value, true);
    else {
      if (value < 0 || value > 0xffffffff || !Number.isInteger(value)) {
        throw new RangeError(
          `Cannot run kernel "${spec.name}": uniform "${name}" is ${value}, expected a u32`,
        );
      }
      view.setUint32(offset, value, true);
    }
    offset += 4;
  }
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
