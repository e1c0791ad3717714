// uPlot charts fed plain arrays. Updates are batched into one redraw per animation frame, so a
// 1000-epoch replay or a dozen runs streaming at once cost a handful of redraws, not one per event.
import { h } from './dom.js';

const { uPlot } = window;

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d', '#7c3aed', '#0d9488'];

/** The same color with an alpha, for bands. */
export function fade(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** An axis as wide as its longest tick label (uPlot's axis-autosize demo), so 1,000,000 fits as well as 0.5. */
export function autoSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values ?? []).reduce((a, v) => (String(v).length > a.length ? String(v) : a), '');
  if (longest !== '') {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size) + (axis.label ? 18 : 0);
}

/** Epochs and channels are whole numbers: no tick at 2.5. */
export const INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

const fmtValue = (v) => (v == null ? '–' : Math.abs(v) >= 1000 || (Math.abs(v) < 0.001 && v !== 0) ? v.toExponential(2) : v.toPrecision(4));

/**
 * A line chart over x (epochs by default). series: [{label, stroke, dash, width, scale, band: {lo, hi}}]
 * where band marks a series as one edge of a filled band (`hiOf` index) and hides it from the legend.
 */
export class Chart {
  constructor(parent, { title, name, series, xLabel = 'epoch', height = 220, bands = [], yRange, scales, axes, xValues, hooks, logY = false }) {
    // data-points / data-draws: how many x values are drawn and how many redraws it took (the browser test reads them).
    this.el = h('div', { class: 'chart', dataset: { chart: name ?? title, points: '0', draws: '0' } }, h('div', { class: 'title' }, title));
    this.draws = 0;
    parent.append(this.el);
    this.data = [[], ...series.map(() => [])];
    this.pending = false;
    const opts = {
      width: 400,
      height,
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: { ...(logY ? { distr: 3, log: 10 } : {}), ...(yRange ? { range: yRange } : {}) }, ...(scales ?? {}) },
      axes: axes ?? [
        { label: xLabel, size: 36, labelSize: 16, incrs: INTEGER_STEPS, ...(xValues ? { values: xValues } : {}) },
        { size: autoSize },
      ],
      series: [
        { label: xLabel, value: (u, v) => (v == null ? '–' : xValues ? xValues(u, [v])[0] : v) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: s.width ?? 1.5,
          dash: s.dash,
          scale: s.scale ?? 'y',
          fill: s.fill,
          paths: s.paths,
          spanGaps: true,
          points: { show: s.points ?? false, size: 4 },
          value: (u, v) => fmtValue(v),
          ...(s.edge ? { label: s.label, width: 0, stroke: 'transparent', points: { show: false } } : {}),
        })),
      ],
      bands,
      hooks: hooks ?? {},
    };
    this.u = new uPlot(opts, this.data, this.el);
    // An edge of a band has nothing to say in the legend.
    series.forEach((s, i) => {
      const row = this.u.root.querySelectorAll('.u-legend .u-series')[i + 1];
      if (s.edge && row) row.style.display = 'none';
    });
    const resize = () => this.u.setSize({ width: Math.max(240, this.el.clientWidth), height });
    this.resizer = new ResizeObserver(resize);
    this.resizer.observe(this.el);
  }

  destroy() {
    this.resizer.disconnect();
    this.u.destroy();
    this.el.remove();
  }

  /** Append one x with its values (null for a missing one). */
  push(x, values) {
    this.data[0].push(x);
    values.forEach((v, i) => this.data[i + 1].push(v ?? null));
    this.schedule();
  }

  /** Replace all the data: [xs, ys1, ys2, …]. */
  set(data) {
    this.data = data;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.u.setData(this.data);
      this.el.dataset.points = String(this.data[0].length);
      this.el.dataset.draws = String(++this.draws);
    });
  }
}

/** A bar chart of one value per category with a whisker (± spread) drawn over each bar. */
export function barChart(parent, { title, name, labels, values, spreads, colors, yLabel, missingLabel = 'no value', height = 240 }) {
  const xs = labels.map((_, i) => i);
  const whiskers = (u) => {
    const { ctx } = u;
    ctx.save();
    ctx.strokeStyle = '#111827';
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.fillStyle = '#5f6b7a';
    ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    xs.forEach((x, i) => {
      const v = values[i];
      const s = spreads[i];
      if (v == null) {
        ctx.fillText(missingLabel, u.valToPos(x, 'x', true), u.valToPos(0, 'y', true) - 8 * devicePixelRatio);
        return;
      }
      if (!s) return;
      const cx = u.valToPos(x, 'x', true);
      const lo = u.valToPos(v - s, 'y', true);
      const hi = u.valToPos(v + s, 'y', true);
      const w = 6 * devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(cx, lo); ctx.lineTo(cx, hi);
      ctx.moveTo(cx - w, lo); ctx.lineTo(cx + w, lo);
      ctx.moveTo(cx - w, hi); ctx.lineTo(cx + w, hi);
      ctx.stroke();
    });
    ctx.restore();
  };
  const max = Math.max(1, ...values.map((v, i) => (v ?? 0) + (spreads[i] ?? 0)));
  const chart = new Chart(parent, {
    title, name, height, xLabel: 'variant',
    xValues: (u, splits) => splits.map((v) => (Number.isInteger(v) ? labels[v] ?? '' : '')),
    scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: { range: [0, max * 1.1] } },
    axes: [
      { size: 40, values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? labels[v] ?? '' : '')), splits: () => xs, gap: 4 },
      { label: yLabel, size: autoSize, labelSize: 16 },
    ],
    series: [{
      label: yLabel,
      stroke: '#1f2937',
      fill: 'rgba(37, 99, 235, 0.55)',
      // Per-bar colors (uPlot's `disp`: one color per data index, for the fill and the outline).
      paths: uPlot.paths.bars({
        size: [0.6, 80],
        disp: { fill: { unit: 3, values: () => colors.map((c) => fade(c, 0.55)) }, stroke: { unit: 3, values: () => colors } },
      }),
      points: false,
    }],
    hooks: { draw: [whiskers] },
  });
  chart.set([xs, values]);
  return chart;
}
