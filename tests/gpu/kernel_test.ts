import assert from "node:assert/strict";
import { bindingDeclarations, defineKernel, kernelVariants, parseBindings } from "../../src/gpu/kernel.ts";
import { packUniforms, uniformByteSize } from "../../src/gpu/uniforms.ts";

Deno.test("defineKernel writes the declarations of its spec: reads, writes, then the uniforms", () => {
  const spec = defineKernel({
    name: "k",
    reads: ["a", "ids"],
    writes: ["out"],
    uniforms: { n: "u32", scale: "f32", shift: "i32" },
    elements: { ids: "u32", out: "vec4f" },
    body: "@compute @workgroup_size(1) fn k() {}",
  });
  assert.deepEqual(parseBindings(spec.code), {
    storage: [
      { binding: 0, name: "a", access: "read" },
      { binding: 1, name: "ids", access: "read" },
      { binding: 2, name: "out", access: "read_write" },
    ],
    uniforms: { binding: 3, fields: [["n", "u32"], ["scale", "f32"], ["shift", "i32"]] },
  });
  assert.match(spec.code, /var<storage, read> ids: array<u32>;/);
  assert.match(spec.code, /var<storage, read_write> out: array<vec4f>;/);
  assert.ok(spec.code.endsWith("fn k() {}"));
});

Deno.test("bindingDeclarations writes no uniform struct for a kernel without uniforms", () => {
  const text = bindingDeclarations({ reads: [], writes: ["out"] });
  assert.equal(text, "@group(0) @binding(0) var<storage, read_write> out: array<f32>;");
  assert.equal("uniforms" in defineKernel({ name: "k", reads: [], writes: ["out"], body: "" }), false);
});

Deno.test("kernelVariants builds each variant once, keyed by its options", () => {
  let built = 0;
  const spec = kernelVariants((wg: number) => {
    built++;
    return defineKernel({ name: `k${wg}`, reads: [], writes: ["out"], body: "" });
  });
  assert.equal(spec(64), spec(64));
  assert.notEqual(spec(64), spec(128));
  assert.equal(built, 2);
});

Deno.test("uniform structs are padded to 16 bytes and packed little-endian in field order", () => {
  const spec = defineKernel({
    name: "k",
    reads: [],
    writes: ["out"],
    uniforms: { n: "u32", x: "f32", d: "i32", m: "u32", e: "f32" },
    body: "",
  });
  assert.equal(uniformByteSize(spec), 32);
  const view = new DataView(new ArrayBuffer(64));
  const fields = Object.entries(spec.uniforms!);
  packUniforms(spec, fields, { n: 7, x: 0.5, d: -3, m: 0xffffffff, e: -1.25 }, view, 16);
  assert.deepEqual(
    [view.getUint32(16, true), view.getFloat32(20, true), view.getInt32(24, true), view.getUint32(28, true)],
    [7, 0.5, -3, 0xffffffff],
  );
  assert.equal(view.getFloat32(32, true), -1.25);
  assert.throws(
    () => packUniforms(spec, fields, { n: 1, x: 0, d: 0, m: 0 }, view, 0),
    /uniform "e" is undefined/,
  );
  assert.throws(() => packUniforms(spec, fields, { n: -1, x: 0, d: 0, m: 0, e: 0 }, view, 0), RangeError);
  assert.throws(
    () => packUniforms(spec, fields, { n: 1, x: 0, d: 0, m: 0, e: 0, z: 1 }, view, 0),
    /unknown uniform "z"/,
  );
});
