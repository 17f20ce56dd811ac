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
