// `/`: jobs and experiments, newest first, refreshed every few seconds; the new-job form with the
// JSON it will send; one button per experiment template.
import { api } from '../api.js';
import { ago, badge, errorNotice, fill, h, pct } from '../dom.js';

const REFRESH_MS = 2000;

export async function render(main) {
  const jobsBox = h('div', { id: 'jobs' }, h('p', { class: 'muted' }, 'Loading jobs…'));
  const expBox = h('div', { id: 'experiments' });
  const templatesBox = h('div', { class: 'templates', id: 'templates' });
  const formBox = h('div', { class: 'card' });
  fill(main,
    h('h1', {}, 'Jobs and experiments'),
    h('div', { class: 'row' },
      h('div', { class: 'grow scroll' },
        h('h2', {}, 'Experiments'), expBox,
        h('h2', {}, 'Jobs'), jobsBox),
      h('div', { class: 'grow side' },
        h('h2', {}, 'Run an experiment'), h('div', { class: 'card' }, templatesBox),
        h('h2', {}, 'New job'), formBox)));

  newJobForm(formBox).catch((err) => fill(formBox, errorNotice(err)));
  templates(templatesBox).catch((err) => fill(templatesBox, errorNotice(err)));

  const refresh = async () => {
    // A tab in the background does not poll.
    if (document.hidden) { setTimeout(refresh, REFRESH_MS); return; }
    try {
      const [jobs, experiments] = await Promise.all([api('/jobs?limit=30'), api('/experiments?limit=20')]);
      fill(jobsBox, jobsTable(jobs.items));
      fill(expBox, experimentsTable(experiments.items));
    } catch (err) {
      fill(jobsBox, errorNotice(err));
    }
    setTimeout(refresh, REFRESH_MS);
  };
  refresh();
}

function jobsTable(items) {
  if (items.length === 0) return h('p', { class: 'muted' }, 'No jobs yet: submit one with the form.');
  return h('table', { id: 'jobs-table' },
    h('thead', {}, h('tr', {}, ['job', 'status', 'epoch', 'val acc', 'test acc', 'created'].map((c) => h('th', { class: /acc|epoch/.test(c) ? 'num' : '' }, c)))),
    h('tbody', {}, items.map((j) => {
      const epochs = j.spec?.training?.epochs;
      const epoch = j.progress?.epoch ?? j.metrics?.epoch ?? j.result?.metrics?.epochs;
      const m = j.result?.metrics ?? j.metrics;
      return h('tr', { dataset: { job: j.id } },
        h('td', { class: 'wrap' }, h('a', { href: `/jobs/${j.id}` }, j.name ?? j.id), h('div', { class: 'muted small' }, j.dataset)),
        h('td', {}, badge(j.status)),
        h('td', { class: 'num' }, epoch != null ? `${epoch} / ${epochs}` : `– / ${epochs}`),
        h('td', { class: 'num' }, pct(m?.val?.accuracy)),
        h('td', { class: 'num' }, pct(m?.test?.accuracy)),
        h('td', { class: 'muted' }, ago(j.createdAt)));
    })));
}

function experimentsTable(items) {
  if (items.length === 0) return h('p', { class: 'muted' }, 'No experiments yet: start one from a template.');
  return h('table', { id: 'experiments-table' },
    h('thead', {}, h('tr', {}, ['experiment', 'status', 'variants', 'runs', 'created'].map((c) => h('th', {}, c)))),
    h('tbody', {}, items.map((e) => {
      const c = e.counts ?? {};
      const runs = e.jobs ?? (Array.isArray(e.jobIds) ? e.jobIds.length : undefined);
      return h('tr', { dataset: { experiment: e.id } },
        h('td', {}, h('a', { href: `/experiments/${e.id}` }, e.name ?? e.id)),
        h('td', {}, badge(e.status)),
        h('td', { class: 'num' }, typeof e.variants === 'number' ? e.variants : e.variants?.length ?? '–'),
        h('td', { class: 'num' }, runs != null ? `${c.succeeded ?? 0} of ${runs} done${c.failed ? `, ${c.failed} failed` : ''}` : '–'),
        h('td', { class: 'muted' }, ago(e.createdAt)));
    })));
}

