// `/experiments/:id`: one chart per metric with a curve per variant (mean over seeds, the seeds'
// min–max as a band), the summary table (epochs-to-target ± sd, verdicts) and a bar chart of
// epochs-to-target per variant. Runs stream in over the experiment's event stream.
import { api, follow } from '../api.js';
import { barChart, Chart, fade, PALETTE } from '../charts.js';
import { badge, errorNotice, fill, h, num, pct } from '../dom.js';

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const METRICS = [
  { key: 'val.accuracy', title: 'Validation accuracy', get: (e) => e.val?.accuracy },
  { key: 'val.loss', title: 'Validation loss', get: (e) => e.val?.loss, capped: true },
  { key: 'train.loss', title: 'Training loss', get: (e) => e.train?.loss, capped: true },
  { key: 'test.accuracy', title: 'Test accuracy (frozen statistics)', get: (e) => e.test?.accuracy },
  { key: 'gap.accuracy', title: 'Train/inference gap (batch − frozen accuracy)', get: (e) => e.gap?.accuracy },
];

/** Tolerant readers of the experiment resource. */
export const variantKey = (v, i) => String(v.index ?? v.id ?? v.key ?? i);
export const variantLabel = (v, i) => v.label ?? v.name
  ?? (Object.entries(v.values ?? v.grid ?? v.params ?? {}).map(([k, x]) => `${k}=${x}`).join(', ') || `variant ${i + 1}`);
const variantRuns = (v) => (v.runs ?? v.jobs ?? v.jobIds ?? []).map((r) => (typeof r === 'string' ? { jobId: r } : { ...r, jobId: r.jobId ?? r.id }));
const stat = (x) => (x == null ? null : typeof x === 'number' ? { mean: x } : x);
/** Epochs to target: {reached, runs, stats} (stats: mean, sd, …), or a bare number / stats object. */
const ettOf = (v) => { const e = summaryOf(v).epochsToTarget; return e?.stats ? { ...e.stats, reached: e.reached, runs: e.runs } : stat(e); };
const isBaseline = (v, i) => v.baseline === true || (typeof v.baseline === 'number' && v.baseline === (v.index ?? i));
/** The variants with their statistics: in the summary when the experiment has one. */
const variantsOf = (exp) => exp.summary?.variants ?? exp.variants ?? [];

