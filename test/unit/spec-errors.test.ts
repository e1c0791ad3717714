import { Kind, type TSchema } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { JobSpecSchema, resolveSpec, SpecError } from '../../src/core/spec.js';

/** The issues resolveSpec reports for a spec built from a patch on a valid one. */
function issues(patch: Record<string, unknown>) {
  const base: Record<string, any> = { dataset: { id: 'spirals' }, model: {}, batchNorm: {}, training: {} };
  for (const [section, value] of Object.entries(patch)) {
    base[section] = typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...base[section], ...value } : value;
  }
  try {
    resolveSpec(base);
  } catch (err) {
    if (err instanceof SpecError) return err.issues;
    throw err;
  }
  throw new Error(`expected a SpecError for ${JSON.stringify(patch)}`);
}

const LAYER_TYPES = 'dense, batchnorm, relu, leaky_relu, elu, tanh, sigmoid, dropout, conv2d, maxpool2d, avgpool2d, globalavgpool, flatten, lstm, gru, rnn';
const layers = (...l: unknown[]) => ({ model: { layers: l } });

// [patch, path, message]: every field of the spec, each with a value it rejects.
const CASES: Array<[Record<string, unknown>, string, string]> = [
  [{ name: 5 }, '/name', 'must be a string'],
  [{ dataset: { id: '' } }, '/dataset/id', 'must have at least 1 characters'],
  [{ dataset: { validationSplit: 0.9 } }, '/dataset/validationSplit', 'must be <= 0.5'],
  [{ dataset: { preprocess: 'minmax' } }, '/dataset/preprocess', 'must be one of scale, standardize, none'],
  [{ dataset: { limit: 1 } }, '/dataset/limit', 'must be >= 2 (or null)'],
  [{ dataset: { limit: 'all' } }, '/dataset/limit', 'must be an integer or null'],
  [{ dataset: { size: 2 } }, '/dataset/size', 'must be >= 4'],
  [{ dataset: { noise: -1 } }, '/dataset/noise', 'must be >= 0'],
  [{ dataset: { sequence: 28 } }, '/dataset/sequence', 'must be an object or null'],
  [{ dataset: { sequence: {} } }, '/dataset/sequence/steps', 'is required'],
  [{ dataset: { sequence: { steps: 0 } } }, '/dataset/sequence/steps', 'must be >= 1'],
  [{ dataset: { sequence: { steps: 2.5 } } }, '/dataset/sequence/steps', 'must be an integer'],
  [{ dataset: { sequence: { steps: 4, features: 7 } } }, '/dataset/sequence/features', 'is not a known field'],
  [{ dataset: { shuffle: true } }, '/dataset/shuffle', 'is not a known field'],
  [{ model: { architecture: 'transformer' } }, '/model/architecture', 'must be one of mlp, cnn, rnn'],
  [{ model: { cell: 'lstm2' } }, '/model/cell', 'must be one of lstm, gru, rnn'],
  [{ model: { bidirectional: 'yes' } }, '/model/bidirectional', 'must be true or false'],
  [{ model: { architecture: 'rnn', hidden: [5000] } }, '/model/hidden/0', 'must be <= 4096 for a recurrent layer'],
  [{ model: { architecture: 'rnn', hidden: [] } }, '/model/hidden', 'must list at least one recurrent layer with architecture rnn'],
  [{ model: { architecture: 'rnn', batchNorm: 'before' } }, '/model/batchNorm', 'must be one of none, sequence, recurrent with architecture rnn'],
  [{ model: { batchNorm: 'sequence' } }, '/model/batchNorm',
    'must be one of none, before, after, input with architecture mlp (sequence and recurrent are batch norm inside recurrent layers: architecture rnn)'],
  [{ model: { hidden: [0] } }, '/model/hidden/0', 'must be >= 1'],
  [{ model: { conv: [1.5] } }, '/model/conv/0', 'must be an integer'],
  [{ model: { dense: 'x' } }, '/model/dense', 'must be an array'],
  [{ model: { activation: 'gelu' } }, '/model/activation', 'must be one of relu, leaky_relu, elu, tanh, sigmoid'],
  [{ model: { batchNorm: 'Before' } }, '/model/batchNorm', 'must be one of none, before, after, input, sequence, recurrent'],
  [{ model: { dropout: 1 } }, '/model/dropout', 'must be < 1'],
  [{ model: { init: 'xavier' } }, '/model/init', 'must be one of he, glorot, lecun or an object'],
  [{ model: { init: { normal: { std: 0 } } } }, '/model/init/normal/std', 'must be > 0'],
  [{ model: { init: { normal: { std: 1 }, uniform: {} } } }, '/model/init/uniform', 'is not a known field'],
  [{ model: { layers: 'x' } }, '/model/layers', 'must be an array or null'],
  [layers({ units: 3 }), '/model/layers/0/type', `is required: one of ${LAYER_TYPES}`],
  [layers({ type: 'conv' }), '/model/layers/0/type', `must be one of ${LAYER_TYPES}`],
  [layers({ type: 'relu' }, { type: 'relu' }, { type: 'batchnorm' }, { type: 'dense' }), '/model/layers/3/units', 'is required'],
  [layers({ type: 'dense', units: 0 }), '/model/layers/0/units', 'must be >= 1'],
  [layers({ type: 'dense', units: 4, bias: 'no' }), '/model/layers/0/bias', 'must be true or false'],
  [layers({ type: 'batchnorm', momentum: 0.9 }), '/model/layers/0/momentum', 'is not a known field'],
  [layers({ type: 'leaky_relu', alpha: 11 }), '/model/layers/0/alpha', 'must be <= 10'],
  [layers({ type: 'dropout', rate: 1 }), '/model/layers/0/rate', 'must be < 1'],
  [layers({ type: 'conv2d', filters: 0, kernelSize: 3 }), '/model/layers/0/filters', 'must be >= 1'],
  [layers({ type: 'conv2d', filters: 4, kernelSize: 16 }), '/model/layers/0/kernelSize', 'must be <= 15'],
  [layers({ type: 'conv2d', filters: 4, kernelSize: 3, stride: 0 }), '/model/layers/0/stride', 'must be >= 1'],
  [layers({ type: 'conv2d', filters: 4, kernelSize: 3, padding: 'full' }), '/model/layers/0/padding', 'must be one of same, valid'],
  [layers({ type: 'conv2d', filters: 4, kernelSize: 3, bias: 1 }), '/model/layers/0/bias', 'must be true or false'],
  [layers({ type: 'maxpool2d', size: 0 }), '/model/layers/0/size', 'must be >= 1'],
  [layers({ type: 'avgpool2d', size: 2, stride: 17 }), '/model/layers/0/stride', 'must be <= 16'],
  [layers({ type: 'flatten', size: 2 }), '/model/layers/0/size', 'is not a known field'],
  [layers({ type: 'lstm', units: 0 }), '/model/layers/0/units', 'must be >= 1'],
  [layers({ type: 'gru', units: 4097 }), '/model/layers/0/units', 'must be <= 4096'],
  [layers({ type: 'rnn', units: 4, returnSequences: 1 }), '/model/layers/0/returnSequences', 'must be true or false'],
  [layers({ type: 'lstm', units: 4, bidirectional: 'no' }), '/model/layers/0/bidirectional', 'must be true or false'],
  [layers({ type: 'lstm', units: 4, batchNorm: 'before' }), '/model/layers/0/batchNorm', 'must be one of none, sequence, recurrent'],
  [layers({ type: 'rnn', units: 4, nonlinearity: 'sigmoid' }), '/model/layers/0/nonlinearity', 'must be one of tanh, relu'],
  [layers({ type: 'gru', units: 4, nonlinearity: 'relu' }), '/model/layers/0/nonlinearity', 'is for the Elman cell (type rnn) only; gru has fixed gate activations'],
  [{ model: { architecture: 'rnn', cell: 'rnn', nonlinearity: 'gelu' } }, '/model/nonlinearity', 'must be one of tanh, relu'],
  [{ model: { architecture: 'rnn', cell: 'lstm', nonlinearity: 'relu' } }, '/model/nonlinearity', 'applies to the Elman cell only (architecture rnn with cell rnn)'],
  [{ model: { nonlinearity: 'tanh' } }, '/model/nonlinearity', 'applies to the Elman cell only (architecture rnn with cell rnn)'],
  [{ model: { layers: [{ type: 'rnn', units: 4 }], nonlinearity: 'relu' } }, '/model/nonlinearity',
    'is for architecture rnn with cell rnn; with explicit layers, set it on each rnn layer'],
  [{ ...layers({ type: 'lstm', units: 4, batchNorm: 'recurrent' }), batchNorm: { inferenceStats: 'population' } }, '/batchNorm/inferenceStats',
    'must be moving or auto with recurrent batch norm: per-step population statistics depend on the frozen statistics of the steps before, which one pass over the training rows cannot give'],
  [{ ...layers({ type: 'gru', units: 4, batchNorm: 'sequence' }), batchNorm: { renorm: {} } }, '/batchNorm/renorm',
    'is not available for batch norm inside recurrent layers (must be null)'],
  [{ batchNorm: { momentum: 2 } }, '/batchNorm/momentum', 'must be <= 1 (or null)'],
  [{ batchNorm: { momentum: '0.9' } }, '/batchNorm/momentum', 'must be a number or null'],
  [{ batchNorm: { epsilon: 0 } }, '/batchNorm/epsilon', 'must be > 0'],
  [{ batchNorm: { center: 'yes' } }, '/batchNorm/center', 'must be true or false'],
  [{ batchNorm: { scale: 1 } }, '/batchNorm/scale', 'must be true or false'],
  [{ batchNorm: { inferenceStats: 'exact' } }, '/batchNorm/inferenceStats', 'must be one of moving, population, auto'],
  [{ batchNorm: { renorm: true } }, '/batchNorm/renorm', 'must be an object or null'],
  [{ batchNorm: { renorm: { rMax: 0.5 } } }, '/batchNorm/renorm/rMax', 'must be >= 1'],
  [{ batchNorm: { renorm: { dMax: -1 } } }, '/batchNorm/renorm/dMax', 'must be >= 0'],
  [{ batchNorm: { renorm: { warmupSteps: 1.5 } } }, '/batchNorm/renorm/warmupSteps', 'must be an integer'],
  [{ batchNorm: { virtualBatchSize: 1 } }, '/batchNorm/virtualBatchSize', 'must be >= 2 (or null)'],
  [{ training: { epochs: 0 } }, '/training/epochs', 'must be >= 1'],
  [{ training: { batchSize: 0 } }, '/training/batchSize', 'must be >= 1'],
  [{ training: { seed: -1 } }, '/training/seed', 'must be >= 0'],
  [{ training: { optimizer: 'adam' } }, '/training/optimizer', 'must be an object'],
  [{ training: { optimizer: { type: 'Adam' } } }, '/training/optimizer/type', 'must be one of sgd, adam'],
  [{ training: { optimizer: { type: 'sgd', learningRate: 0 } } }, '/training/optimizer/learningRate', 'must be > 0'],
  [{ training: { optimizer: { type: 'sgd', learningRate: '0.1' } } }, '/training/optimizer/learningRate', 'must be a number'],
  [{ training: { optimizer: { type: 'sgd', momentum: 1 } } }, '/training/optimizer/momentum', 'must be < 1'],
  [{ training: { optimizer: { type: 'sgd', nesterov: 'true' } } }, '/training/optimizer/nesterov', 'must be true or false'],
  [{ training: { optimizer: { type: 'sgd', weightDecay: 2 } } }, '/training/optimizer/weightDecay', 'must be <= 1'],
  [{ training: { optimizer: { type: 'sgd', beta1: 0.9 } } }, '/training/optimizer/beta1', 'is not a known field'],
  [{ training: { optimizer: { type: 'adam', learningRate: -1 } } }, '/training/optimizer/learningRate', 'must be > 0'],
  [{ training: { optimizer: { type: 'adam', beta1: 1 } } }, '/training/optimizer/beta1', 'must be < 1'],
  [{ training: { optimizer: { type: 'adam', beta2: -0.1 } } }, '/training/optimizer/beta2', 'must be >= 0'],
  [{ training: { optimizer: { type: 'adam', epsilon: 0 } } }, '/training/optimizer/epsilon', 'must be > 0'],
  [{ training: { optimizer: { type: 'adam', weightDecay: -1 } } }, '/training/optimizer/weightDecay', 'must be >= 0'],
  [{ training: { optimizer: { type: 'adam', momentum: 0.9 } } }, '/training/optimizer/momentum', 'is not a known field'],
  [{ training: { schedule: { type: 'linear' } } }, '/training/schedule/type', 'must be one of constant, step, exponential, cosine'],
  [{ training: { schedule: { type: 'constant', gamma: 0.5 } } }, '/training/schedule/gamma', 'is not a known field'],
  [{ training: { schedule: { type: 'step', stepSize: 0 } } }, '/training/schedule/stepSize', 'must be >= 1'],
  [{ training: { schedule: { type: 'step', gamma: 2 } } }, '/training/schedule/gamma', 'must be <= 1'],
  [{ training: { schedule: { type: 'exponential', gamma: 0 } } }, '/training/schedule/gamma', 'must be > 0'],
  [{ training: { schedule: { type: 'cosine', minLearningRate: -1 } } }, '/training/schedule/minLearningRate', 'must be >= 0'],
  [{ training: { targetAccuracy: 0 } }, '/training/targetAccuracy', 'must be > 0 (or null)'],
  [{ training: { targetAccuracy: '90%' } }, '/training/targetAccuracy', 'must be a number or null'],
  [{ training: { earlyStopping: true } }, '/training/earlyStopping', 'must be an object or null'],
  [{ training: { earlyStopping: { monitor: 'loss' } } }, '/training/earlyStopping/monitor', 'must be one of val_loss, val_accuracy'],
  [{ training: { earlyStopping: { patience: 0 } } }, '/training/earlyStopping/patience', 'must be >= 1'],
  [{ training: { earlyStopping: { minDelta: -1 } } }, '/training/earlyStopping/minDelta', 'must be >= 0'],
  [{ training: { freezeBatchNormAfterEpoch: -1 } }, '/training/freezeBatchNormAfterEpoch', 'must be >= 0 (or null)'],
  [{ training: { freezeBatchNormAfterEpoch: 'never' } }, '/training/freezeBatchNormAfterEpoch', 'must be an integer or null'],
  [{ training: { maxSeconds: 0 } }, '/training/maxSeconds', 'must be > 0 (or null)'],
];

