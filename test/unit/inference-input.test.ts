// The ways raw rows enter InferenceModel (src/core/inference.ts): read in place
// (no preprocessing), a per-feature scale folded into the first dense layer,
// or an explicit (x − offset)·factor pass; each against the unfolded form,
// batch-independent, and never writing into the caller's rows.
import { describe, expect, it } from 'vitest';
import type { Artifact } from '../../src/core/artifact.js';
import { InferenceModel } from '../../src/core/inference.js';
import type { Kernels } from '../../src/core/kernels/types.js';
import { resolveSpec } from '../../src/core/spec.js';
import { train } from '../../src/core/train.js';
import { applyPreprocess, loadBuiltinDataset } from '../../src/datasets/index.js';
import type { Preprocess } from '../../src/datasets/types.js';
import { kernelSets } from '../helpers/kernels.js';
import { expectClose } from '../helpers/gradcheck.js';


async function trained(kernels: Kernels, preprocess: 'none' | 'standardize', batchNorm: 'before' | 'input') {
  const spec = resolveSpec({
    dataset: { id: 'spirals', size: 400, noise: 0.1, preprocess },
    model: { hidden: [16, 16], batchNorm },
    training: { epochs: 2, batchSize: 32, seed: 5, optimizer: { type: 'sgd', learningRate: 0.1, momentum: 0.9 } },
  });
  const ds = await loadBuiltinDataset(spec.dataset, 5);
  const { artifact } = await train(spec, ds, { kernels });
  return { artifact, ds };
}

/** The same model with another stored preprocessing. */
const withPreprocess = (a: Artifact, preprocess: Preprocess): Artifact => ({ ...a, manifest: { ...a.manifest, preprocess } });

describe.each(kernelSets)('inference input stage (%s kernels)', (_name, kernels) => {
  const cases: Array<[string, 'none' | 'standardize', 'before' | 'input', ((a: Artifact) => Artifact) | null]> = [
    ['no preprocessing (rows read in place)', 'none', 'before', null],
    ['standardize (explicit pass)', 'standardize', 'before', null],
    ['zero-offset scale (folded into the first dense layer)', 'none', 'before',
      (a) => withPreprocess(a, { kind: 'scale', offset: [0, 0], factor: [0.25, 4] })],
    ['zero-offset scale after an input batch norm', 'none', 'input',
      (a) => withPreprocess(a, { kind: 'scale', offset: [0, 0], factor: [0.5, 2] })],
  ];
  for (const [label, preprocess, batchNorm, edit] of cases) {
    it(`${label}: folded = unfolded = explicit preprocessing, batch-independent, rows untouched`, async () => {
      const { artifact: trainedArtifact, ds } = await trained(kernels, preprocess, batchNorm);
      const artifact = edit ? edit(trainedArtifact) : trainedArtifact;
      const test = ds.test!;
      const rows = test.x.slice();
      const folded = InferenceModel.fromArtifact(artifact, { kernels });
      const unfolded = InferenceModel.fromArtifact(artifact, { kernels, fold: false });
      const batch = folded.predict(rows, test.n);
      expect(rows).toEqual(test.x);
      expectClose(unfolded.predict(rows, test.n), batch, { rtol: 0, atol: 1e-5 }, 'folded vs unfolded');
      // The stored preprocessing applied by hand, then a model that does none: the same answers.
      const pre = new Float32Array(rows.length);
      applyPreprocess(artifact.manifest.preprocess, rows, pre, test.n, ds.features);
      const plain = InferenceModel.fromArtifact(withPreprocess(artifact, { kind: 'none' }), { kernels });
      expectClose(plain.predict(pre, test.n), batch, { rtol: 0, atol: 1e-5 }, 'explicit preprocessing');
      const out = new Float32Array(ds.classes);
      for (let r = 0; r < 20; r++) {
        folded.predictInto(rows.subarray(r * ds.features, (r + 1) * ds.features), 1, out);
        expectClose(out, batch.subarray(r * ds.classes, (r + 1) * ds.classes), { rtol: 0, atol: 1e-6 }, `row ${r}`);
      }
      expect(rows).toEqual(test.x);
    });
  }
});
