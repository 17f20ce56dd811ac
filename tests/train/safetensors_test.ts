import assert from "node:assert/strict";
import { decodeSafetensors, encodeSafetensors } from "../../src/train/safetensors.ts";

Deno.test("encodeSafetensors and decodeSafetensors round-trip shapes, values and metadata", () => {
  const tensors = new Map([
    ["a.weight", { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
    ["b", { shape: [1], data: new Float32Array([-0.5]) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
  ]);
  const bytes = encodeSafetensors(tensors, { format: "pt" });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLength) % 8, 0);
  const back = decodeSafetensors(bytes);
  assert.deepEqual([...back.tensors.keys()], ["a.weight", "b", "empty"]);
  assert.deepEqual(back.tensors.get("a.weight"), tensors.get("a.weight"));
  assert.deepEqual(back.metadata, { format: "pt" });
});

Deno.test("decodeSafetensors names the source and the problem for corrupt files", () => {
  const good = encodeSafetensors(new Map([["w", { shape: [2], data: new Float32Array([1, 2]) }]]));
  assert.throws(() => decodeSafetensors(new Uint8Array(3), "m.safetensors"), /m\.safetensors: .*too short/);
  assert.throws(() => decodeSafetensors(good.slice(0, good.length - 4), "m.safetensors"), /outside/);
  const badJson = good.slice();
  badJson[9] = 0x7b;
  badJson[10] = 0x7b;
  assert.throws(() => decodeSafetensors(badJson, "m.safetensors"), SyntaxError);
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  assert.throws(() => decodeSafetensors(huge, "m.safetensors"), /header length/);
});

/** A safetensors file with the given header (no padding) and data bytes, as another writer might make. */
function rawFile(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function f32(...values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

Deno.test("the safetensors reader accepts overlapping or shifted data offsets: each is refused, naming the tensor", () => {
  const cases: [string, Record<string, unknown>, Uint8Array, RegExp][] = [
    [
      "overlapping",
      {
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      },
      f32(1, 2, 3),
      /tensor "b" has data_offsets \[4, 12\] overlapping another tensor/,
    ],
    [
      "the same range twice",
      {
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      },
      f32(1, 2),
      /overlapping another tensor/,
    ],
    [
      "shifted, leaving a gap at the start",
      { a: { dtype: "F32", shape: [2], data_offsets: [4, 12] } },
      f32(0, 1, 2),
      /data bytes \[0, 4\) before tensor "a" belong to no tensor/,
    ],
    [
      "a gap between tensors",
      {
        a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
      },
      f32(1, 0, 2),
      /data bytes \[4, 8\) before tensor "b"/,
    ],
    [
      "bytes after the last tensor",
      { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } },
      f32(1, 2),
      /data bytes \[4, 8\) belong to no tensor/,
    ],
    [
      "past the end",
      { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } },
      f32(1),
      /tensor "a" has data_offsets \[0, 8\] outside the 4 data bytes/,
    ],
    [
      "dtype × shape not the length",
      { a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } },
      f32(1, 2),
      /tensor "a" has 8 bytes for shape \[3\]/,
    ],
    [
      "fractional offsets",
      { a: { dtype: "F32", shape: [1], data_offsets: [0.5, 4.5] } },
      f32(1, 2),
      /tensor "a" has invalid data_offsets/,
    ],
    [
      "a negative dimension",
      { a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } },
      f32(1),
      /tensor "a" has an invalid shape \[-1\]/,
    ],
    [
      "metadata that is not strings",
      { __metadata__: { step: 3 }, a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } },
      f32(1),
      /__metadata__ is not an object of strings/,
    ],
  ];
  for (const [what, header, data, message] of cases) {
    assert.throws(() => decodeSafetensors(rawFile(header, data), "m.safetensors"), (e: Error) => {
      assert.ok(e instanceof SyntaxError, `${what}: ${e}`);
      assert.match(e.message, /^Cannot read m\.safetensors: /, what);
      assert.match(e.message, message, what);
      return true;
    });
  }
  // The same tensors in another order than their data are fine, as other writers may produce.
  const swapped = rawFile(
    {
      b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
      a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
    },
    f32(1, 2),
  );
  const { tensors } = decodeSafetensors(swapped);
  assert.deepEqual([...tensors.keys()], ["b", "a"]);
  assert.deepEqual(tensors.get("b")!.data, new Float32Array([2]));
});