describe('spec errors name the field and the allowed values or the rule', () => {
  it.each(CASES)('%j → %s', (patch, path, message) => {
    const found = issues(patch);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ path, message });
  });

  it('lists the allowed values of an enum', () => {
    expect(issues({ model: { batchNorm: 'Before' } })[0]!.allowed).toEqual(['none', 'before', 'after', 'input', 'sequence', 'recurrent']);
    expect(issues(layers({ type: 'conv' }))[0]!.allowed).toHaveLength(16);
  });

  it('reports every offending field at once, each once', () => {
    const found = issues({ model: { activation: 'gelu', batchNorm: 'x' }, training: { epochs: 0, optimizer: { type: 'sgd', learningRate: 0 } } });
    expect(found.map((i) => i.path).sort()).toEqual(['/model/activation', '/model/batchNorm', '/training/epochs', '/training/optimizer/learningRate']);
    expect(new SpecError(found).message).toContain('/training/optimizer/learningRate: must be > 0');
  });

  it('covers every field of the schema', () => {
    // Every property path of the schema, layer and optimizer branches included (array items as *).
    const fields = new Set<string>();
    const walk = (s: TSchema, path: string) => {
      const kind = (s as any)[Kind];
      if (kind === 'Union') for (const v of (s as any).anyOf) walk(v, path);
      else if (kind === 'Array') walk((s as any).items, `${path}/*`);
      else if (kind === 'Object') {
        for (const [key, sub] of Object.entries((s as any).properties as Record<string, TSchema>)) {
          if (key === 'type' && path !== '') continue; // a branch's discriminator, covered by the branch cases
          fields.add(`${path}/${key}`);
          walk(sub, `${path}/${key}`);
        }
      }
    };
    walk(JobSpecSchema, '');
    const covered = new Set(CASES.map(([, path]) => path.replace(/\/\d+(?=\/|$)/g, '/*')));
    const parents = (p: string) => p.split('/').map((_, i, a) => a.slice(0, i + 1).join('/'));
    const missing = [...fields].filter((f) => ![...covered].some((c) => parents(c).includes(f)));
    expect(missing).toEqual([]);
  });
});
