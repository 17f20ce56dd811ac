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

/**
 * Encodes float32 tensors as a safetensors file.
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
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, HostTensor>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new TypeError(
        `Cannot encode tensor "${name}": shape [${t.shape}] holds ${count} values, got ${t.data.length}`,
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
 * Decodes a safetensors file holding F32 tensors.
 *
 * @example Usage
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(new Map([["b", { shape: [1], data: new Float32Array([3]) }]]), { step: "7" });
 * console.log(decodeSafetensors(bytes).metadata.step); // "7"
 * ```
 * @param bytes The file's contents.
 * @param source Names the file in error messages.
 * @returns The tensors by name, in file order, and the metadata.
 * @throws {SyntaxError} If the bytes are not a valid safetensors file of F32 tensors.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "safetensors data",
): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const fail = (problem: string): never => {
    throw new SyntaxError(`Cannot read ${source}: ${problem}`);
  };
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
  const tensors = new Map<string, HostTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = info as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = (info ?? {}) as {
      dtype?: unknown;
      shape?: unknown;
      data_offsets?: unknown;
    };
    if (dtype !== "F32") fail(`tensor "${name}" has dtype ${JSON.stringify(dtype)}, expected "F32"`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor "${name}" has an invalid shape`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2) fail(`tensor "${name}" has invalid data_offsets`);
    const [begin, end] = offsets as number[];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (
      !(Number.isInteger(begin) && Number.isInteger(end) && begin! >= 0 && end! <= dataLength &&
        end! >= begin!)
    ) {
      fail(`tensor "${name}" has data_offsets [${begin}, ${end}] outside the ${dataLength} data bytes`);
    }
    if (end! - begin! !== count * 4) fail(`tensor "${name}" has ${end! - begin!} bytes for shape [${shape}]`);
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin!, dataStart + end!));
    tensors.set(name, { shape: shape as number[], data });
  }
  return { tensors, metadata };
}
