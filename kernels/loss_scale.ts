/**
 * step_guard: the verdict on one optimiser step's gradients, on the GPU, so that no step waits for a
 * read-back. It runs after the gradient norm and before AdamW: a non-finite norm (an overflow of the
 * f16 operands, or a NaN anywhere) marks the step skipped — AdamW then leaves weights and moments as
 * they are — and, with dynamic loss scaling, halves the loss scale; a finite one divides the norm by the
 * scale the gradients were made with (the true norm, for clipping and metrics) and, after
 * `growth_interval` clean steps in a row, doubles the scale. It also writes the next step's backward
 * seed, scale / accumulation steps.
 *
 * Parallelism: one invocation. State layout (f32): [0] loss scale for the next step, [1] clean steps in a
 * row, [2] steps skipped so far, [3] this step's gradient multiplier (1 / the scale it was made with),
 * [4] 1 when this step is skipped, else 0. AdamW's guarded update reads [3] and [4].
 * Reference: tests/train/loss_scale_test.ts (the state machine on the host).
 *
 * @module
 */
import type { KernelSpec } from "../src/gpu/kernel.ts";

/** Elements of the step-guard state buffer (see the module doc for the layout). */
export const STEP_GUARD_STATE = 5;

/** The step guard (see the module doc). */
export const STEP_GUARD: KernelSpec = {
  name: "step_guard",
  reads: [],
  writes: ["norm", "state", "seed"],
  uniforms: {
    seed_factor: "f32",
    growth_interval: "u32",
    dynamic: "u32",
    min_scale: "f32",
    max_scale: "f32",
  },
  code: /* wgsl */ `
struct Params { seed_factor: f32, growth_interval: u32, dynamic: u32, min_scale: f32, max_scale: f32 }
@group(0) @binding(0) var<storage, read_write> norm: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read_write> seed: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }

@compute @workgroup_size(1)
fn step_guard() {
  let used = state[0];
  var scale = used;
  if (finite(norm[0])) {
    norm[0] = norm[0] / used;
    state[3] = 1.0 / used;
    state[4] = 0.0;
    var clean = state[1] + 1.0;
    if (params.dynamic != 0u && clean >= f32(params.growth_interval)) {
      scale = min(used * 2.0, params.max_scale);
      clean = 0.0;
    }
    state[1] = clean;
  } else {
    state[3] = 0.0;
    state[4] = 1.0;
    state[1] = 0.0;
    state[2] = state[2] + 1.0;
    if (params.dynamic != 0u) { scale = max(used * 0.5, params.min_scale); }
  }
  state[0] = scale;
  seed[0] = scale * params.seed_factor;
}
`,
};