export async function render(main, id) {
  const exp = await api(`/experiments/${id}`);
  const variants = variantsOf(exp);
  const status = h('span', { id: 'experiment-status' }, badge(exp.status));
  const counts = h('span', { class: 'muted', id: 'experiment-counts' });
  const chartsBox = h('div', { class: 'grid2', id: 'experiment-charts' });
  const summaryBox = h('div', { id: 'summary' });
  const barsBox = h('div', { class: 'grid2', id: 'experiment-bars' });
  const target = exp.target ?? exp.summary?.target ?? exp.spec?.target;
  fill(main,
    h('h1', {}, exp.name ?? id, ' ', status),
    h('p', { class: 'muted' }, h('span', { class: 'mono' }, id), ' · ', `${variants.length} variants`,
      target ? ` · target ${target.metric} ≥ ${target.value}` : '', ' · ', counts),
    h('h2', {}, 'Summary'), summaryBox,
    h('h2', {}, 'Curves'), h('p', { class: 'muted small' }, 'A curve per variant: the mean over its seeds; the band spans the seeds\' lowest to highest value.'),
    chartsBox,
    h('h2', {}, 'Epochs to target'), barsBox);

  // runs: jobId → { variant index, seed, epochs: Map(epoch → event) }
  const runs = new Map();
  variants.forEach((v, vi) => variantRuns(v).forEach((r) => runs.set(r.jobId, { vi, seed: r.seed, epochs: new Map() })));
  const charts = METRICS.map((m) => ({ ...m, chart: null }));

  // Each chart is redrawn from the runs at most once per frame, however many epoch events arrived.
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      for (const c of charts) {
        const data = aggregate(runs, variants.length, c.get);
        if (!data) continue;
        c.chart ??= metricChart(chartsBox, c, variants);
        c.chart.set(data);
      }
    });
  };

  let bars = null;
  const showSummary = (e) => {
    const c = e.counts ?? e.summary?.counts ?? {};
    const current = variantsOf(e).length ? variantsOf(e) : variants;
    counts.textContent = Object.entries(c).map(([k, n]) => `${n} ${k}`).join(' · ');
    fill(status, badge(e.status));
    fill(summaryBox, summaryTable(current, target), e.summary?.method ? h('p', { class: 'muted small' }, e.summary.method) : null);
    bars?.destroy();
    bars = null;
    fill(barsBox);
    const ett = current.map(ettOf);
    if (ett.some((s) => s?.mean != null)) {
      bars = barChart(barsBox, {
        title: `Epochs to ${target ? `${target.metric} ≥ ${target.value}` : 'target'} (mean ± sd over the seeds that reached it)`, name: 'epochs-to-target',
        labels: barLabels(current), values: ett.map((s) => s?.mean ?? null), spreads: ett.map((s) => s?.sd ?? s?.std ?? 0),
        colors: current.map((_, i) => PALETTE[i % PALETTE.length]), yLabel: 'epochs', missingLabel: 'not reached',
      });
    } else {
      barsBox.append(h('p', { class: 'muted' }, target ? 'No run has reached the target yet.' : 'This experiment has no target.'));
    }
  };
  showSummary(exp);

  // History of the runs that already have epochs, then the live stream.
  await Promise.all([...runs.keys()].map(async (jobId) => {
    const m = await api(`/jobs/${jobId}/metrics`).catch(() => null);
    for (const e of m?.epochs ?? []) runs.get(jobId).epochs.set(e.epoch, e);
  }));
  redraw();

  // A run (or the experiment) ended: read the summary again, once for a burst of endings.
  let refreshTimer = null;
  const refreshSummary = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => api(`/experiments/${id}`).then(showSummary).catch((err) => summaryBox.prepend(errorNotice(err))), 250);
  };

  const variantIndex = (e) => {
    if (runs.has(e.jobId)) return runs.get(e.jobId).vi;
    if (Number.isInteger(e.variant) && e.variant >= 0 && e.variant < variants.length) return e.variant;
    const i = variants.findIndex((v, vi) => variantKey(v, vi) === String(e.variant) || variantLabel(v, vi) === String(e.variant));
    return i >= 0 ? i : null;
  };
  follow(`/experiments/${id}/events`, (e) => {
    if (e.jobId && e.type === 'epoch') {
      let run = runs.get(e.jobId);
      if (!run) {
        const vi = variantIndex(e);
        if (vi == null) return;
        run = { vi, seed: e.seed, epochs: new Map() };
        runs.set(e.jobId, run);
      }
      run.epochs.set(e.epoch, e);
      redraw();
    } else if (TERMINAL.has(e.type)) {
      refreshSummary();
    }
  }, { isTerminal: (e) => !e.jobId && TERMINAL.has(e.type) })
    .catch((err) => summaryBox.prepend(errorNotice(err)));
}

/** The variants' labels when they fit under their bars, else their numbers in the summary table. */
const barLabels = (variants) => {
  const labels = variants.map(variantLabel);
  return labels.length <= 4 && labels.every((l) => l.length <= 28) ? labels : labels.map((_, i) => String(i + 1));
};

const summaryOf = (v) => v.summary ?? v.aggregate ?? v.stats ?? v;

/** [epochs, then per variant mean, lo, hi] over the runs, or null when no run has the metric. */
function aggregate(runs, nVariants, get) {
  let maxEpoch = 0;
  let any = false;
  const byVariant = Array.from({ length: nVariants }, () => []);
  for (const r of runs.values()) {
    byVariant[r.vi]?.push(r);
    for (const [ep, e] of r.epochs) if (get(e) != null) { any = true; maxEpoch = Math.max(maxEpoch, ep); }
  }
  if (!any) return null;
  const xs = Array.from({ length: maxEpoch }, (_, i) => i + 1);
  const cols = [];
  for (let v = 0; v < nVariants; v++) {
    const mean = new Array(maxEpoch).fill(null);
    const lo = new Array(maxEpoch).fill(null);
    const hi = new Array(maxEpoch).fill(null);
    for (let i = 0; i < maxEpoch; i++) {
      let sum = 0; let n = 0; let min = Infinity; let max = -Infinity;
      for (const r of byVariant[v]) {
        const e = r.epochs.get(i + 1);
        const y = e ? get(e) : null;
        if (y == null || !Number.isFinite(y)) continue;
        sum += y; n += 1; min = Math.min(min, y); max = Math.max(max, y);
      }
      if (n > 0) { mean[i] = sum / n; lo[i] = min; hi[i] = max; }
    }
    cols.push(mean, lo, hi);
  }
  return [xs, ...cols];
}