async function templates(box) {
  const list = await api('/experiments/templates');
  const items = Array.isArray(list) ? list : list.items ?? list.templates ?? [];
  const status = h('div', { class: 'small' });
  fill(box, items.map((t) => h('button', {
    type: 'button', class: 'secondary template', title: t.claim ?? '', dataset: { template: t.id ?? t.name },
    onclick: async (e) => {
      e.target.disabled = true;
      try {
        const created = await api('/experiments', { method: 'POST', body: { template: t.id ?? t.name } });
        location.assign(`/experiments/${created.id}`);
      } catch (err) {
        fill(status, errorNotice(err));
        e.target.disabled = false;
      }
    },
  }, h('strong', {}, t.id), ' ', t.question ?? '', t.jobs ? h('span', { class: 'muted small' }, ` · ${t.jobs} runs`) : null)), status);
}

const ACTIVATIONS = ['relu', 'leaky_relu', 'elu', 'tanh', 'sigmoid'];
// Batch-norm modes by architecture (the spec's rule): a recurrent network normalizes inside its layers.
const BN_MODES = { feedforward: ['before', 'after', 'input', 'none'], rnn: ['none', 'sequence', 'recurrent'] };
const CELLS = ['lstm', 'gru', 'rnn'];

/** Indented JSON with arrays of numbers on one line. */
const pretty = (value) => JSON.stringify(value, null, 2).replace(/\[\s+([-\d.e,\s]*?)\s+\]/g, (_, inner) => `[${inner.split(/,\s+/).join(', ')}]`);

const ints = (s) => s.split(/[\s,]+/).filter(Boolean).map(Number);

