// `/models/:id`: layers, the frozen batch-norm statistics per layer, a predict form, and for image
// datasets a grid of test images with the model's prediction (wrong ones marked).
import { api } from '../api.js';
import { Chart, PALETTE } from '../charts.js';
import { errorNotice, fill, h, num, pct } from '../dom.js';

const GRID_IMAGES = 32;

export async function render(main, id) {
  const [model, bn] = await Promise.all([api(`/models/${id}`), api(`/models/${id}/batchnorm`)]);
  const bnBox = h('div', { class: 'grid3', id: 'bn-frozen' });
  const imagesBox = h('div', { id: 'images' });
  const predictBox = h('div', { class: 'card' });
  fill(main,
    h('h1', {}, model.name ?? id),
    h('p', { class: 'muted' }, `${model.dataset} · ${model.parameters.toLocaleString('en')} parameters · inference with ${model.inferenceStats} statistics · `,
      h('a', { href: `/jobs/${model.jobId}` }, 'training job'), ' · ', h('a', { href: `/v1/models/${id}/weights`, download: `${id}.safetensors` }, 'weights')),
    h('div', { class: 'row' },
      h('div', { class: 'grow' }, h('h2', {}, 'Layers'), layersTable(model)),
      h('div', { class: 'grow' }, h('h2', {}, 'Metrics'), metricsTable(model.metrics))),
    model.inputShape.length === 3 ? [h('h2', {}, 'Test images'), imagesBox] : null,
    h('h2', {}, 'Frozen batch-norm statistics'),
    bn.layers.length ? h('p', { class: 'muted small' }, 'What inference uses, per channel: mean and variance, and the learned γ and β.') : h('p', { class: 'muted' }, 'This model has no batch-norm layer.'),
    bnBox,
    h('h2', {}, 'Predict'), predictBox);

  for (const l of bn.layers) {
    const xs = l.mean.map((_, i) => i);
    const points = xs.length <= 64;
    const chart = new Chart(bnBox, {
      title: `layer ${l.layer} · ${l.channels} channels · ${l.source}`, name: `frozen-${l.layer}`, height: 200, xLabel: 'channel',
      series: [{ label: 'mean', stroke: PALETTE[0], points }, { label: 'variance', stroke: PALETTE[1], points, scale: 'var' },
        { label: 'γ', stroke: PALETTE[2], points, dash: [3, 3] }],
      scales: { var: { auto: true } },
      axes: [{ label: 'channel', size: 36, labelSize: 16 }, { size: 50, label: 'mean, γ', labelSize: 16 },
        { side: 1, scale: 'var', size: 50, grid: { show: false }, label: 'variance', labelSize: 16 }],
    });
    chart.set([xs, l.mean, l.variance, l.gamma]);
  }

  const samples = await sampleRows(model);
  predictForm(predictBox, id, model, samples);
  if (model.inputShape.length === 3 && samples) imageGrid(imagesBox, id, model, samples).catch((err) => fill(imagesBox, errorNotice(err)));
}

/** A few rows of the model's dataset (test split for a built-in image set, else the upload's rows); null when there are none. */
async function sampleRows(model) {
  if (model.inputShape.length === 3) return api(`/datasets/${model.dataset}/samples?split=test&limit=${GRID_IMAGES}`).catch(() => null);
  if (model.dataset.startsWith('ds_')) return api(`/datasets/${model.dataset}/samples?split=train&limit=8`).catch(() => null);
  return null;
}

