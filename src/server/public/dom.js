// Small DOM helpers: elements are built with textContent only, so nothing from the API is parsed as HTML.

/** h('td', { class: 'num' }, 'text', child, …): an element with attributes (on* as listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const num = (v, digits = 4) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–');
export const pct = (v, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? `${(100 * v).toFixed(digits)} %` : '–');
export const signed = (v, digits = 4) => (typeof v === 'number' && Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(digits)}` : '–');

export function duration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function ago(iso) {
  if (!iso) return '–';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

export const badge = (status) => h('span', { class: `badge ${status}`, dataset: { status } }, status);

/** A failed request as a visible notice. */
export function errorNotice(err) {
  const details = err?.details && Object.keys(err.details).length ? JSON.stringify(err.details) : '';
  return h('div', { class: 'notice error', role: 'alert' },
    h('code', {}, err?.code ?? 'ERROR'), ' ', err?.message ?? String(err), details ? h('div', { class: 'mono small' }, details) : null);
}