async function newJobForm(box) {
  const datasets = (await api('/datasets')).items.filter((d) => d.available);
  const field = (label, input) => h('label', {}, label, input);
  const select = (name, values, value) => h('select', { name }, values.map((v) => h('option', { value: v, selected: v === value }, v)));
  const input = (name, value, attrs = {}) => h('input', { name, value, ...attrs });
  const defaultDataset = datasets.find((d) => d.id === 'fashion-mnist') ?? datasets[0];

  const form = h('form', { class: 'spec', id: 'new-job' },
    field('name', input('name', '', { placeholder: 'optional' })),
    field('dataset', h('select', { name: 'dataset' }, datasets.map((d) => h('option', { value: d.id, selected: d === defaultDataset }, d.name === d.id ? d.id : `${d.id} (${d.name})`)))),
    field('training rows (limit)', input('limit', defaultDataset?.id === 'fashion-mnist' ? '10000' : '', { type: 'number', min: 1, placeholder: 'all' })),
    field('size (synthetic)', input('size', '2000', { type: 'number', min: 10 })),
    field('architecture', select('architecture', ['mlp', 'cnn', 'rnn'], 'mlp')),
    field('hidden units (mlp; rnn: per recurrent layer)', input('hidden', '256, 256')),
    field('conv filters (cnn)', input('conv', '32, 64')),
    field('dense units (cnn)', input('dense', '128')),
    field('cell (rnn)', select('cell', CELLS, 'lstm')),
    field('nonlinearity (rnn cell rnn)', select('nonlinearity', ['tanh', 'relu'], 'tanh')),
    field('bidirectional (rnn)', input('bidirectional', 'true', { type: 'checkbox' })),
    field('sequence steps (rnn: each row as steps × features/steps)', input('steps', '28', { type: 'number', min: 1, step: 1 })),
    field('activation', select('activation', ACTIVATIONS, 'relu')),
    field('batch norm', select('batchNorm', BN_MODES.feedforward, 'before')),
    field('dropout', input('dropout', '0', { type: 'number', min: 0, max: 0.95, step: 0.05 })),
    field('optimizer', select('optimizer', ['sgd', 'adam'], 'sgd')),
    field('learning rate', input('learningRate', '0.01', { type: 'number', min: 0, step: 'any' })),
    field('momentum (sgd)', input('momentum', '0.9', { type: 'number', min: 0, max: 0.999, step: 'any' })),
    field('epochs', input('epochs', '10', { type: 'number', min: 1, step: 1 })),
    field('batch size', input('batchSize', '128', { type: 'number', min: 2, step: 1 })),
  );
  const preview = h('pre', { class: 'json', id: 'spec-preview' });
  const status = h('div');
  const submit = h('button', { type: 'submit', form: 'new-job', id: 'submit-job' }, 'Submit job');

  const spec = () => {
    const v = Object.fromEntries(new FormData(form));
    const ds = datasets.find((d) => d.id === v.dataset);
    const synthetic = ds?.kind === 'synthetic';
    const dataset = { id: v.dataset };
    if (synthetic && v.size) dataset.size = Number(v.size);
    if (!synthetic && v.limit) dataset.limit = Number(v.limit);
    let model;
    if (v.architecture === 'cnn') model = { architecture: 'cnn', conv: ints(v.conv), dense: ints(v.dense), activation: v.activation };
    else if (v.architecture === 'rnn') {
      model = { architecture: 'rnn', cell: v.cell, hidden: ints(v.hidden), bidirectional: v.bidirectional === 'true' };
      if (v.nonlinearity) model.nonlinearity = v.nonlinearity;
    }
    else model = { architecture: 'mlp', hidden: ints(v.hidden), activation: v.activation };
    Object.assign(model, { batchNorm: v.batchNorm, dropout: Number(v.dropout) });
    if (v.architecture === 'rnn' && v.steps) dataset.sequence = { steps: Number(v.steps) };
    const optimizer = { type: v.optimizer, learningRate: Number(v.learningRate) };
    if (v.optimizer === 'sgd') optimizer.momentum = Number(v.momentum);
    return {
      ...(v.name.trim() ? { name: v.name.trim() } : {}),
      dataset,
      model,
      training: { epochs: Number(v.epochs), batchSize: Number(v.batchSize), optimizer },
    };
  };
  // The batch-norm choices of the chosen architecture; a choice the other one
  // does not offer falls back to that one's default.
  const batchNormChoices = (rnn) => {
    const modes = rnn ? BN_MODES.rnn : BN_MODES.feedforward;
    const bn = form.elements.batchNorm;
    if ([...bn.options].map((o) => o.value).join() === modes.join()) return;
    const value = modes.includes(bn.value) ? bn.value : modes[0];
    fill(bn, ...modes.map((m) => h('option', { value: m, selected: m === value }, m)));
    bn.value = value;
  };
  // Only the fields that apply to the chosen dataset, architecture and optimizer are enabled.
  const update = () => {
    const arch = form.elements.architecture.value;
    batchNormChoices(arch === 'rnn');
    const v = Object.fromEntries(new FormData(form));
    const synthetic = datasets.find((d) => d.id === v.dataset)?.kind === 'synthetic';
    form.elements.size.disabled = !synthetic;
    form.elements.limit.disabled = synthetic;
    form.elements.hidden.disabled = arch === 'cnn';
    form.elements.conv.disabled = arch !== 'cnn';
    form.elements.dense.disabled = arch !== 'cnn';
    for (const name of ['cell', 'bidirectional', 'steps']) form.elements[name].disabled = arch !== 'rnn';
    form.elements.nonlinearity.disabled = arch !== 'rnn' || form.elements.cell.value !== 'rnn';
    // Recurrent cells have their own nonlinearities.
    form.elements.activation.disabled = arch === 'rnn';
    form.elements.momentum.disabled = v.optimizer !== 'sgd';
    preview.textContent = pretty(spec());
  };
  // Switching between mlp and rnn swaps an untouched default for the other's.
  const hiddenDefaults = { mlp: '256, 256', rnn: '128' };
  let lastArch = form.elements.architecture.value;
  form.elements.architecture.addEventListener('change', () => {
    const arch = form.elements.architecture.value;
    if (hiddenDefaults[lastArch] === form.elements.hidden.value && hiddenDefaults[arch]) form.elements.hidden.value = hiddenDefaults[arch];
    lastArch = arch;
  });
  form.addEventListener('input', update);
  form.addEventListener('change', update);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    fill(status);
    try {
      const created = await api('/jobs', { method: 'POST', body: spec() });
      location.assign(`/jobs/${created.id}`);
    } catch (err) {
      fill(status, errorNotice(err));
      submit.disabled = false;
    }
  });
  update();
  fill(box, form, h('h3', {}, 'POST /v1/jobs'), preview, h('p', {}, submit), status);
}
