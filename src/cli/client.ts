/**
 * The NormLab API over HTTP for the CLI: NORMLAB_URL (default
 * http://127.0.0.1:3000) and NORMLAB_API_KEY. Answers other than 2xx become a
 * CliError with the API's code and message; events come from the job's SSE
 * stream (the eventsource package: reconnects by itself, resuming after the
 * last event it saw with Last-Event-ID).
 */
import { EventSource } from 'eventsource';
import type { TrainEvent } from '../core/events.js';
import { CliError } from './errors.js';

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
/** Reconnection attempts in a row (2 s apart, the server's retry) before giving up. */
const MAX_RECONNECTS = 10;
const EVENT_TYPES = ['queued', 'started', 'progress', 'epoch', 'warning', 'checkpoint', 'completed', 'failed', 'cancelled'];

export class ApiClient {
  constructor(readonly baseUrl: string, private readonly apiKey: string | undefined) {}

  static fromEnv(env = process.env): ApiClient {
    const url = (env.NORMLAB_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
    if (!/^https?:\/\//.test(url)) throw new CliError(`NORMLAB_URL=${url}: expected an http:// or https:// URL`, 2);
    return new ApiClient(url, env.NORMLAB_API_KEY || undefined);
  }

  private auth(headers: Headers): Headers {
    if (this.apiKey) headers.set('authorization', `Bearer ${this.apiKey}`);
    return headers;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers = this.auth(new Headers(body === undefined ? {} : { 'content-type': 'application/json' }));
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new CliError(`cannot reach the NormLab API at ${this.baseUrl} (set NORMLAB_URL): ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      throw new CliError(`${method} ${path}: HTTP ${res.status}, not a JSON answer (is NORMLAB_URL=${this.baseUrl} a NormLab API?)`);
    }
    if (!res.ok) {
      const e = json?.error;
      const hint = res.status === 401 ? ' (set NORMLAB_API_KEY)' : '';
      throw new CliError(`${e?.code ?? `HTTP ${res.status}`}: ${e?.message ?? text}${hint}`);
    }
    return json as T;
  }

  /**
   * Follow a job's events until its terminal event, which it returns. A
   * dropped connection is retried by EventSource from the last event id.
   */
  watch(jobId: string, onEvent: (e: TrainEvent) => void, onReconnect?: (lastEventId: string) => void): Promise<TrainEvent> {
    return new Promise((resolve, reject) => {
      let lastEventId = '';
      let failures = 0; // connection errors since the last event
      const es = new EventSource(`${this.baseUrl}/v1/jobs/${encodeURIComponent(jobId)}/events`, {
        fetch: (input, init) => fetch(input, { ...init, headers: this.auth(new Headers(init?.headers)) }),
      });
      for (const type of EVENT_TYPES) {
        es.addEventListener(type, (message) => {
          lastEventId = message.lastEventId;
          failures = 0;
          const event = JSON.parse(message.data) as TrainEvent;
          onEvent(event);
          if (TERMINAL.has(event.type)) {
            es.close();
            resolve(event);
          }
        });
      }
      es.addEventListener('error', (err) => {
        if (es.readyState === EventSource.CLOSED) {
          // A refused stream (4xx) is not retried: say why.
          const status = (err as { code?: number }).code;
          reject(new CliError(status === 404 ? `JOB_NOT_FOUND: no job with id ${jobId}` : status === 401 ? 'UNAUTHORIZED: the event stream needs an API key (set NORMLAB_API_KEY)'
            : `the event stream of ${jobId} failed: ${(err as { message?: string }).message ?? `HTTP ${status}`}`));
        } else if (++failures > MAX_RECONNECTS) {
          es.close();
          reject(new CliError(`lost the event stream of ${jobId} at ${this.baseUrl} and could not reconnect ${MAX_RECONNECTS} times; \`normlab watch ${jobId}\` resumes`));
        } else {
          onReconnect?.(lastEventId);
        }
      });
    });
  }
}
