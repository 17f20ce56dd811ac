import assert from "node:assert/strict";
import { Mt19937, uniformDouble } from "../../src/tokenizer/mod.ts";

Deno.test("Mt19937 matches std::mt19937: first outputs and the 10000th output of the default seed", () => {
  const mt = new Mt19937();
  assert.equal(mt.nextUint32(), 3499211612);
  assert.equal(mt.nextUint32(), 581869302);
  for (let i = 3; i < 10000; i++) mt.nextUint32();
  // The C++ standard requires this value ([rand.predef]).
  assert.equal(mt.nextUint32(), 4123659995);
  assert.equal(new Mt19937(42).nextUint32(), 1608637542);
});

Deno.test("uniformDouble combines two outputs as libstdc++ does and stays below 1", () => {
  const fixed = (values: number[]) => {
    let i = 0;
    return { nextUint32: () => values[i++]! };
  };
  assert.equal(uniformDouble(fixed([0, 0])), 0);
  assert.equal(uniformDouble(fixed([0, 2 ** 31])), 0.5);
  assert.equal(uniformDouble(fixed([0xffffffff, 0xffffffff])), 1 - 2 ** -53);
  const mt = new Mt19937(42);
  for (let i = 0; i < 1000; i++) {
    const u = mt.nextDouble();
    assert.ok(u >= 0 && u < 1);
  }
});
