/**
 * Redis streams as server-sent events, for any number of clients over a
 * fixed number of Redis connections per API process.
 *
 * `StreamReader` is the one reader of a process. On one node (or Sentinel)
 * a single connection runs `XREAD BLOCK` over the streams of every open
 * client at once and hands each client the entries after its own position;
 * a client that joins while it blocks interrupts it (`CLIENT UNBLOCK` from
 * the shared connection), so its live events are not delayed. On a Redis
 * Cluster one XREAD cannot span hash slots, so the streams are grouped by
 * slot and each group is polled (every 25 ms while entries come, backing off
 * to 400 ms while idle) over one connection per node.
 *
 * `EventStreams.serve` is the one way a route answers with a stream: the
 * history after the client's Last-Event-ID (XRANGE on the shared
 * connection), then live entries from the reader, heartbeat comments in
 * between, and the end of the response after a terminal event (or when
 * `finished` says the source ended without one). Streams per tenant and per
 * process are capped (429 TOO_MANY_STREAMS). When the server closes, each
 * open stream gets a last comment and a clean end; the client reconnects (to
 * any API process) with its Last-Event-ID and misses nothing.
 */
import calculateSlot from 'cluster-key-slot';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { Cluster } from 'ioredis';
import { TERMINAL_EVENTS } from '../core/events.js';
import { parseEntry } from '../store/jobs.js';
import { createRedis, errorLogger, type Redis, type RedisConnection } from '../store/redis.js';
import { HttpError } from './errors.js';

/** Longest single blocking read; `finished` is also checked this often. */
const BLOCK_MS = 5000;
/** Entries per stream per read. */
const READ_COUNT = 500;
/** Wait after a failed read (Redis away) before the next. */
const RETRY_MS = 500;

const MAX_ID_PART = (1n << 64n) - 1n;
const MAX_ID = `${MAX_ID_PART}-${MAX_ID_PART}`;

/** A Redis stream id "ms-seq" as a pair of integers, or null when it is not one Redis accepts. */
export function parseStreamId(id: string): [bigint, bigint] | null {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  if (!m) return null;
  const ms = BigInt(m[1]!);
  const seq = BigInt(m[2]!);
  return ms <= MAX_ID_PART && seq <= MAX_ID_PART ? [ms, seq] : null;
}

/**
 * Where a stream resumes: the Last-Event-ID header, else the lastEventId
 * query parameter, else '0' (from the start). The schema checks their shape;
 * this the range Redis accepts (400 naming the header or parameter).
 */
export function resumeAfter(header: string | undefined, query: string | undefined): string {
  const after = header ?? query ?? '0';
  if (after === '0' || parseStreamId(after)) return after;
  const where = header !== undefined ? 'headers' : 'querystring';
  const path = header !== undefined ? '/last-event-id' : '/lastEventId';
  throw new HttpError(400, 'INVALID_REQUEST', `invalid ${where}: ${path} ${after.slice(0, 60)} is not a stream id (each part at most 2^64 - 1)`, {
    in: where, issues: [{ path, message: 'each part of the id must be at most 18446744073709551615' }],
  });
}

