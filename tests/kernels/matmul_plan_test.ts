/**
 * The matmul planner's tensor-core choices under each TensorCorePolicy, on a device described by hand
 * (subgroup matrices, an H100's limits): pure planning, no GPU.
 */
import assert from "node:assert/strict";
import {
  DEFAULT_TENSOR_CORE_POLICY,
  type PlanContext,
  planProduct,
  setTensorCorePolicy,
  type TensorCorePolicy,
} from "../../src/tensor/ops/_matmul_plan.ts";
import { TENSOR_CORE_TILES, tensorCoreMatmulKernel } from "../../kernels/matmul_tc.ts";

const context: PlanContext = {
  precision: "mixed",
  features: { f16: true, timestamps: true, subgroups: true, subgroupMatrix: true },
  limits: {
    maxStorageBufferBindingSize: 2 ** 31,
    maxComputeWorkgroupStorageSize: 49152,
  } as GPUSupportedLimits,
  defer: false,
};

const forward = { batch: 1, M: 16384, N: 2048, K: 512 };
const weightGradient = { batch: 1, M: 512, N: 512, K: 16384 };

function withPolicy<T>(next: TensorCorePolicy, fn: () => T): T {
  const previous = setTensorCorePolicy(next);
  try {
    return fn();
  } finally {
    setTensorCorePolicy(previous);
  }
}

Deno.test("the default tensor-core plan stages f32 operands on 128×128 tiles, long reductions split", () => {
  const big = planProduct(forward, { transB: true }, context);
  assert.equal(big.halves, false);
  assert.match(big.spec.name, /^matmul_tc_nt_128x128x32_2x2s1_v4$/);
  const dW = planProduct(weightGradient, { transA: true }, context);
  assert.match(dW.spec.name, /_128x128x32_2x2s1_/);
  assert.ok(dW.splits > 1);
  assert.equal(dW.halves, false);
  const narrow = planProduct({ batch: 1, M: 512, N: 512, K: 512 }, { transB: true }, context);
  assert.match(narrow.spec.name, /_64x64x32_/, "16 large tiles would not fill the card");
});

Deno.test("gridTile puts large grids on the 128×256 or the 256×128 tile, twoStages on two unrolled stages", () => {
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, gridTile: "wide" }, () => {
    assert.match(
      planProduct(forward, { transB: true }, context).spec.name,
      /^matmul_tc_nt_128x256x32_2x4s1_v4$/,
    );
  });
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, gridTile: "tall" }, () => {
    assert.match(
      planProduct(forward, { transB: true }, context).spec.name,
      /^matmul_tc_nt_256x128x32_4x2s1_v4$/,
    );
  });
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, twoStages: true }, () => {
    assert.match(
      planProduct(forward, { transB: true }, context).spec.name,
      /^matmul_tc_nt_128x128x32_2x2s2u_v4$/,
    );
  });
});

Deno.test("biasFirst and strips change the epilogue where they apply and the workgroup memory allows", () => {
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, biasFirst: true, strips: true }, () => {
    const bias = planProduct(forward, { transB: true, bias: true }, context).spec;
    assert.match(bias.name, /^matmul_tc_nt_128x128x32_2x2s1_v4_bias_first_strips$/);
    // Without a bias there is nothing to start from; the strips stay.
    const plain = planProduct(forward, { transB: true }, context).spec;
    assert.match(plain.name, /^matmul_tc_nt_128x128x32_2x2s1_v4_strips$/);
    // A split product adds its bias in the reduction pass.
    assert.doesNotMatch(
      planProduct(weightGradient, { transA: true, bias: true }, context).spec.name,
      /_first/,
    );
  });
  // The 128×256 tile's stages (30 KiB) leave no room for a row of its 8 subgroups' fragments (32 KiB).
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, gridTile: "wide", biasFirst: true, strips: true }, () => {
    assert.match(
      planProduct(forward, { transB: true, bias: true }, context).spec.name,
      /^matmul_tc_nt_128x256x32_2x4s1_v4_bias_first$/,
    );
  });
  assert.match(planProduct(forward, { transB: true, bias: true }, context).spec.name, /_v4_bias$/);
});

Deno.test("fewTile medium puts grids too few for large tiles on 128×64 tiles where those fill the card", () => {
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, fewTile: "medium" }, () => {
    // Batch-64 sampling's FFN down-projection: 128 large tiles, under one per compute unit.
    const b64 = planProduct({ batch: 1, M: 4096, N: 512, K: 2048 }, { transB: true }, context);
    assert.match(b64.spec.name, /^matmul_tc_nt_128x64x32_2x2s1_v4$/);
    const b8 = planProduct({ batch: 1, M: 512, N: 512, K: 2048 }, { transB: true }, context);
    assert.match(b8.spec.name, /_64x64x32_2x2s2_/, "32 medium tiles would not fill the card either");
    const oneSequence = planProduct({ batch: 1, M: 64, N: 512, K: 512 }, { transB: true }, context);
    assert.match(oneSequence.spec.name, /_64x64x32_2x2s2_/, "64 rows would leave half a 128-row tile idle");
    assert.match(planProduct(forward, { transB: true }, context).spec.name, /_128x128x32_/);
  });
  const b64 = planProduct({ batch: 1, M: 4096, N: 512, K: 2048 }, { transB: true }, context);
  assert.match(b64.spec.name, /_64x64x32_2x2s2_/);
});

