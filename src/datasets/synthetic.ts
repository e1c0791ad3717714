/**
 * Seeded toy classification sets. Each is a clean shape plus Gaussian
 * noise of standard deviation `noise` on every coordinate (then, for
 * `scales`, a per-feature scale and offset). `sines` is a sequence set: rows
 * of [steps, 1], the length set by the job spec. Row i has class i mod classes,
 * so every prefix (a `limit`, a validation slice) stays balanced; the
 * trainer shuffles anyway.
 */
import { createRng, nextFloat, nextNormal, type RngState } from '../core/rng.js';
import type { Dataset, Split } from './types.js';

export type SyntheticId = 'spirals' | 'moons' | 'blobs' | 'xor' | 'scales' | 'sines';

interface SyntheticDef {
  name: string;
  description: string;
  classNames: string[];
  /** Coordinates per row (2 unless given); for a sequence set, per step. */
  features?: number;
  /** A sequence set: rows of [steps, features], `steps` when the spec sets none. */
  defaultSteps?: number;
  /** Writes the clean point of class `label` (row `i`) into out (all of its values: steps × features for a sequence set). */
  point(rng: RngState, i: number, label: number, out: number[]): void;
  /** Applied after the noise: feature j becomes x·scale[j] + offset[j]. */
  scale?: number[];
  offset?: number[];
}

/** `scales`: six features whose scales span six orders of magnitude (1e-3 … 1e2), each with a mean of 5 of its own units. */
const SCALES = [1e-3, 1e-2, 1e-1, 1, 1e1, 1e2];

const TAU = 2 * Math.PI;

/** `sines`: class k oscillates at (k + 1)·SINE_BAND cycles per step, give or take SINE_HALF_WIDTH (bands 0.025 apart). */
const SINE_BAND = 0.05;
const SINE_HALF_WIDTH = 0.0125;
const SINE_CLASSES = 4;

export const SYNTHETIC: Record<SyntheticId, SyntheticDef> = {
  spirals: {
    name: 'Spirals',
    description: 'Three interleaved spiral arms in 2-D, one class per arm',
    classNames: ['arm 0', 'arm 1', 'arm 2'],
    point(rng, _i, label, out) {
      const t = nextFloat(rng);
      const angle = (label * TAU) / 3 + 4 * t; // each arm sweeps 4 radians outwards from the centre
      out[0] = t * Math.cos(angle);
      out[1] = t * Math.sin(angle);
    },
  },
  moons: {
    name: 'Two moons',
    description: 'Two interleaving half circles in 2-D',
    classNames: ['upper', 'lower'],
    point(rng, _i, label, out) {
      const a = Math.PI * nextFloat(rng);
      out[0] = label === 0 ? Math.cos(a) : 1 - Math.cos(a);
      out[1] = label === 0 ? Math.sin(a) : 0.5 - Math.sin(a);
    },
  },
  blobs: {
    name: 'Blobs',
    description: 'Four unit-variance Gaussian blobs centred at (±2, ±2), one class per blob',
    classNames: ['blob 0', 'blob 1', 'blob 2', 'blob 3'],
    point(rng, _i, label, out) {
      out[0] = (label & 1 ? 2 : -2) + nextNormal(rng);
      out[1] = (label & 2 ? 2 : -2) + nextNormal(rng);
    },
  },
  xor: {
    name: 'XOR',
    description: 'Four clusters (std 0.3) at (±1, ±1); the class is whether the quadrant signs differ',
    classNames: ['same sign', 'opposite sign'],
    point(rng, i, label, out) {
      // Rows cycle through the four quadrants; the class follows from the quadrant.
      const sx = i % 4 < 2 ? 1 : -1;
      const sy = label === 0 ? sx : -sx;
      out[0] = sx + 0.3 * nextNormal(rng);
      out[1] = sy + 0.3 * nextNormal(rng);
    },
  },
  scales: {
    name: 'Scales',
    description: 'Three classes in 6 features whose scales differ by orders of magnitude (×1e-3 … ×1e2, each offset by 5 of its units); ' +
      'every feature carries the same amount of class information before scaling',
    classNames: ['class 0', 'class 1', 'class 2'],
    features: SCALES.length,
    point(_rng, _i, label, out) {
      // Class centres −1, 0, +1 per feature, in a pattern that shifts with the feature.
      for (let j = 0; j < SCALES.length; j++) out[j] = ((label + j) % 3) - 1;
    },
    scale: SCALES,
    offset: SCALES.map((s) => 5 * s),
  },
  sines: {
    name: 'Sines',
    description: `Noisy sine waves, one value per step (dataset.sequence.steps steps, default 32), classed by frequency: ` +
      `${Array.from({ length: SINE_CLASSES }, (_, k) => ((k + 1) * SINE_BAND).toFixed(2)).join(', ')} cycles per step (±${SINE_HALF_WIDTH}); ` +
      'random phase, amplitude 0.5 to 1.5, noise on every value',
    classNames: Array.from({ length: SINE_CLASSES }, (_, k) => `${((k + 1) * SINE_BAND).toFixed(2)} cycles/step`),
    features: 1,
    defaultSteps: 32,
    point(rng, _i, label, out) {
      const frequency = (label + 1) * SINE_BAND + SINE_HALF_WIDTH * (2 * nextFloat(rng) - 1);
      const phase = TAU * nextFloat(rng);
      const amplitude = 0.5 + nextFloat(rng);
      for (let t = 0; t < out.length; t++) out[t] = amplitude * Math.sin(TAU * frequency * t + phase);
    },
  },
};

