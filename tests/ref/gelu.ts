/** Float64 reference for kernels/gelu.ts: exact erf via a high-precision series/continued fraction. */

/** erf(x) to ~1e-15 (series for |x| < 3, asymptotic complement beyond). */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 3) {
    let sum = a, term = a;
    for (let n = 1; n < 200; n++) {
      term *= -a * a / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz), accurate for a >= 3.
  let f = a, c = a, d = 0;
  for (let n = 1; n < 100; n++) {
    const an = n / 2;
    d = a + an * d;
    d = 1 / d;
    c = a + an / c;
    f *= c * d;
  }
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** GELU(x) = ½x(1 + erf(x/√2)). */
export function geluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
}

/** GELU'(x) = Φ(x) + x·φ(x). */
export function geluGradRef(x: number): number {
  const cdf = 0.5 * (1 + erf(x / Math.SQRT2));
  const pdf = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  return cdf + x * pdf;
}

/** dinp = dout · (Φ(x) + x·φ(x)). */
export function geluBackwardRef(x: ArrayLike<number>, dout: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => dout[i]! * geluGradRef(v));
}
