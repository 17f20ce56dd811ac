/**
 * gelu: the erf form, GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2)), as PyTorch's default, forward and backward.
 * Parallelism: one invocation per element, 256 per workgroup, grid folded into 2-D past 65535 groups.
 * erf uses Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), below f32 rounding at the values that matter.
 * Reference: tests/ref/gelu.ts (float64).
 *
 * @module
 */
import type { KernelSpec } from "../src/gpu/kernel.ts";
import { pointwiseKernel } from "./_wgsl.ts";

/**
 * WGSL functions `erf_approx(x)`, `gelu(x)` and its derivative `gelu_grad(x)` = Φ(x) + x·φ(x), shared by
 * every kernel that applies GELU or its backward.
 */
export const GELU_WGSL: string = /* wgsl */ `
fn erf_approx(x: f32) -> f32 {
  let s = sign(x);
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return s * y;
}
fn gelu(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
}
fn gelu_grad(x: f32) -> f32 {
  let cdf = 0.5 * (1.0 + erf_approx(x * 0.7071067811865476));
  let pdf = 0.3989422804014327 * exp(-0.5 * x * x);
  return cdf + x * pdf;
}
`;

/** out = GELU(inp), n elements. */
export const GELU_FORWARD: KernelSpec = pointwiseKernel({
  name: "gelu_forward",
  reads: ["inp"],
  writes: ["out"],
  uniforms: { n: "u32" },
  helpers: GELU_WGSL,
  body: /* wgsl */ `let x = inp[i];
  out[i] = gelu(x);`,
});

/** The backward kernel: `dinp += dout · GELU'(inp)`, or with `accumulate` false `dinp = …`. */
function geluBackwardSpec(accumulate: boolean): KernelSpec {
  const name = accumulate ? "gelu_backward" : "gelu_backward_write";
  return pointwiseKernel({
    name,
    reads: ["inp", "dout"],
    writes: ["dinp"],
    uniforms: { n: "u32" },
    helpers: GELU_WGSL,
    body: /* wgsl */ `dinp[i] ${accumulate ? "+=" : "="} dout[i] * gelu_grad(inp[i]);`,
  });
}

/** dinp += dout · GELU'(inp), n elements. */
export const GELU_BACKWARD: KernelSpec = geluBackwardSpec(true);

/** dinp = dout · GELU'(inp), n elements (a gradient not written before). */
export const GELU_BACKWARD_WRITE: KernelSpec = geluBackwardSpec(false);