/** The shape of one row: [features], or [steps, features] for a sequence set (`steps` from the spec, else its default). */
export function syntheticInputShape(id: SyntheticId, steps: number | null = null): number[] {
  const def = SYNTHETIC[id];
  const features = def.features ?? 2;
  return def.defaultSteps === undefined ? [features] : [steps ?? def.defaultSteps, features];
}

export function isSequenceSet(id: SyntheticId): boolean {
  return SYNTHETIC[id].defaultSteps !== undefined;
}

export function isSyntheticId(id: string): id is SyntheticId {
  return Object.hasOwn(SYNTHETIC, id);
}

/** Rows in the generated test split for a training set of `size` rows. */
function syntheticTestRows(size: number): number {
  return Math.max(200, Math.floor(size / 5));
}

// Salts keep the data streams apart from each other and from the job's own createRng(seed) stream.
const TRAIN_SALT = 0x5eed_da7a;
const TEST_SALT = 0x7e57_da7a;

/**
 * Generate `size` training rows and a separate test split, deterministically
 * from `seed`; `steps` is the length of a sequence set's rows (ignored by the others).
 */
export function generateSynthetic(id: SyntheticId, size: number, noise: number, seed: number, steps: number | null = null): Dataset {
  const def = SYNTHETIC[id];
  const classes = def.classNames.length;
  const inputShape = syntheticInputShape(id, steps);
  const features = inputShape.reduce((a, b) => a * b, 1);
  return {
    id,
    name: def.name,
    inputShape,
    features,
    classes,
    classNames: [...def.classNames],
    valueRange: null,
    train: generateSplit(def, classes, features, size, noise, createRng((seed ^ TRAIN_SALT) >>> 0)),
    test: generateSplit(def, classes, features, syntheticTestRows(size), noise, createRng((seed ^ TEST_SALT) >>> 0)),
  };
}

function generateSplit(def: SyntheticDef, classes: number, f: number, n: number, noise: number, rng: RngState): Split {
  const x = new Float32Array(n * f);
  const y = new Int32Array(n);
  const p = new Array<number>(f).fill(0);
  for (let i = 0; i < n; i++) {
    const label = i % classes;
    def.point(rng, i, label, p);
    for (let j = 0; j < f; j++) {
      const v = p[j]! + noise * nextNormal(rng);
      x[f * i + j] = def.scale ? v * def.scale[j]! + def.offset![j]! : v;
    }
    y[i] = label;
  }
  return { x, y, n };
}
