/**
 * A job's events as server-sent events: the history after the client's
 * Last-Event-ID, then live events as the worker appends them (XREAD BLOCK on
 * a connection of the stream's own, so no other request waits behind it),
 * heartbeat comments in between, and the end of the response after the
 * terminal event. When the server closes, each open stream gets a last
 * comment and a clean end; the client reconnects (to any API process) with
 * its Last-Event-ID and misses nothing.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TERMINAL_EVENTS } from '../core/events.js';
import { isFinished, JobStore } from '../store/jobs.js';
import type { Redis } from '../store/redis.js';
import type { Services } from './services.js';

/** One entry of an event stream: the stream id and the event. */
interface StreamEntry { id: string; event: { type: string } }

/** Where a stream's events come from: a job's stream by default; an experiment's (routes/experiments.ts). */
export interface EventSource {
  events(after: string): Promise<StreamEntry[]>;
  readBlocking(conn: Redis, after: string, blockMs: number): Promise<StreamEntry[]>;
  /** Whether the stream's owner has finished (or is gone): then at most its terminal event is left. */
  finished(): Promise<boolean>;
  isTerminal(event: StreamEntry['event']): boolean;
}

/** Longest single blocking read; the loop also checks the job's status between reads. */
const BLOCK_MS = 5000;

export class EventStreams {
  /** The open streams, ended when the server closes. */
  private readonly open = new Set<(farewell?: string) => void>();

  constructor(private readonly services: Services) {}

  closeAll(): void {
    for (const end of this.open) end(': the server is shutting down; reconnect with Last-Event-ID\n\n');
  }

  private jobSource(jobId: string): EventSource {
    const { services } = this;
    return {
      events: (after) => services.jobStore.events(jobId, after),
      readBlocking: (conn, after, blockMs) => JobStore.readBlocking(conn, services.keys, jobId, after, blockMs),
      finished: async () => {
        const status = await services.jobStore.status(jobId);
        return !status || isFinished(status);
      },
      isTerminal: (event) => TERMINAL_EVENTS.has(event.type),
    };
  }

  async serve(request: FastifyRequest, reply: FastifyReply, jobId: string, after: string, source: EventSource = this.jobSource(jobId)): Promise<void> {
    const { services } = this;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const conn = services.blockingConnection();
    let live = true;
    const write = (chunk: string) => { if (live && !res.destroyed) res.write(chunk); };
    const heartbeat = setInterval(() => write(': ping\n\n'), services.config.sseHeartbeatMs);
    const end = (farewell?: string) => {
      if (!live) return;
      if (farewell) write(farewell);
      live = false;
      clearInterval(heartbeat);
      this.open.delete(end);
      conn.disconnect();
      res.end();
    };
    this.open.add(end);
    res.on('close', () => end());
    res.on('error', () => end());
    write('retry: 2000\n\n');

    const send = (events: StreamEntry[]): boolean => {
      for (const { id, event } of events) {
        write(`id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
        if (source.isTerminal(event)) return true;
      }
      return false;
    };

    try {
      let last = after;
      let events = await source.events(last);
      while (live) {
        if (send(events)) break;
        if (events.length > 0) {
          last = events[events.length - 1].id;
          events = await source.events(last);
          continue;
        }
        // Nothing new. A job that finished meanwhile has at most its terminal event left to send.
        if (await source.finished()) {
          send(await source.events(last));
          break;
        }
        events = await source.readBlocking(conn, last, BLOCK_MS);
      }
    } catch (err) {
      if (live) request.log.error({ err, jobId }, 'event stream failed');
    } finally {
      end();
    }
  }
}