Deno.test("fewTile large8 puts grids too few for large tiles on 8-subgroup 128×128 tiles where those nearly fill the card", () => {
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, fewTile: "large8" }, () => {
    // Batch-64 sampling's FFN down-projection and attention output: 128 tiles of 128×128.
    const b64 = planProduct({ batch: 1, M: 4096, N: 512, K: 2048 }, { transB: true, bias: true }, context);
    assert.match(b64.spec.name, /^matmul_tc_nt_128x128x32_2x4s2_v4_bias$/);
    assert.equal(b64.splits, 1);
    const b8 = planProduct({ batch: 1, M: 512, N: 512, K: 2048 }, { transB: true }, context);
    assert.match(b8.spec.name, /_64x64x32_2x2s2_/, "16 tiles would leave most of the card idle");
    assert.match(planProduct(forward, { transB: true }, context).spec.name, /_128x128x32_2x2s1_/);
  });
});

Deno.test("group launches large grids' tiles in groups of tile rows; small tiles keep row-major order", () => {
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, group: 8 }, () => {
    const big = planProduct(forward, { transB: true }, context);
    assert.match(big.spec.name, /^matmul_tc_nt_128x128x32_2x2s1_g8_v4$/);
    assert.equal(
      planProduct(forward, { transB: true }, context).spec,
      big.spec,
      "one spec per tile and group",
    );
    const small = planProduct({ batch: 1, M: 512, N: 512, K: 512 }, { transB: true }, context);
    assert.match(small.spec.name, /_64x64x32_2x2s2_v4$/);
  });
  assert.doesNotMatch(planProduct(forward, { transB: true }, context).spec.name, /_g\d/);
  assert.throws(() => tensorCoreMatmulKernel({ tile: { ...TENSOR_CORE_TILES.large, group: 1.5 } }), /group/);
});

Deno.test("f16 operands go to large-tile products only; direct loads where fragments are whole", () => {
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, operands: "f16" }, () => {
    const big = planProduct(forward, { transB: true }, context);
    assert.equal(big.halves, true);
    assert.match(big.spec.name, /_2x2s1_h_v4$/);
    const small = planProduct({ batch: 1, M: 512, N: 512, K: 512 }, { transB: true }, context);
    assert.equal(small.halves, false, "a 64×64-tile product keeps its f32 operands");
  });
  withPolicy({ operands: "f16", splitLongK: false, direct: true }, () => {
    assert.match(planProduct(forward, { transB: true }, context).spec.name, /_2x2d_h_v4$/);
    const ragged = planProduct({ batch: 1, M: 16384, N: 2040, K: 512 }, { transB: true }, context);
    assert.match(ragged.spec.name, /_2x2s1_h_v4$/, "N not a multiple of 16: staged");
  });
});

Deno.test("splitLongK gives weight gradients large tiles split to about one wave; off, 64×64 tiles", () => {
  const dW = planProduct(weightGradient, { transA: true }, context);
  // 4 × 4 large tiles: 9 chunks of 1824 (multiples of the tile's 32) cover K = 16384.
  assert.deepEqual([dW.splits, dW.kChunk, dW.grid], [9, 1824, [4, 4, 9]]);
  assert.ok(dW.kChunk * dW.splits >= weightGradient.K && dW.kChunk % 32 === 0);
  const head = planProduct({ batch: 1, M: 8000, N: 512, K: 16384 }, { transA: true }, context);
  assert.equal(head.splits, 1, "252 large tiles fill the card already");
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, splitLongK: false }, () => {
    assert.match(planProduct(weightGradient, { transA: true }, context).spec.name, /_64x64x32_/);
  });
});

Deno.test("f32Below leaves products short in M and K to the f32 kernels with f16-rounded operands", () => {
  const sampling = { batch: 1, M: 4096, N: 2048, K: 512 };
  assert.match(
    planProduct(sampling, { transB: true }, context).spec.name,
    /^matmul_tc_/,
    "default: tensor cores",
  );
  withPolicy({ ...DEFAULT_TENSOR_CORE_POLICY, f32Below: 8192 }, () => {
    const plan = planProduct(sampling, { transB: true }, context);
    assert.doesNotMatch(plan.spec.name, /^matmul_tc_/);
    assert.match(plan.spec.code, /round_f16/, "operands rounded to f16 as tensor cores would see them");
    assert.match(planProduct(forward, { transB: true }, context).spec.name, /^matmul_tc_/, "M = 16384");
    assert.match(
      planProduct(weightGradient, { transA: true }, context).spec.name,
      /^matmul_tc_/,
      "K = 16384",
    );
  });
});

Deno.test("a product with a prologue keeps its plan, its operands in f32 and the prologue in its kernel", () => {
  const sampling = { batch: 1, M: 64, N: 512, K: 2048 };
  for (const precision of ["f32", "mixed"] as const) {
    const f32 = { ...context, precision, features: { ...context.features, subgroupMatrix: false } };
    const plain = planProduct(sampling, { transB: true }, f32);
    const fused = planProduct(sampling, { transB: true, prologue: "parts_bias_gelu" }, f32);
    assert.deepEqual([fused.splits, fused.kChunk, fused.grid], [plain.splits, plain.kChunk, plain.grid]);
    assert.equal(fused.spec.name, `${plain.spec.name}_a_parts_bias_gelu`);
  }
  withPolicy({ operands: "f16", splitLongK: false, direct: true }, () => {
    const fused = planProduct(forward, { transB: true, prologue: "parts_bias_gelu" }, context);
    assert.equal(fused.halves, false, "A is computed from f32 partials: no f16 copies");
    assert.equal(fused.spec.name, "matmul_tc_nt_128x128x32_2x2s1_v4_a_parts_bias_gelu");
  });
});
