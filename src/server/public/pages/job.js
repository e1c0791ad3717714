// `/jobs/:id`: progress with ETA, live loss / accuracy curves and the train/inference gap from the
// event stream, warnings, per-BN-layer statistics over epochs (batch vs running mean and variance,
// γ), per-channel statistics when the server keeps them, final metrics and the model.
import { api, follow } from '../api.js';
import { Chart, fade, INTEGER_STEPS, PALETTE } from '../charts.js';
import { badge, duration, errorNotice, fill, h, num, pct, signed } from '../dom.js';

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const [TRAIN, VAL, TEST] = PALETTE;

export async function render(main, id) {
  const job = await api(`/jobs/${id}`);
  const spec = job.spec ?? {};
  const epochs = spec.training?.epochs ?? 0;

  const status = h('span', { id: 'job-status' }, badge(job.status));
  const bar = h('div', { style: 'width: 0%' });
  const progressText = h('div', { class: 'small muted', id: 'progress-text' }, 'waiting for the first step…');
  const warnings = h('div', { id: 'warnings' });
  const final = h('div', { id: 'final' });
  const charts = h('div', { class: 'grid2' });
  const gapBox = h('div', {});
  const bnBox = h('div', { id: 'bn-layers' });
  const channelsBox = h('div', { id: 'bn-channels' });
  const modelLink = h('span', {});
  const cancel = h('button', {
    type: 'button', class: 'secondary', id: 'cancel-job', hidden: job.status !== 'queued' && job.status !== 'running',
    onclick: async () => {
      cancel.disabled = true;
      await api(`/jobs/${id}`, { method: 'DELETE' }).catch((err) => warnings.append(errorNotice(err)));
    },
  }, 'Cancel job');

  fill(main,
    h('h1', {}, spec.name ?? job.name ?? id, ' ', status, ' ', cancel),
    h('p', { class: 'muted' }, describe(spec), ' · ', h('span', { class: 'mono' }, id),
      job.experiment ? [' · experiment ', h('a', { href: `/experiments/${job.experiment.id}` }, job.experiment.id), ` (${job.experiment.variant ?? ''}, seed ${job.experiment.seed ?? '–'})`] : null),
    h('p', {}, h('a', { href: `/v1/jobs/${id}/metrics?format=csv`, download: `${id}-metrics.csv` }, 'metrics CSV'), ' · ', modelLink),
    h('div', { class: 'card' }, h('div', { class: 'progress', id: 'progress' }, bar), progressText),
    warnings,
    h('h2', {}, 'Curves'), charts,
    gapBox,
    h('h2', {}, 'Final metrics'), final,
    bnBox, channelsBox,
    h('details', {}, h('summary', {}, 'Spec'), h('pre', { class: 'json' }, JSON.stringify(spec, null, 2))));

  const loss = new Chart(charts, {
    title: 'Loss', name: 'loss',
    series: [{ label: 'train', stroke: TRAIN }, { label: 'validation', stroke: VAL }, { label: 'test', stroke: TEST, dash: [4, 3] }],
  });
  const accuracy = new Chart(charts, {
    title: 'Accuracy', name: 'accuracy',
    series: [{ label: 'train', stroke: TRAIN }, { label: 'validation', stroke: VAL }, { label: 'test', stroke: TEST, dash: [4, 3] }],
  });
  let gap = null;
  const bnLayers = new Map();
  const seenWarnings = new Set();

  const showWarning = (w) => {
    if (seenWarnings.has(w.code + w.message)) return;
    seenWarnings.add(w.code + w.message);
    warnings.append(h('div', { class: 'notice', role: 'status', dataset: { code: w.code } }, h('code', {}, w.code), ' ', w.message));
  };
  (job.warnings ?? []).forEach(showWarning);

  const setModel = (modelId) => {
    if (modelId) fill(modelLink, h('a', { href: `/models/${modelId}`, id: 'model-link' }, `model ${modelId} →`));
  };
  setModel(job.modelId);
  const setProgress = (done, text) => {
    bar.style.width = `${Math.min(100, 100 * done).toFixed(1)}%`;
    progressText.textContent = text;
  };
  if (job.result) showFinal(final, job.result.metrics, job.result.epochsToTarget, job.modelId);
  else fill(final, h('p', { class: 'muted' }, 'When the job ends.'));
  if (job.error) final.prepend(errorNotice(job.error));

  const onEpoch = (e) => {
    loss.push(e.epoch, [e.train?.loss, e.val?.loss, e.test?.loss]);
    accuracy.push(e.epoch, [e.train?.accuracy, e.val?.accuracy, e.test?.accuracy]);
    if (e.gap) {
      gap ??= gapChart(gapBox);
      gap.push(e.epoch, [e.gap.batch?.accuracy, e.gap.frozen?.accuracy, e.gap.accuracy]);
    }
    for (const s of e.bn ?? []) {
      let layer = bnLayers.get(s.layer);
      if (!layer) {
        if (bnLayers.size === 0) bnBox.append(h('h2', {}, 'Batch-norm layers over epochs'),
          h('p', { class: 'muted small' }, 'Means over the channels of each layer: batch statistics averaged over the epoch\'s mini-batches, ' +
            `running statistics at the end of the epoch${s.batchMeanSpread != null ? '; the band is ± the spread of the batch statistics across channels' : ''}.`));
        layer = bnLayerCharts(bnBox, s.layer);
        bnLayers.set(s.layer, layer);
      }
      const bm = s.batchMean ?? null;
      const bv = s.batchVar ?? null;
      const ms = s.batchMeanSpread ?? null;
      const vs = s.batchVarSpread ?? null;
      layer.mean.push(e.epoch, [bm, s.runningMean, bm != null && ms != null ? bm - ms : null, bm != null && ms != null ? bm + ms : null]);
      layer.variance.push(e.epoch, [bv, s.runningVar, bv != null && vs != null ? Math.max(0, bv - vs) : null, bv != null && vs != null ? bv + vs : null]);
      layer.gamma.push(e.epoch, [s.gammaNorm]);
    }
    setProgress(epochs ? e.epoch / epochs : 0, `epoch ${e.epoch} / ${epochs} done`);
  };

  const onEvent = (e) => {
    if (TERMINAL.has(e.type)) cancel.hidden = true;
    switch (e.type) {
      case 'started':
        fill(status, badge('running'));
        break;
      case 'progress': {
        const done = epochs && e.stepsPerEpoch ? ((e.epoch - 1) * e.stepsPerEpoch + e.step) / (epochs * e.stepsPerEpoch) : 0;
        setProgress(done, `epoch ${e.epoch} / ${epochs} · step ${e.step} / ${e.stepsPerEpoch} · loss ${num(e.loss)} · ` +
          `${Math.round(e.samplesPerSec).toLocaleString('en')} samples/s · ETA ${duration(e.etaSeconds)}`);
        break;
      }
      case 'epoch':
        onEpoch(e);
        break;
      case 'warning':
        showWarning(e);
        break;
      case 'completed':
        fill(status, badge('succeeded'));
        setProgress(1, `done: ${e.metrics?.epochs ?? '–'} epochs in ${duration(e.metrics?.trainingSeconds)}`);
        showFinal(final, e.metrics, e.epochsToTarget, e.modelId);
        setModel(e.modelId);
        channels(channelsBox, id);
        break;
      case 'failed':
        fill(status, badge('failed'));
        progressText.textContent = `failed: ${e.code}`;
        fill(final, errorNotice(e));
        break;
      case 'cancelled':
        fill(status, badge('cancelled'));
        progressText.textContent = 'cancelled';
        break;
    }
  };
  follow(`/jobs/${id}/events`, onEvent, { isTerminal: (e) => TERMINAL.has(e.type) })
    .catch((err) => warnings.append(errorNotice(err)));
}

