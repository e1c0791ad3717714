// The dashboard's only way to the server: /v1 over fetch with the API key from sessionStorage
// (asked for when the server answers 401), and event streams read with fetch + a stream reader
// (EventSource cannot send the Authorization header), resuming after the last id received.

const KEY_STORAGE = 'normlab.apiKey';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? `HTTP_${status}`;
    this.details = body?.error?.details ?? {};
  }
}

const storedKey = () => sessionStorage.getItem(KEY_STORAGE);

function headers(extra = {}) {
  const key = storedKey();
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

let asking = null;

/** Show the key dialog (once, however many requests wait on it); resolves when a key was entered. */
export function askForKey(reason) {
  if (asking) return asking;
  const dialog = document.getElementById('key-dialog');
  const input = document.getElementById('key-input');
  document.getElementById('key-reason').textContent = reason;
  input.value = '';
  asking = new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      asking = null;
      const key = input.value.trim();
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      resolve();
    }, { once: true });
  });
  dialog.showModal();
  return asking;
}

async function unauthorized(res) {
  const body = await res.json().catch(() => null);
  document.getElementById('key-button').hidden = false;
  await askForKey(storedKey() ? `The key was refused: ${body?.error?.message ?? 'not valid'}` : 'This server needs an API key.');
}

/** A JSON call to /v1; throws ApiError with the server's {code, message, details}. */
export async function api(path, { method = 'GET', body } = {}) {
  for (;;) {
    const res = await fetch(`/v1${path}`, {
      method,
      headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) { await unauthorized(res); continue; }
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Follow an event stream: onEvent(event, id) for every event, reconnecting after a dropped
 * connection with Last-Event-ID until isTerminal(event) or signal aborts.
 */
export async function follow(path, onEvent, { isTerminal, signal } = {}) {
  let lastId = null;
  let failures = 0;
  while (!signal?.aborted) {
    try {
      const res = await fetch(`/v1${path}`, {
        headers: headers({ accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) }),
        signal,
      });
      if (res.status === 401) { await unauthorized(res); continue; }
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      let ended = false;
      for (;;) {
        const { value, done } = await reader.read();
        // After its terminal event the server ends the response; reading to the end (rather than
        // cancelling) lets the request finish cleanly.
        if (done) break;
        failures = 0;
        buffer += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let id = null;
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id:')) id = line.slice(3).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trimStart();
          }
          if (!data) continue;
          if (id) lastId = id;
          const event = JSON.parse(data);
          onEvent(event, id);
          if (isTerminal?.(event)) ended = true;
        }
      }
      if (ended) return;
    } catch (err) {
      if (signal?.aborted) return;
      if (err instanceof ApiError && err.status < 500) throw err;
    }
    // The stream ended without a terminal event (server restart, network): resume where it stopped.
    failures += 1;
    await sleep(Math.min(10_000, 500 * 2 ** Math.min(failures, 5)));
  }
}
