/**
 * LayerNorm kernels at the encoder's size: rows = B·L = 16384 (B=256, L=64), C = 512, the FiLM variant
 * (γ, β slices of a [B, 32·512] film tensor) on a GPU; 1024 rows on a CPU adapter (isFallbackAdapter,
 * or llvmpipe/lavapipe in the description), where only the code path matters. Also the embedding
 * LayerNorm (affine, C = 64) at the same row count.
 *
 * Variants timed (kernels/layer_norm.ts builds them; the launchers pick wg 128 at C = 512):
 *   v1 wg=64, v2 wg=128, v3 wg=256 — one workgroup per row, Welford per invocation + Chan tree merge.
 * Bytes counted (the minimum traffic, f32): forward reads x and writes out (8·R·C) plus mean/rstd;
 * backward (dx) reads x, dout and reads+writes dinp (16·R·C); parameter gradients read x and dout
 * (8·R·C). γ/β reads are B·C and not counted.
 *
 * Before timing, one forward/backward is checked against tests/ref/layer_norm.ts on the first and last
 * rows. Then GPU time per kernel (timestamp queries, when granted) is printed with GB/s; `deno bench`
 * reports wall time per iteration, each waiting for the GPU.
 *
 * Run: `XDG_RUNTIME_DIR=/tmp deno bench -A bench/layer_norm_bench.ts`
 */
import { Engine, grid1d } from "../src/tensor/engine.ts";
import { layerNorm, layerNormFilm } from "../src/tensor/ops/layer_norm.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { layerNormForwardSpec } from "../kernels/layer_norm.ts";
import { layerNormBackwardRef, layerNormRef } from "../tests/ref/layer_norm.ts";
import { assertClose, randn } from "../tests/_check.ts";

const engine = await Engine.create();
const { gpu } = engine.runtime;
const cpu = gpu.adapter.info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(gpu.description);
const [B, L, C, S, E] = [cpu ? 16 : 256, 64, 512, 32, 64];
const rows = B * L;
const gammaSlice = 4 * 3 + 1, betaSlice = 4 * 3 + 3; // layer 3, γ2 and β2

const xHost = randn(rows * C, 1);
const filmHost = randn(B * S * C, 2);
const doutHost = randn(rows * C, 3);
const x = engine.tensor(xHost, [B, L, C]);
const film = engine.tensor(filmHost, [B, S * C]);
const dout = engine.tensor(doutHost, [B, L, C]);
const emb = engine.tensor(randn(rows * E, 4), [B, L, E]);
const embWeight = engine.tensor(randn(E, 5), [E]);
const embBias = engine.tensor(randn(E, 6), [E]);
const embDout = engine.tensor(randn(rows * E, 7), [B, L, E]);
x.requiresGrad = true;
film.requiresGrad = true;
embWeight.requiresGrad = true;
embBias.requiresGrad = true;
// Gradients outside any scope: one allocated inside step()'s tidy would be released with it.
for (const t of [x, film, embWeight, embBias]) engine.gradOf(t);

/** One forward and backward of the FiLM LayerNorm (3 dispatches) or of the embedding LayerNorm (4). */
function step(which: "film" | "embedding"): { out: Tensor } {
  return engine.tidy(() => {
    engine.startTape();
    if (which === "film") {
      const out = layerNormFilm(x, film, { gammaSlice, betaSlice });
      engine.backward(out, dout);
      return { out };
    }
    const out = layerNorm(emb, { weight: embWeight, bias: embBias });
    engine.backward(out, embDout);
    return { out };
  });
}

