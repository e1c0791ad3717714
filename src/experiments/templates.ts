/**
 * Ready-made experiments: the batch-norm article's claims, one request each.
 * By default each is small enough for minutes on a 2-core machine
 * (dataset.limit, few epochs); `"full": true` in the overrides gives the
 * full-size run (all training rows, more epochs).
 */
import { ExperimentError } from './spec.js';

export interface Template {
  id: string;
  question: string;
  claim: string;
  build(full: boolean): Record<string, unknown>;
}

const SEEDS = [1, 2, 3];
/** Plain SGD: no momentum, so the learning rate alone sets the step. */
const plainSgd = (learningRate: number) => ({ type: 'sgd', learningRate, momentum: 0 });
const fashion = (full: boolean, limit: number) => ({ id: 'fashion-mnist', validationSplit: 0.1, limit: full ? null : limit });

export const TEMPLATES: Template[] = [
  {
    id: 'bn-epochs',
    question: 'Does batch norm reduce the epochs needed to reach a validation accuracy?',
    claim: 'Batch normalization speeds up training: the network reaches a given accuracy in fewer epochs.',
    build: (full) => ({
      name: 'bn-epochs',
      base: {
        dataset: fashion(full, 6000),
        model: { hidden: full ? [256, 256] : [128, 128] },
        training: { epochs: full ? 15 : 8, batchSize: 64, optimizer: plainSgd(0.01) },
      },
      grid: { 'model.batchNorm': ['none', 'before'] },
      seeds: SEEDS,
      target: { metric: 'val.accuracy', value: full ? 0.85 : 0.8 },
      baseline: { 'model.batchNorm': 'none' },
    }),
  },
  {
    id: 'bn-placement',
    question: 'Batch norm before or after the activation, for relu and for s-shaped activations?',
    claim: 'The original paper puts BN before the activation; the article suggests after may suit s-shaped activations (tanh, sigmoid).',
    build: (full) => ({
      name: 'bn-placement',
      base: {
        dataset: fashion(full, 6000),
        model: { hidden: full ? [256, 256] : [128, 128] },
        training: { epochs: full ? 10 : 4, batchSize: 64, optimizer: plainSgd(0.05) },
      },
      grid: { 'model.activation': ['relu', 'tanh', 'sigmoid'], 'model.batchNorm': ['before', 'after'] },
      seeds: SEEDS,
      baseline: { 'model.batchNorm': 'before' },
    }),
  },
  {
    id: 'learning-rate',
    question: 'Does batch norm let plain SGD survive learning rates that break the plain network?',
    claim: 'With batch normalization, much higher learning rates train; without it the same rates diverge or stall.',
    build: (full) => ({
      name: 'learning-rate',
      base: {
        dataset: fashion(full, 6000),
        model: { hidden: full ? [256, 256] : [128, 128] },
        training: { epochs: full ? 10 : 4, batchSize: 64, optimizer: plainSgd(0.01) },
      },
      grid: { 'model.batchNorm': ['none', 'before'], 'training.optimizer.learningRate': [0.01, 0.1, 1.0] },
      seeds: SEEDS,
      baseline: { 'model.batchNorm': 'none' },
    }),
  },
  {
    id: 'dropout',
    question: 'Does dropout still help a batch-normalized network?',
    claim: 'The article: batch norm and dropout are not a good mix (dropout shifts the variance BN has learned).',
    build: (full) => ({
      name: 'dropout',
      base: {
        dataset: fashion(full, 6000),
        model: { hidden: full ? [256, 256] : [128, 128], batchNorm: 'before' },
        training: { epochs: full ? 10 : 5, batchSize: 64, optimizer: { type: 'sgd', learningRate: 0.05, momentum: 0.9 } },
      },
      grid: { 'model.dropout': [0, 0.3, 0.5] },
      seeds: SEEDS,
      baseline: { 'model.dropout': 0 },
    }),
  },
  {
    id: 'init',
    question: 'Does batch norm make a deep network insensitive to its weight initialization?',
    claim: 'With BN, a tiny or a large initial weight scale trains about as well; without BN a deep MLP depends on it.',
    build: (full) => ({
      name: 'init',
      base: {
        dataset: fashion(full, 6000),
        model: { hidden: Array(6).fill(full ? 128 : 64) },
        training: { epochs: full ? 10 : 4, batchSize: 64, optimizer: plainSgd(0.05) },
      },
      grid: { 'model.init': [{ normal: { std: 0.01 } }, { normal: { std: 1 } }], 'model.batchNorm': ['none', 'before'] },
      seeds: SEEDS,
      baseline: { 'model.batchNorm': 'none' },
    }),
  },
  {
    id: 'small-batch',
    question: 'How do batch norm and batch renormalization behave with small mini-batches?',
    claim: 'Batch statistics of a few rows are noisy: plain BN loses accuracy and shows a train/inference gap; renormalization corrects it.',
    build: (full) => ({
      name: 'small-batch',
      base: {
        dataset: fashion(full, 3000),
        model: { hidden: full ? [256, 256] : [64, 64] },
        training: { epochs: full ? 5 : 2, optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 } },
      },
      grid: {
        'training.batchSize': [4, 16, 128],
        'model.batchNorm,batchNorm.renorm': [['none', null], ['before', null], ['before', { rMax: 3, dMax: 5, warmupSteps: full ? 5000 : 500 }]],
      },
      seeds: SEEDS,
      baseline: { 'model.batchNorm,batchNorm.renorm': ['none', null] },
    }),
  },
  {
    id: 'input-bn',
    question: 'Can a batch-norm layer on the raw inputs replace standardizing features whose scales differ by orders of magnitude?',
    claim: 'BN on the inputs learns the standardization: it should train about as well as preprocess: standardize, and far better than raw inputs.',
    build: (full) => ({
      name: 'input-bn',
      base: {
        dataset: { id: 'scales', size: full ? 20_000 : 3000, noise: 0.5 },
        model: { hidden: [32, 32] },
        training: { epochs: full ? 20 : 8, batchSize: 64, optimizer: plainSgd(0.01) },
      },
      grid: { 'model.batchNorm,dataset.preprocess': [['none', 'none'], ['input', 'none'], ['none', 'standardize']] },
      seeds: SEEDS,
      baseline: { 'model.batchNorm,dataset.preprocess': ['none', 'none'] },
    }),
  },
  {
    id: 'inference-stats',
    question: 'Moving averages or population statistics at inference, after a short and a long training?',
    claim: 'After a short training the moving averages (momentum 0.99) still lag the network; exact population statistics fix that. After a long training both agree.',
    build: (full) => ({
      name: 'inference-stats',
      base: {
        dataset: fashion(full, 3000),
        model: { hidden: full ? [256, 256] : [64, 64], batchNorm: 'before' },
        training: { batchSize: 128, optimizer: { type: 'sgd', learningRate: 0.05, momentum: 0.9 } },
      },
      grid: { 'training.epochs': full ? [1, 20] : [1, 10], 'batchNorm.inferenceStats': ['moving', 'population'] },
      seeds: SEEDS,
      baseline: { 'batchNorm.inferenceStats': 'moving' },
    }),
  },
  {
    id: 'rnn-bn',
    question: 'Which batch norm helps a recurrent network on sequential Fashion-MNIST: none, sequence-wise or recurrent?',
    claim: 'Deep Speech 2 normalizes only the input-to-hidden term, over all N·T values (sequence); Cooijmans et al. (2016) normalize the input and ' +
      'recurrent terms and the cell per time step (recurrent) and report faster convergence on sequential MNIST.',
    build: (full) => ({
      name: 'rnn-bn',
      base: {
        dataset: fashion(full, 6000),
        model: { architecture: 'rnn', cell: 'lstm', hidden: [128] },
        training: { epochs: 3, batchSize: 128, optimizer: { type: 'adam', learningRate: 0.001 }, targetAccuracy: full ? 0.85 : 0.7 },
      },
      grid: { 'model.batchNorm': ['none', 'sequence', 'recurrent'] },
      seeds: SEEDS,
      target: { metric: 'test.accuracy', value: full ? 0.85 : 0.7 },
      baseline: { 'model.batchNorm': 'none' },
    }),
  },
];

