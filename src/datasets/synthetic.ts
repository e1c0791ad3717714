/**
 * Seeded 2-D toy classification sets. Each is a clean shape plus Gaussian
 * noise of standard deviation `noise` on every coordinate. Row i has class
 * i mod classes, so every prefix (a `limit`, a validation slice) stays
 * balanced; the trainer shuffles anyway.
 */
import { createRng, nextFloat, nextNormal, type RngState } from '../core/rng.js';
import type { Dataset, Split } from './types.js';

export type SyntheticId = 'spirals' | 'moons' | 'blobs' | 'xor';

interface SyntheticDef {
  name: string;
  description: string;
  classNames: string[];
  /** Writes the clean point of class `label` (row `i`) into out[0..1]. */
  point(rng: RngState, i: number, label: number, out: [number, number]): void;
}

const TAU = 2 * Math.PI;

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
};

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

/** Generate `size` training rows and a separate test split, deterministically from `seed`. */
export function generateSynthetic(id: SyntheticId, size: number, noise: number, seed: number): Dataset {
  const def = SYNTHETIC[id];
  const classes = def.classNames.length;
  return {
    id,
    name: def.name,
    inputShape: [2],
    features: 2,
    classes,
    classNames: [...def.classNames],
    valueRange: null,
    train: generateSplit(def, classes, size, noise, createRng((seed ^ TRAIN_SALT) >>> 0)),
    test: generateSplit(def, classes, syntheticTestRows(size), noise, createRng((seed ^ TEST_SALT) >>> 0)),
  };
}

function generateSplit(def: SyntheticDef, classes: number, n: number, noise: number, rng: RngState): Split {
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  const p: [number, number] = [0, 0];
  for (let i = 0; i < n; i++) {
    const label = i % classes;
    def.point(rng, i, label, p);
    x[2 * i] = p[0] + noise * nextNormal(rng);
    x[2 * i + 1] = p[1] + noise * nextNormal(rng);
    y[i] = label;
  }
  return { x, y, n };
}