// Validate once, on the first and last 4 rows (the rest run the same code).
{
  const { out } = step("film");
  const got = await out.read();
  const dx = await x.grad!.read();
  const at = (slice: number, first: number) => (r: number, c: number) =>
    filmHost[Math.floor((first + r) / L) * S * C + slice * C + c]!;
  for (const first of [0, rows - 4]) {
    const xs = xHost.subarray(first * C, (first + 4) * C);
    const ds = doutHost.subarray(first * C, (first + 4) * C);
    const ref = layerNormRef(xs, C, { scaleOf: at(gammaSlice, first), shiftOf: at(betaSlice, first) });
    assertClose(got.subarray(first * C, (first + 4) * C), ref, { atol: 2e-5, rtol: 1e-4, name: "out" });
    const bwd = layerNormBackwardRef(xs, ds, C, { scaleOf: at(gammaSlice, first) });
    assertClose(dx.subarray(first * C, (first + 4) * C), bwd.dx, { atol: 2e-5, rtol: 1e-4, name: "dx" });
  }
  out.dispose();
}

const MOVED: Record<string, number> = {
  layer_norm_forward: 8 * rows * C + 8 * rows,
  layer_norm_backward: 16 * rows * C + 8 * rows,
  layer_norm_backward_params: 8 * rows * C + 8 * rows,
};
if (gpu.features.timestamps) {
  const reps = 5;
  const report = (title: string, timings: { name: string; ns: number }[], bytes: Record<string, number>) => {
    const best = new Map<string, number>();
    for (const { name, ns } of timings) best.set(name, Math.min(best.get(name) ?? Infinity, ns));
    console.log(title);
    for (const [name, ns] of best) {
      const b = bytes[name];
      const rate = b === undefined ? "" : `, ${(b / ns).toFixed(1)} GB/s`;
      console.log(`  ${name}: ${(ns / 1e3).toFixed(1)} µs GPU (best of ${reps})${rate}`);
    }
  };
  console.log(`layer_norm on "${gpu.description}", rows=${rows}`);
  report(
    `FiLM LayerNorm C=${C}, forward + backward`,
    await engine.runtime.profile(() => {
      for (let r = 0; r < reps; r++) step("film").out.dispose();
    }),
    MOVED,
  );
  report(
    `embedding LayerNorm C=${E} (affine), forward + backward`,
    await engine.runtime.profile(() => {
      for (let r = 0; r < reps; r++) step("embedding").out.dispose();
    }),
    { layer_norm_forward: 8 * rows * E + 8 * rows, layer_norm_backward: 16 * rows * E + 8 * rows },
  );
  for (const [v, wg] of [["v1", 64], ["v2", 128], ["v3", 256]] as const) {
    const spec = layerNormForwardSpec({ weight: true, bias: true, wg });
    await engine.runtime.compile(spec);
    const timings = await engine.runtime.profile(() => {
      engine.tidy(() => {
        const out = engine.empty([rows, C]);
        const mean = engine.empty([rows]);
        const rstd = engine.empty([rows]);
        for (let r = 0; r < reps; r++) {
          engine.runtime.dispatch(spec, { inp: x, weight: film, bias: film, out, mean, rstd }, {
            rows,
            cols: C,
            eps: 1e-5,
            group_rows: L,
            w_stride: S * C,
            w_off: gammaSlice * C,
            b_stride: S * C,
            b_off: betaSlice * C,
          }, grid1d(rows));
        }
      });
    });
    report(`forward ${v} wg=${wg}`, timings, MOVED);
  }
}

Deno.bench({
  name: `layerNormFilm forward+backward rows=${rows} C=${C} (${
    (32 * rows * C / 2 ** 20).toFixed(0)
  } MiB moved)`,
  group: "layer_norm",
  baseline: true,
  async fn() {
    step("film").out.dispose();
    await engine.runtime.sync();
  },
});

Deno.bench({
  name: `layerNormFilm forward rows=${rows} C=${C} (${(8 * rows * C / 2 ** 20).toFixed(0)} MiB moved)`,
  group: "layer_norm",
  async fn() {
    engine.noGrad(() => engine.tidy(() => layerNormFilm(x, film, { gammaSlice, betaSlice }).dispose()));
    await engine.runtime.sync();
  },
});

Deno.bench({
  name: `layerNorm affine forward+backward rows=${rows} C=${E}`,
  group: "layer_norm",
  async fn() {
    step("embedding").out.dispose();
    await engine.runtime.sync();
  },
});