function compareIds(a: string, b: string): number {
  const [am, as] = parseStreamId(a) ?? [0n, 0n];
  const [bm, bs] = parseStreamId(b) ?? [0n, 0n];
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

type Entry = [string, string[]];

/** One event of a stream: its stream id (the SSE id) and the event, whose `type` is the SSE event name. */
export interface StreamEvent { id: string; event: { type: string } }

interface Subscriber { last: string; deliver: (entries: Entry[]) => void }

/**
 * The streams one read covers and its state. On one node (or Sentinel) there
 * is one group for every stream; on a cluster one per hash slot, since Redis
 * refuses a command whose keys lie in different slots (CROSSSLOT), even on
 * one node.
 */
interface Group {
  keys: Set<string>;
  running: boolean;
  /** Counts the reads, so an interruption meant for one read never hits the next. */
  reads: number;
  /** CLIENT ID of the blocking connection while it reads (one node); null otherwise. */
  blockedId: number | null;
  /** Ends the pause between two polls (cluster). */
  wake: (() => void) | null;
}

/** Poll delay on a cluster: this long after a read that found entries, doubling up to POLL_MAX_MS while idle. */
const POLL_MIN_MS = 25;
const POLL_MAX_MS = 400;

export class StreamReader {
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  private readonly groups = new Map<number, Group>();
  private readonly conn: Redis;
  /**
   * A cluster: each slot's streams are polled (XREAD without BLOCK) over the
   * one connection per node of `conn`, which follows MOVED, ASK and failovers;
   * a blocking read would hold a node's connection for one slot only.
   */
  private readonly cluster: boolean;
  private closed = false;
  private readonly logError: (err: unknown) => void;

  constructor(connection: RedisConnection, private readonly shared: Redis, logger: FastifyBaseLogger) {
    this.logError = errorLogger(logger, 'normlab:api:events');
    this.conn = createRedis(connection, 'normlab:api:events', { maxRetriesPerRequest: null }, logger);
    this.cluster = this.conn instanceof Cluster;
    // Connected from the start, so the process holds the same connections with or without streams.
    this.conn.connect().catch(() => {});
  }

  /** Entries of `key` after `after`, as they arrive, until the returned function is called. */
  subscribe(key: string, after: string, deliver: (entries: Entry[]) => void): () => void {
    const sub: Subscriber = { last: after, deliver };
    let set = this.subscribers.get(key);
    if (!set) this.subscribers.set(key, (set = new Set()));
    set.add(sub);
    const slot = this.cluster ? calculateSlot(key) : 0;
    let group = this.groups.get(slot);
    if (!group) this.groups.set(slot, (group = { keys: new Set(), running: false, reads: 0, blockedId: null, wake: null }));
    group.keys.add(key);
    this.wake(slot, group);
    return () => {
      set.delete(sub);
      if (set.size > 0 || this.subscribers.get(key) !== set) return;
      this.subscribers.delete(key);
      // The group stays (at most one per slot): a read still blocking on it is interrupted by the next subscriber.
      group.keys.delete(key);
    };
  }

  /** Open streams (subscriptions) of this process. */
  get size(): number {
    let n = 0;
    for (const set of this.subscribers.values()) n += set.size;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscribers.clear();
    for (const group of this.groups.values()) group.wake?.();
    this.groups.clear();
    this.conn.disconnect();
  }

  private wake(slot: number, group: Group): void {
    if (!group.running) {
      group.running = true;
      void this.loop(slot, group);
    } else if (this.cluster) {
      group.wake?.();
    } else {
      this.interrupt(group, group.reads, 0);
    }
  }

  /** End the current read so the next one includes the new subscriber; retried while the read has not started blocking yet. */
  private interrupt(group: Group, read: number, tries: number): void {
    if (this.closed || read !== group.reads || tries > 50) return;
    if (group.blockedId === null) {
      setTimeout(() => this.interrupt(group, read, tries + 1), 5);
      return;
    }
    this.shared.client('UNBLOCK', group.blockedId).then((unblocked) => {
      if (Number(unblocked) === 0) setTimeout(() => this.interrupt(group, read, tries + 1), 5);
    }, () => {});
  }

  /** One blocking read over every stream (one node), or one poll of the slot's streams (cluster). */
  private async read(group: Group, keys: string[], ids: string[]): Promise<Array<[string, Entry[]]> | null> {
    if (this.cluster) return await this.conn.xread('COUNT', READ_COUNT, 'STREAMS', ...keys, ...ids) as Array<[string, Entry[]]> | null;
    const read = ++group.reads;
    try {
      const id = Number(await this.conn.client('ID'));
      if (read === group.reads) group.blockedId = id;
      return await this.conn.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', ...keys, ...ids) as Array<[string, Entry[]]> | null;
    } finally {
      group.blockedId = null;
    }
  }

  /** Until the group is closed: `ms`, or less when a subscriber joins. */
  private pause(group: Group, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { group.wake = null; resolve(); }, ms);
      group.wake = () => { clearTimeout(timer); group.wake = null; resolve(); };
    });
  }

  private async loop(slot: number, group: Group): Promise<void> {
    let idle = POLL_MIN_MS;
    try {
      while (!this.closed && group.keys.size > 0) {
        const keys = [...group.keys];
        // Each stream from its furthest-behind subscriber; the others skip what they already have.
        const ids = keys.map((k) => [...this.subscribers.get(k) ?? []].reduce((min, s) => (compareIds(s.last, min) < 0 ? s.last : min), MAX_ID));
        let result: Array<[string, Entry[]]> | null;
        try {
          result = await this.read(group, keys, ids);
        } catch (err) {
          if (this.closed) return;
          this.logError(err);
          await this.pause(group, RETRY_MS);
          continue;
        }
        for (const [key, entries] of result ?? []) {
          for (const sub of this.subscribers.get(key) ?? []) {
            const fresh = entries.filter(([id]) => compareIds(id, sub.last) > 0);
            if (fresh.length === 0) continue;
            sub.last = fresh[fresh.length - 1]![0];
            sub.deliver(fresh);
          }
        }
        if (this.cluster) {
          idle = result ? POLL_MIN_MS : Math.min(idle * 2, POLL_MAX_MS);
          await this.pause(group, idle);
        }
      }
    } finally {
      group.running = false;
      if (!this.closed && group.keys.size > 0) this.wake(slot, group);
    }
  }
}