function layersTable(model) {
  const detail = (l) => Object.entries(l).filter(([k]) => k !== 'index' && k !== 'type')
    .map(([k, v]) => `${k} ${Array.isArray(v) ? `[${v.join(', ')}]` : typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
  return h('table', { id: 'layers' },
    h('thead', {}, h('tr', {}, h('th', { class: 'num' }, '#'), h('th', {}, 'layer'), h('th', {}, ''))),
    h('tbody', {}, model.layers.map((l) => h('tr', {}, h('td', { class: 'num' }, l.index), h('td', {}, l.type), h('td', { class: 'muted small wrap' }, detail(l))))),
    h('tfoot', {}, h('tr', {}, h('td', {}), h('td', { class: 'muted small', colspan: 2 }, `input [${model.inputShape.join(', ')}] → ${model.classes} classes · preprocess ${model.preprocess}`))));
}

function metricsTable(m) {
  const row = (split, s) => h('tr', {}, h('td', {}, split), h('td', { class: 'num' }, num(s?.loss)), h('td', { class: 'num' }, pct(s?.accuracy, 2)));
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'split'), h('th', { class: 'num' }, 'loss'), h('th', { class: 'num' }, 'accuracy'))),
    h('tbody', {}, row('train', m.train), row('validation', m.val), row('test', m.test),
      m.gap ? h('tr', {}, h('td', {}, `train/inference gap (${m.gap.split})`), h('td', {}), h('td', { class: 'num' }, `${(100 * m.gap.accuracy).toFixed(2)} pts`)) : null));
}

async function imageGrid(box, id, model, samples) {
  const { predictions } = await api(`/models/${id}/predict`, { method: 'POST', body: { instances: samples.samples.map((s) => s.features) } });
  const [, rows, cols] = model.inputShape;
  let wrong = 0;
  const figures = samples.samples.map((s, i) => {
    const p = predictions[i];
    const truth = samples.classNames[s.label] ?? String(s.label);
    const best = Math.max(...p.probabilities);
    const isWrong = p.label !== truth;
    if (isWrong) wrong += 1;
    const canvas = h('canvas', { width: cols, height: rows, 'aria-label': `test image ${s.index}` });
    drawImage(canvas, s.features, rows, cols);
    return h('figure', { class: isWrong ? 'wrong' : '', dataset: { index: s.index, predicted: p.label, truth } },
      canvas,
      h('figcaption', {}, h('div', { class: 'pred' }, `${isWrong ? '✗ ' : ''}${p.label} ${(100 * best).toFixed(0)}%`), h('div', { class: 'muted' }, `true: ${truth}`)));
  });
  fill(box,
    h('p', { class: 'muted small', id: 'images-summary' }, `Test images ${samples.offset}–${samples.offset + samples.samples.length - 1}: `,
      `${samples.samples.length - wrong} of ${samples.samples.length} right; wrong predictions are marked red.`),
    h('div', { class: 'images' }, figures));
}

function drawImage(canvas, pixels, rows, cols) {
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(cols, rows);
  const max = Math.max(1, ...pixels);
  for (let i = 0; i < rows * cols; i++) {
    const v = 255 - Math.round((255 * pixels[i]) / max); // dark garment on white, as in the dataset's own figures
    img.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

function predictForm(box, id, model, samples) {
  const first = samples?.samples?.[0]?.features;
  const example = model.features <= 32 ? [first ?? new Array(model.features).fill(0)] : null;
  const textarea = h('textarea', { id: 'predict-input', spellcheck: 'false' },
    JSON.stringify({ instances: example ?? [first ?? new Array(model.features).fill(0)] }));
  const out = h('div', { id: 'predict-output' });
  // Any of the sample rows can fill the form.
  const pick = samples?.samples?.length ? h('label', { class: 'pick' }, `fill with a ${samples.split} row`, h('select', {
    onchange: (e) => { textarea.value = JSON.stringify({ instances: [samples.samples[Number(e.target.value)].features] }); },
  }, samples.samples.map((smp, i) => h('option', { value: i }, `#${smp.index} (${samples.classNames[smp.label] ?? smp.label})`)))) : null;
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      fill(out);
      let body;
      try {
        body = JSON.parse(textarea.value);
      } catch (err) {
        fill(out, errorNotice({ code: 'MALFORMED_JSON', message: err.message }));
        return;
      }
      try {
        const { predictions } = await api(`/models/${id}/predict`, { method: 'POST', body });
        fill(out, h('table', {},
          h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'label'), ...model.classNames.map((c) => h('th', { class: 'num' }, c)))),
          h('tbody', {}, predictions.map((p, i) => h('tr', {}, h('td', {}, i), h('td', {}, p.label), ...p.probabilities.map((v) => h('td', { class: 'num' }, v.toFixed(3))))))));
      } catch (err) {
        fill(out, errorNotice(err));
      }
    },
  },
  h('p', { class: 'muted small' }, `POST /v1/models/${id}/predict with {"instances": [[…${model.features} raw values…], …]}; the model applies its own preprocessing (${model.preprocess}).`),
  pick, textarea, h('p', {}, h('button', { type: 'submit' }, 'Predict')));
  fill(box, form, out);
}
