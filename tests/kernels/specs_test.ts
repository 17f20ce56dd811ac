/**
 * Every kernel the library builds compiles, and its WGSL declares exactly the bindings of its spec:
 * each kernel module's KernelSpec constants, and each spec builder at the variants the launchers use.
 */
import assert from "node:assert/strict";
import { ignore, testEngine } from "../_gpu.ts";
import { assertKernelSpec } from "../_check.ts";
import type { KernelSpec } from "../../src/gpu/kernel.ts";
import * as fill from "../../src/gpu/fill.ts";
import * as adamw from "../../kernels/adamw.ts";
import * as attention from "../../kernels/attention.ts";
import * as attentionTc from "../../kernels/attention_tc.ts";
import * as elementwise from "../../kernels/elementwise.ts";
import * as embedding from "../../kernels/embedding.ts";
import * as gelu from "../../kernels/gelu.ts";
import * as layerNorm from "../../kernels/layer_norm.ts";
import * as loss from "../../kernels/loss.ts";
import * as lossScale from "../../kernels/loss_scale.ts";
import * as random from "../../kernels/random.ts";
import * as softmax from "../../kernels/softmax.ts";
import * as timeEmbedding from "../../kernels/time_embedding.ts";

/** The KernelSpec constants a module exports. */
function constants(module: Record<string, unknown>): KernelSpec[] {
  return Object.values(module).filter((v): v is KernelSpec =>
    typeof v === "object" && v !== null && "code" in v && "reads" in v
  );
}

/**
 * Per family: its module, how many KernelSpec constants the module exports, and the builders' variants
 * (the kernels the launchers ask for, and their edges).
 */
const FAMILIES: Record<
  string,
  { module: Record<string, unknown>; constants: number; variants?: () => KernelSpec[] }
> = {
  fill: { module: fill, constants: 2 },
  adamw: { module: adamw, constants: 7 },
  attention: {
    module: attention,
    constants: 0,
    variants: () =>
      [4, 8, 16, 32, 64].flatMap((hd) => [
        attention.attentionForwardSpec(hd),
        attention.attentionForwardTiledSpec(hd),
        attention.attentionForwardTiledSpec(hd, 32),
        attention.attentionBackwardSpec(hd),
        attention.attentionBackwardTiledSpec(hd),
        attention.attentionBackwardTiledSpec(hd, 16),
      ]),
  },
  // The tensor-core kernels compile only on Dawn; here their emulated variants (every line but the
  // fragment operations), at sizes whose f32 halves fit a CPU adapter's 32 KiB.
  attentionTc: {
    module: attentionTc,
    constants: 0,
    variants: () =>
      [[7, 16], [24, 20], [32, 32], [17, 4]].flatMap(([L, hd]) => [
        attentionTc.attentionForwardTensorCoreSpec(L!, hd!, { emulated: true }),
        attentionTc.attentionForwardTensorCoreSpec(L!, hd!, { emulated: true, parts: true }),
        attentionTc.attentionBackwardTensorCoreSpec(L!, hd!, { emulated: true }),
        attentionTc.attentionBackwardTensorCoreSpec(L!, hd!, { emulated: true, accumulate: true }),
      ]),
  },
  elementwise: {
    module: elementwise,
    constants: 4,
    variants: () => [
      ...[false, true].flatMap((accumulate) => [
        elementwise.binarySpec({ op: "add", accumulate }),
        elementwise.binarySpec({ op: "mul", accumulate }),
        elementwise.scaleSpec({ accumulate }),
        elementwise.maskedFillSpec({ accumulate }),
        elementwise.copyColsSpec({ accumulate }),
        elementwise.sumRowsSpec({ product: false, accumulate }),
        elementwise.sumRowsSpec({ product: true, accumulate }),
      ]),
      ...[1, 2, 3, 4].map((inputs) => elementwise.concatSpec(inputs)),
      elementwise.reduceSpec({ square: false }),
      elementwise.reduceSpec({ square: true }),
      ...(["sum", "square", "norm"] as const).map((mode) => elementwise.reduceBackwardSpec({ mode })),
    ],
  },
  embedding: { module: embedding, constants: 7 },
  gelu: { module: gelu, constants: 3 },
  layer_norm: {
    module: layerNorm,
    constants: 2,
    variants: () => [
      ...[32, 64, 128, 256].flatMap((wg) => [
        ...[false, true].flatMap((weight) =>
          [false, true].map((bias) => layerNorm.layerNormForwardSpec({ weight, bias, wg }))
        ),
        layerNorm.layerNormForwardSpec({ weight: true, bias: true, wg, cols: 2 * wg + 5 }),
        layerNorm.layerNormBackwardSpec({ weight: false, wg }),
        layerNorm.layerNormBackwardSpec({ weight: true, wg }),
        layerNorm.layerNormForwardSpec({ weight: true, bias: true, wg, residual: true }),
        layerNorm.layerNormForwardSpec({ weight: true, bias: true, wg, residual: true, residualBias: true }),
      ]),
    ],
  },
  loss: { module: loss, constants: 9 },
  loss_scale: { module: lossScale, constants: 1 },
  random: {
    module: random,
    constants: 8,
    variants: () =>
      [false, true].flatMap((res) =>
        [false, true].map((inp) => random.dropoutAddBackwardKernel({ res, inp }))
      ),
  },
  softmax: {
    module: softmax,
    constants: 0,
    variants: () =>
      ([64, 256] as const).flatMap((workgroup) => [
        softmax.softmaxForwardSpec({ workgroup, inPlace: false }),
        softmax.softmaxForwardSpec({ workgroup, inPlace: true }),
        softmax.softmaxForwardSpec({ workgroup, inPlace: false, parts: "plain" }),
        softmax.softmaxForwardSpec({ workgroup, inPlace: false, parts: "bias" }),
        softmax.softmaxBackwardSpec(workgroup),
      ]),
  },
  time_embedding: { module: timeEmbedding, constants: 2 },
};

for (const [family, { module, constants: count, variants }] of Object.entries(FAMILIES)) {
  Deno.test(
    { name: `every ${family} kernel compiles and declares the bindings of its spec`, ignore },
    async () => {
      const engine = await testEngine();
      const exported = constants(module);
      assert.equal(exported.length, count, `${family} exports ${exported.length} KernelSpec constants`);
      for (const spec of [...exported, ...variants?.() ?? []]) await assertKernelSpec(engine, spec);
    },
  );
}