export function findTemplate(id: string): Template | undefined {
  return TEMPLATES.find((t) => t.id === id);
}

/** `{template, overrides}` → the experiment it stands for (overrides merged in; `full` picks the full-size version). */
export function buildTemplate(input: Record<string, unknown>): unknown {
  const { template: id, overrides = {}, ...rest } = input;
  const issues = Object.keys(rest).map((k) => ({ path: `/${k}`, message: 'a template request has only template and overrides' }));
  const template = typeof id === 'string' ? findTemplate(id) : undefined;
  if (!template) issues.push({ path: '/template', message: `unknown template ${JSON.stringify(id)}; templates: ${TEMPLATES.map((t) => t.id).join(', ')}` });
  if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) issues.push({ path: '/overrides', message: 'must be an object' });
  const { full = false, ...changes } = overrides as Record<string, unknown>;
  if (typeof full !== 'boolean') issues.push({ path: '/overrides/full', message: 'must be true or false' });
  if (issues.length > 0) throw new ExperimentError(issues);
  return merge(template!.build(full as boolean), changes);
}

/** Objects merge key by key; anything else (arrays, scalars, null) replaces. */
export function merge(target: unknown, patch: unknown): unknown {
  if (!isObject(target) || !isObject(patch)) return patch;
  const out: Record<string, unknown> = { ...target };
  for (const [k, v] of Object.entries(patch)) out[k] = merge(out[k], v);
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