function describe(spec) {
  const m = spec.model ?? {};
  const t = spec.training ?? {};
  const arch = m.layers ? `${m.layers.length} explicit layers` : m.architecture === 'cnn'
    ? `cnn conv [${(m.conv ?? []).join(', ')}] dense [${(m.dense ?? []).join(', ')}]`
    : `mlp [${(m.hidden ?? []).join(', ')}]`;
  const opt = t.optimizer ? `${t.optimizer.type} lr ${t.optimizer.learningRate}` : '';
  return [spec.dataset?.id, arch, m.activation, `BN ${m.batchNorm ?? '–'}`, m.dropout ? `dropout ${m.dropout}` : null, opt,
    `batch ${t.batchSize}`, `${t.epochs} epochs`].filter(Boolean).join(' · ');
}

function gapChart(box) {
  box.append(h('h2', {}, 'Train/inference gap'),
    h('p', { class: 'muted small' }, 'The same rows through the model with batch statistics (training mode) and with the frozen statistics (inference form); gap = batch − frozen accuracy.'));
  const grid = h('div', { class: 'grid2' });
  box.append(grid);
  return new Chart(grid, {
    title: 'Accuracy with batch vs frozen statistics', name: 'gap',
    series: [{ label: 'batch statistics', stroke: PALETTE[3] }, { label: 'frozen statistics', stroke: PALETTE[4] },
      { label: 'gap', stroke: '#111827', dash: [5, 3], scale: 'gap' }],
    scales: { gap: { auto: true } },
    axes: [{ label: 'epoch', size: 36, labelSize: 16, incrs: INTEGER_STEPS }, { size: 56, label: 'accuracy', labelSize: 16 },
      { side: 1, scale: 'gap', size: 56, grid: { show: false }, label: 'gap', labelSize: 16 }],
  });
}