function metricChart(box, metric, variants) {
  const series = [];
  const bands = [];
  variants.forEach((v, i) => {
    const color = PALETTE[i % PALETTE.length];
    const base = 1 + 3 * i;
    series.push({ label: variantLabel(v, i), stroke: color, width: 2 },
      { label: 'min', stroke: color, edge: true }, { label: 'max', stroke: color, edge: true });
    bands.push({ series: [base + 2, base + 1], fill: fade(color, 0.13) });
  });
  // A diverged run's loss (1e20) would flatten every other curve: the axis stops at twice the 90th percentile of the means.
  const capped = (u, min, max) => {
    const means = u.data.filter((_, k) => k % 3 === 1).flat().filter((v) => v != null && Number.isFinite(v)).sort((a, b) => a - b);
    const cap = means.length ? 2 * means[Math.floor(0.9 * (means.length - 1))] : max;
    return [Math.min(0, min), Math.max(1e-9, Math.min(max, cap)) * 1.05];
  };
  return new Chart(box, {
    title: metric.title, name: metric.key, series, bands, height: 240,
    ...(metric.capped ? { scales: { y: { range: capped } } } : {}),
  });
}

function meanSd(s, digits = 1) {
  if (!s || s.mean == null) return '–';
  const sd = s.sd ?? s.std;
  return sd == null ? num(s.mean, digits) : `${num(s.mean, digits)} ± ${num(sd, digits)}`;
}

function summaryTable(variants, target) {
  const rows = variants.map((v, i) => {
    const s = summaryOf(v);
    const ett = ettOf(v);
    const reached = ett?.reached;
    const seeds = ett?.runs ?? variantRuns(v).length;
    const acc = (x) => { const t = stat(x); return t?.mean == null ? '–' : `${pct(t.mean, 1)}${(t.sd ?? t.std) != null ? ` ± ${(100 * (t.sd ?? t.std)).toFixed(1)}` : ''}`; };
    const gap = stat(s.gap);
    return h('tr', { dataset: { variant: variantKey(v, i) } },
      h('td', { class: 'wrap variant' }, `${i + 1} `, h('span', { style: `color: ${PALETTE[i % PALETTE.length]}` }, '■ '), variantLabel(v, i), isBaseline(v, i) ? h('span', { class: 'muted small' }, ' (baseline)') : null,
        h('div', { class: 'small' }, variantRuns(v).map((r, k) => [k ? ' · ' : '',
          h('a', { href: `/jobs/${r.jobId}`, title: r.status ?? '', class: r.status === 'failed' ? 'bad' : '' }, `seed ${r.seed ?? k + 1}${r.diverged ? ' (diverged)' : r.status === 'failed' ? ' (failed)' : ''}`)]))),
      h('td', { class: 'num' }, target ? `${meanSd(ett)}${reached != null ? ` (${reached} of ${seeds} seeds)` : ''}` : '–'),
      h('td', { class: 'num' }, acc(s.bestValAccuracy ?? s.bestVal?.accuracy ?? s.bestValidationAccuracy)),
      h('td', { class: 'num' }, acc(s.finalValAccuracy ?? s.finalVal?.accuracy)),
      h('td', { class: 'num' }, acc(s.finalTestAccuracy ?? s.finalTest?.accuracy ?? s.testAccuracy)),
      h('td', { class: 'num' }, gap?.mean != null ? `${(100 * gap.mean).toFixed(2)} pts` : '–'),
      h('td', { class: 'num' }, meanSd(stat(s.trainingSeconds), 1)),
      h('td', { class: 'wrap' }, v.verdict ?? s.verdict ?? ''));
  });
  return h('table', { id: 'summary-table' },
    h('thead', {}, h('tr', {}, ['variant', 'epochs to target ± sd', 'best val acc', 'final val acc', 'test acc', 'gap', 'seconds', 'verdict']
      .map((c, i) => h('th', { class: i > 0 && i < 7 ? 'num' : '' }, c)))),
    h('tbody', {}, rows));
}
