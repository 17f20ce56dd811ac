/**
 * Reading and writing the safetensors format (an 8-byte little-endian header length, a JSON header
 * mapping names to dtype, shape and byte ranges, then the raw little-endian data), for float32
 * tensors. Pure TypeScript: no GPU and no file system here (see checkpoint.ts for files).
 *
 * @module
 */

/** A float32 tensor on the host with its shape. */
export interface HostTensor {
  /** Dimensions, outermost first. */
  shape: number[];
  /** Elements, row-major. */
  data: Float32Array<ArrayBuffer>;
}

/** The index and value of the first element of `data` that is not finite, or null. */
function firstNonFinite(data: Float32Array): { index: number; value: number } | null {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return { index: i, value: data[i]! };
  return null;
}

function isShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
    Number.isSafeInteger(shape.reduce((a: number, b: number) => a * b, 1));
}

/**
 * Encodes float32 tensors as a safetensors file: the header lists them in the map's order with contiguous
 * data offsets. Every file it returns is one {@linkcode decodeSafetensors} reads back.
 *
 * @example Usage
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(new Map([["w", { shape: [2], data: new Float32Array([1, 2]) }]]));
 * console.log(decodeSafetensors(bytes).tensors.get("w")?.data); // Float32Array [1, 2]
 * ```
 * @param tensors Tensors by name (written in the map's order).
 * @param metadata Optional string metadata stored under `__metadata__`.
 * @returns The file's bytes.
 * @throws {TypeError} If a name is empty or `__metadata__`, a shape is not a list of counts or does not
 * match the data's length, the data is not a Float32Array, or a metadata value is not a string.
 * @throws {RangeError} If a value is NaN or infinite (the message names the tensor and the element).
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, HostTensor>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") {
        throw new TypeError(
          `Cannot encode metadata "${key}": its value is ${typeof value}, expected a string`,
        );
      }
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of tensors) {
    if (typeof name !== "string" || name === "" || name === "__metadata__") {
      throw new TypeError(`Cannot encode tensor ${JSON.stringify(name)}: the name is reserved or empty`);
    }
    if (!(t?.data instanceof Float32Array)) {
      throw new TypeError(`Cannot encode tensor "${name}": its data is not a Float32Array`);
    }
    if (!isShape(t.shape)) {
      throw new TypeError(
        `Cannot encode tensor "${name}": shape ${JSON.stringify(t.shape)} is not a list of counts`,
      );
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new TypeError(
        `Cannot encode tensor "${name}": shape [${t.shape}] holds ${count} values, got ${t.data.length}`,
      );
    }
    const bad = firstNonFinite(t.data);
    if (bad) {
      throw new RangeError(
        `Cannot encode tensor "${name}": element ${bad.index} is ${bad.value}, not finite`,
      );
    }
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Decodes a safetensors file holding F32 tensors. The tensors' data offsets must tile the data exactly
 * (in bounds, contiguous, not overlapping, each the size its shape needs), and every value be finite.
 *
 * @example Usage
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(new Map([["b", { shape: [1], data: new Float32Array([3]) }]]), { step: "7" });
 * console.log(decodeSafetensors(bytes).metadata.step); // "7"
 * ```
 * @param bytes The file's contents (a fetch response's `arrayBuffer()` too).
 * @param source Names the file in error messages.
 * @returns The tensors by name, in file order, and the metadata.
 * @throws {TypeError} If `bytes` is neither a Uint8Array nor an ArrayBuffer.
 * @throws {SyntaxError} If the bytes are not a valid safetensors file of F32 tensors.
 * @throws {RangeError} If a value is NaN or infinite (the message names the tensor and the element).
 */
export function decodeSafetensors(
  bytes: Uint8Array | ArrayBuffer,
  source = "safetensors data",
): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const fail = (problem: string): never => {
    throw new SyntaxError(`Cannot read ${source}: ${problem}`);
  };
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`Cannot read ${source}: expected a Uint8Array or an ArrayBuffer`);
  }
  if (bytes.length < 8) fail(`the file is ${bytes.length} bytes, too short for a safetensors header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) {
    fail(`the header length ${headerLength} exceeds the file size ${bytes.length}`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)),
    );
  } catch (e) {
    return fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) fail("the header is not a JSON object");
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const entries: { name: string; shape: number[]; begin: number; end: number }[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (
        !info || typeof info !== "object" || Array.isArray(info) ||
        !Object.values(info).every((v) => typeof v === "string")
      ) {
        fail("__metadata__ is not an object of strings");
      }
      metadata = info as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = (info ?? {}) as {
      dtype?: unknown;
      shape?: unknown;
      data_offsets?: unknown;
    };
    if (dtype !== "F32") fail(`tensor "${name}" has dtype ${JSON.stringify(dtype)}, expected "F32"`);
    if (!isShape(shape)) fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(Number.isSafeInteger)) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (!(begin >= 0 && end >= begin && end <= dataLength)) {
      fail(`tensor "${name}" has data_offsets [${begin}, ${end}] outside the ${dataLength} data bytes`);
    }
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4) fail(`tensor "${name}" has ${end - begin} bytes for shape [${shape}]`);
    entries.push({ name, shape: shape as number[], begin, end });
  }
  // The ranges, in order, must start at 0, each begin where the previous ended, and end with the data.
  let covered = 0;
  for (const { name, begin, end } of [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)) {
    if (begin < covered) {
      fail(`tensor "${name}" has data_offsets [${begin}, ${end}] overlapping another tensor`);
    }
    if (begin > covered) {
      fail(`the data bytes [${covered}, ${begin}) before tensor "${name}" belong to no tensor`);
    }
    covered = end;
  }
  if (covered !== dataLength) fail(`the data bytes [${covered}, ${dataLength}) belong to no tensor`);
  const tensors = new Map<string, HostTensor>();
  for (const { name, shape, begin, end } of entries) {
    const data = new Float32Array((end - begin) / 4);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    const bad = firstNonFinite(data);
    if (bad) {
      throw new RangeError(
        `Cannot read ${source}: tensor "${name}" element ${bad.index} is ${bad.value}, not finite`,
      );
    }
    tensors.set(name, { shape, data });
  }
  return { tensors, metadata };
}
