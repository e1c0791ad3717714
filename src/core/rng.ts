/**
 * The one PRNG of a job: xoshiro128** over a Uint32Array(4) state, seeded by
 * splitmix32. The native dropout kernel advances the same state with the same
 * algorithm, so native and portable runs draw identical streams.
 */

export type RngState = Uint32Array;

export function createRng(seed: number): RngState {
  const state = new Uint32Array(4);
  let s = seed >>> 0;
  for (let i = 0; i < 4; i++) {
    // splitmix32
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    state[i] = (z ^ (z >>> 16)) >>> 0;
  }
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 1;
  return state;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Next 32-bit unsigned value (xoshiro128**), advancing state in place. */
export function nextUint32(s: RngState): number {
  const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
  const t = (s[1]! << 9) >>> 0;
  s[2] = s[2]! ^ s[0]!;
  s[3] = s[3]! ^ s[1]!;
  s[1] = s[1]! ^ s[2]!;
  s[0] = s[0]! ^ s[3]!;
  s[2] = s[2]! ^ t;
  s[3] = rotl(s[3]!, 11);
  return result;
}

/** Uniform in [0, 1) with 24 bits, the same draw the dropout kernels use. */
export function nextFloat(s: RngState): number {
  return (nextUint32(s) >>> 8) * (1 / 16777216);
}

/** Standard normal (Box–Muller). */
export function nextNormal(s: RngState): number {
  let u = nextFloat(s);
  if (u < 1e-12) u = 1e-12;
  const v = nextFloat(s);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Fisher–Yates shuffle of indices in place. */
export function shuffle(s: RngState, a: Int32Array | Uint32Array | number[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(nextFloat(s) * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}
