import assert from "node:assert/strict";
import { lossCurvesSvg } from "../../src/train/loss_plot.ts";

/** The marks of a series: path points and dots, as [x, y] pairs. */
function marks(svg: string): { paths: number; dots: number } {
  const paths = [...svg.matchAll(/<path d="([^"]*)"/g)].filter((m) => /L/.test(m[1]!)).length;
  const dots = [...svg.matchAll(/<circle cx="[\d.]+" cy="[\d.]+" r="\d+"/g)].length;
  return { paths, dots };
}

Deno.test("loss.svg of a one-point log is not empty: each series is drawn as a dot", () => {
  const svg = lossCurvesSvg([{ step: 7, loss: 5, mse: 0.5, ce: 4.5 }]);
  assert.deepEqual(marks(svg), { paths: 0, dots: 3 });
  assert.doesNotMatch(svg, /NaN|Infinity/);
});

Deno.test("loss.svg of several points draws lines and no dots", () => {
  const svg = lossCurvesSvg([{ step: 1, loss: 9, mse: 1, ce: 8 }, { step: 2, loss: 5, mse: 0.5, ce: 4.5 }]);
  assert.deepEqual(marks(svg), { paths: 3, dots: 0 });
});

Deno.test("loss.svg of no finite point draws the frame only", () => {
  const svg = lossCurvesSvg([{ step: 1, loss: NaN, mse: 1, ce: 8 }]);
  assert.deepEqual(marks(svg), { paths: 0, dots: 0 });
  assert.match(svg, /^<svg[\s\S]*<\/svg>\n$/);
});