Deno.test("NaN is committed: decodeSafetensors refuses a non-finite value, naming the tensor and element", () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    const file = rawFile(
      {
        a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        b: { dtype: "F32", shape: [3], data_offsets: [4, 16] },
      },
      f32(1, 2, bad, 3),
    );
    assert.throws(
      () => decodeSafetensors(file, "model.safetensors"),
      (e: Error) =>
        e instanceof RangeError && e.message.includes(`model.safetensors: tensor "b" element 1 is ${bad}`),
    );
  }
});

Deno.test("encodeSafetensors writing files its reader refuses: every input is refused or read back", () => {
  const one = (t: unknown, name = "w") => encodeSafetensors(new Map([[name, t as never]]));
  // Refused with TypeError: what is not a tensor.
  const typeErrors: [string, () => unknown, RegExp][] = [
    ["a plain array", () => one({ shape: [2], data: [1, 2] }), /"w": its data is not a Float32Array/],
    ["a Float64Array", () => one({ shape: [1], data: new Float64Array(1) }), /not a Float32Array/],
    [
      "a negative dimension",
      () => one({ shape: [-2], data: new Float32Array(0) }),
      /shape \[-2\] is not a list/,
    ],
    [
      "a fractional dimension",
      () => one({ shape: [1.5], data: new Float32Array(1) }),
      /is not a list of counts/,
    ],
    ["a string dimension", () => one({ shape: ["2"], data: new Float32Array(2) }), /is not a list of counts/],
    ["too few values", () => one({ shape: [3], data: new Float32Array(2) }), /holds 3 values, got 2/],
    ["the reserved name", () => one({ shape: [1], data: new Float32Array(1) }, "__metadata__"), /reserved/],
    ["an empty name", () => one({ shape: [1], data: new Float32Array(1) }, ""), /reserved or empty/],
    [
      "metadata that is not a string",
      () => encodeSafetensors(new Map(), { step: 3 as unknown as string }),
      /metadata "step": its value is number/,
    ],
  ];
  for (const [what, encode, message] of typeErrors) {
    assert.throws(encode, (e: Error) => e instanceof TypeError && message.test(e.message), what);
  }
  // Refused with RangeError: a value that is not finite, named by tensor and element.
  assert.throws(
    () => one({ shape: [2, 2], data: new Float32Array([0, 1, 2, -Infinity]) }),
    (e: Error) => e instanceof RangeError && /"w": element 3 is -Infinity, not finite/.test(e.message),
  );
  // Everything accepted is read back exactly: odd shapes, empty tensors, a view into a larger buffer,
  // extreme finite values, names with dots and Unicode.
  const buffer = new Float32Array([9, 1, -0, 3.4028234663852886e38, 1.401298464324817e-45, 9]);
  const tensors = new Map([
    ["layers.0.w", { shape: [1, 4], data: buffer.subarray(1, 5) }],
    ["é∂", { shape: [0], data: new Float32Array(0) }],
    ["scalar", { shape: [], data: new Float32Array([7]) }],
    ["odd", { shape: [3, 1, 5], data: Float32Array.from({ length: 15 }, (_, i) => i / 7 - 1) }],
  ]);
  const bytes = encodeSafetensors(tensors, { step: "1" });
  const back = decodeSafetensors(bytes);
  // As an ArrayBuffer (what fetch gives) it reads the same; other types are a TypeError.
  assert.deepEqual(decodeSafetensors(bytes.slice().buffer), back);
  assert.throws(() => decodeSafetensors([1, 2] as unknown as Uint8Array), TypeError);
  assert.deepEqual([...back.tensors.keys()], [...tensors.keys()]);
  for (const [name, t] of tensors) {
    assert.deepEqual(back.tensors.get(name)!.shape, t.shape, name);
    assert.deepEqual(
      new Uint32Array(back.tensors.get(name)!.data.slice().buffer),
      new Uint32Array(t.data.slice().buffer),
      name,
    );
  }
});