function bnLayerCharts(box, layer) {
  const grid = h('div', { class: 'grid3', dataset: { bnLayer: layer } });
  box.append(h('h3', {}, `Layer ${layer}`), grid);
  const band = (color) => [{ label: 'lo', stroke: color, edge: true }, { label: 'hi', stroke: color, edge: true }];
  const bands = [{ series: [4, 3], fill: fade(PALETTE[0], 0.12) }];
  return {
    mean: new Chart(grid, {
      title: 'mean', name: `bn-${layer}-mean`, height: 180, bands,
      series: [{ label: 'batch', stroke: PALETTE[0] }, { label: 'running', stroke: PALETTE[1], dash: [4, 3] }, ...band(PALETTE[0])],
    }),
    variance: new Chart(grid, {
      title: 'variance', name: `bn-${layer}-variance`, height: 180, bands,
      series: [{ label: 'batch', stroke: PALETTE[0] }, { label: 'running', stroke: PALETTE[1], dash: [4, 3] }, ...band(PALETTE[0])],
    }),
    gamma: new Chart(grid, { title: '‖γ‖', name: `bn-${layer}-gamma`, height: 180, series: [{ label: 'γ norm', stroke: PALETTE[2] }] }),
  };
}

/** Per-channel statistics of each BN layer at its last epoch (GET /v1/jobs/:id/batchnorm). */
async function channels(box, id) {
  const history = await api(`/jobs/${id}/batchnorm`).catch(() => null);
  const layers = history?.layers ?? [];
  if (layers.length === 0) return;
  fill(box, h('h2', {}, 'Batch-norm channels at the last epoch'),
    h('p', { class: 'muted small' }, 'Per channel: the last epoch\'s batch statistics against the running statistics the model keeps, and γ.'));
  for (const l of layers) {
    const last = l.epochs?.at(-1);
    if (!last) continue;
    const xs = last.runningMean.map((_, i) => i);
    const grid = h('div', { class: 'grid3', dataset: { bnChannels: l.layer } });
    box.append(h('h3', {}, `Layer ${l.layer} (${l.kind}, ${l.channels} channels, epoch ${last.epoch}${last.frozen ? ', frozen' : ''})`), grid);
    const chart = (title, name, series, data) => {
      const c = new Chart(grid, { title, name, height: 180, xLabel: 'channel', series: series.map((s) => ({ ...s, points: xs.length <= 64 })) });
      c.set([xs, ...data]);
    };
    // The batch statistics as a wide pale line under the running ones: where they agree, one line shows through the other.
    const pair = [{ label: 'batch', stroke: fade(PALETTE[0], 0.45), width: 4 }, { label: 'running', stroke: PALETTE[1], width: 1 }];
    chart('mean', `bn-${l.layer}-channel-mean`, pair, [last.batchMean ?? xs.map(() => null), last.runningMean]);
    chart('variance', `bn-${l.layer}-channel-var`, pair, [last.batchVar ?? xs.map(() => null), last.runningVar]);
    if (last.gamma) chart('γ and β', `bn-${l.layer}-channel-gamma`, [{ label: 'γ', stroke: PALETTE[2] }, { label: 'β', stroke: PALETTE[3] }], [last.gamma, last.beta ?? xs.map(() => null)]);
  }
}

function showFinal(box, m, epochsToTarget, modelId) {
  if (!m) return;
  const row = (split, s) => h('tr', {}, h('td', {}, split), h('td', { class: 'num' }, num(s?.loss)), h('td', { class: 'num' }, pct(s?.accuracy, 2)));
  fill(box, h('div', { class: 'row' },
    h('table', { id: 'final-metrics', style: 'max-width: 420px' },
      h('thead', {}, h('tr', {}, h('th', {}, 'split'), h('th', { class: 'num' }, 'loss'), h('th', { class: 'num' }, 'accuracy'))),
      h('tbody', {}, row('train', m.train), row('validation', m.val), row('test (frozen statistics)', m.test))),
    h('dl', { class: 'kv card' },
      h('dt', {}, 'epochs'), h('dd', {}, m.epochs ?? '–'),
      h('dt', {}, 'training time'), h('dd', {}, duration(m.trainingSeconds)),
      h('dt', {}, 'throughput'), h('dd', {}, m.samplesPerSec ? `${Math.round(m.samplesPerSec).toLocaleString('en')} samples/s` : '–'),
      h('dt', {}, 'epochs to target'), h('dd', {}, epochsToTarget ?? '–'),
      m.gap ? [h('dt', {}, `gap on ${m.gap.split}`), h('dd', {}, `${signed(m.gap.accuracy)} accuracy (batch ${pct(m.gap.batch?.accuracy, 2)}, frozen ${pct(m.gap.frozen?.accuracy, 2)})`)] : null,
      m.inferenceStats ? [h('dt', {}, 'inference statistics'), h('dd', {}, m.inferenceStats)] : null,
      modelId ? [h('dt', {}, 'model'), h('dd', {}, h('a', { href: `/models/${modelId}` }, modelId))] : null)));
}
