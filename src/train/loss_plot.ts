/**
 * Draws the training curves (loss, mse, ce against step) as a small standalone SVG.
 *
 * @module
 */

/** One point of the curves. */
export interface LossPoint {
  /** Optimiser step. */
  step: number;
  /** Total loss. */
  loss: number;
  /** Masked MSE of the estimate. */
  mse: number;
  /** Masked cross-entropy. */
  ce: number;
}

const SERIES = [["loss", "#1f77b4"], ["mse", "#2ca02c"], ["ce", "#d62728"]] as const;

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);
}

/**
 * Renders loss curves as SVG text (log-scaled y axis when the values span more than a factor of 20).
 *
 * @example Usage
 * ```ts
 * import { lossCurvesSvg } from "./loss_plot.ts";
 * const svg = lossCurvesSvg([{ step: 1, loss: 9, mse: 1, ce: 8 }, { step: 2, loss: 5, mse: 0.5, ce: 4.5 }]);
 * console.log(svg.startsWith("<svg")); // true
 * ```
 * @param points The logged steps, in order.
 * @param title A title drawn at the top.
 * @returns An SVG document.
 */
export function lossCurvesSvg(points: readonly LossPoint[], title = "difflm training"): string {
  const width = 640, height = 360, left = 56, right = 16, top = 32, bottom = 40;
  const finite = points.filter((p) => SERIES.every(([k]) => Number.isFinite(p[k]) && p[k] > 0));
  const lines: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-family="sans-serif" font-size="14">${escapeXml(title)}</text>`,
  ];
  if (finite.length > 0) {
    const steps = finite.map((p) => p.step);
    const values = finite.flatMap((p) => SERIES.map(([k]) => p[k]));
    const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
    let y0 = Math.min(...values), y1 = Math.max(...values);
    const log = y1 / y0 > 20;
    const f = (v: number) => (log ? Math.log10(v) : v);
    y0 = f(y0);
    y1 = f(y1) === y0 ? y0 + 1 : f(y1);
    const sx = (s: number) => left + ((s - x0) / (x1 - x0)) * (width - left - right);
    const sy = (v: number) => top + (1 - (f(v) - y0) / (y1 - y0)) * (height - top - bottom);
    lines.push(
      `<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${
        height - bottom
      }" stroke="#888"/>`,
      `<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="#888"/>`,
      `<text x="${left}" y="${height - 12}" font-family="sans-serif" font-size="11">step ${x0}</text>`,
      `<text x="${width - right}" y="${
        height - 12
      }" font-family="sans-serif" font-size="11" text-anchor="end">${x1}</text>`,
    );
    for (const [i, v] of [y1, (y0 + y1) / 2, y0].entries()) {
      const value = log ? 10 ** v : v;
      lines.push(
        `<text x="${left - 4}" y="${top + (i * (height - top - bottom)) / 2 + 4}" font-family="sans-serif" ` +
          `font-size="11" text-anchor="end">${value.toPrecision(3)}</text>`,
      );
    }
    for (const [i, [key, color]] of SERIES.entries()) {
      const path = finite.map((p, j) => `${j ? "L" : "M"}${sx(p.step).toFixed(1)},${sy(p[key]).toFixed(1)}`)
        .join("");
      lines.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
      // A path of one point draws nothing: mark a lone point with a dot.
      if (finite.length === 1) {
        const p = finite[0]!;
        lines.push(
          `<circle cx="${sx(p.step).toFixed(1)}" cy="${sy(p[key]).toFixed(1)}" r="3" fill="${color}"/>`,
        );
      }
      lines.push(
        `<text x="${
          width - right - 120 + i * 40
        }" y="20" font-family="sans-serif" font-size="12" fill="${color}">${key}</text>`,
      );
    }
  }
  lines.push("</svg>");
  return lines.join("\n") + "\n";
}