export interface StreamLimits { perTenant: number; perProcess: number; heartbeatMs: number }

export interface ServeOptions {
  /** The Redis stream to follow. */
  key: string;
  /** Stream id after which to start ('0': from the start); check it with parseStreamId first. */
  after: string;
  /** The tenant the stream counts against. */
  tenant: string;
  /** True when the source ended and no more entries will come (checked when the stream is idle). */
  finished: () => Promise<boolean>;
  /** An event after which the response ends (default: completed, failed, cancelled). */
  isTerminal?: (event: StreamEvent['event']) => boolean;
  /** A stream entry as an event (default: a job stream's, its `data` field). */
  parse?: (entry: [string, string[]]) => StreamEvent;
}

export class EventStreams {
  /** The open streams, ended when the server closes. */
  private readonly open = new Set<(farewell?: string) => void>();
  private readonly perTenant = new Map<string, number>();

  constructor(private readonly shared: Redis, private readonly reader: StreamReader, private readonly limits: StreamLimits) {}

  closeAll(): void {
    for (const end of this.open) end(': the server is shutting down; reconnect with Last-Event-ID\n\n');
  }

  async serve(request: FastifyRequest, reply: FastifyReply, options: ServeOptions): Promise<void> {
    const { key, tenant, finished } = options;
    const parse = options.parse ?? parseEntry;
    const isTerminal = options.isTerminal ?? ((e) => TERMINAL_EVENTS.has(e.type));
    const mine = this.perTenant.get(tenant) ?? 0;
    if (mine >= this.limits.perTenant || this.open.size >= this.limits.perProcess) {
      const perTenant = mine >= this.limits.perTenant;
      const limit = perTenant ? this.limits.perTenant : this.limits.perProcess;
      reply.header('retry-after', '5');
      throw new HttpError(429, 'TOO_MANY_STREAMS', perTenant
        ? `this tenant already has ${limit} open event streams on this API process; close one first`
        : `this API process already serves ${limit} event streams; retry shortly or reach another API process`, {
        limit, setting: perTenant ? 'SSE_MAX_STREAMS_PER_TENANT' : 'SSE_MAX_STREAMS',
      });
    }
    this.perTenant.set(tenant, mine + 1);

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    let live = true;
    let unsubscribe = () => {};
    let idleCheck: NodeJS.Timeout | undefined;
    let resolveEnded!: () => void;
    const ended = new Promise<void>((resolve) => { resolveEnded = resolve; });
    const write = (chunk: string) => { if (live && !res.destroyed) res.write(chunk); };
    const heartbeat = setInterval(() => write(': ping\n\n'), this.limits.heartbeatMs);
    const end = (farewell?: string) => {
      if (!live) return;
      if (farewell) write(farewell);
      live = false;
      clearInterval(heartbeat);
      clearInterval(idleCheck);
      unsubscribe();
      this.open.delete(end);
      const left = (this.perTenant.get(tenant) ?? 1) - 1;
      if (left > 0) this.perTenant.set(tenant, left);
      else this.perTenant.delete(tenant);
      res.end();
      resolveEnded();
    };
    this.open.add(end);
    res.on('close', () => end());
    res.on('error', () => end());
    write('retry: 2000\n\n');

    let last = options.after;
    /** Send events; true after a terminal one. */
    const send = (events: StreamEvent[]): boolean => {
      for (const e of events) {
        if (!live) return true;
        write(`id: ${e.id}\nevent: ${e.event.type}\ndata: ${JSON.stringify(e.event)}\n\n`);
        last = e.id;
        if (isTerminal(e.event)) return true;
      }
      return false;
    };
    const range = async (): Promise<StreamEvent[]> => (last === MAX_ID ? []
      : (await this.shared.xrange(key, `(${last}`, '+', 'COUNT', 1000)).map(parse));

    // Nothing new for a while: a source that ended (a job that expired, say) has at most its last entries left.
    let checking = false;
    idleCheck = setInterval(() => {
      if (checking) return;
      checking = true;
      finished().then(async (done) => {
        if (done && live) {
          send(await range());
          end();
        }
      }).catch(() => {}).finally(() => { checking = false; });
    }, BLOCK_MS);

    try {
      for (;;) {
        const events = await range();
        if (send(events)) return end();
        if (events.length < 1000) break;
      }
      if (!live) return;
      unsubscribe = this.reader.subscribe(key, last, (entries) => { if (send(entries.map(parse))) end(); });
      await ended;
    } catch (err) {
      if (live) request.log.error({ err, key }, 'event stream failed');
      end();
    }
  }
}
