/**
 * Experiment records in Redis: a hash per experiment (tenant, status, the
 * request, its variants and runs, the final summary), its event stream and
 * the tenant's index. The children's epoch and terminal events reach the
 * stream through the job store's append (JobStore.copyToExperiment); the experiment's own
 * terminal event (`completed` or `cancelled`, with the summary) is written
 * once, by FINISH_EXPERIMENT_LUA, together with the summary.
 */
import type { Target } from '../experiments/grid.js';
import type { ExperimentSpec } from '../experiments/spec.js';
import type { Summary } from '../experiments/summary.js';
import type { Keys } from '../queue/keys.js';
import { NOT_DURABLE, waitForReplicas, writeDurably, type Durability } from './durable.js';
import type { Redis } from './redis.js';

export type ExperimentStatus = 'queued' | 'running' | 'succeeded' | 'cancelled';
export const EXPERIMENT_STATUSES: ExperimentStatus[] = ['queued', 'running', 'succeeded', 'cancelled'];

/** What the record keeps of a variant (its spec lives in its children). */
export interface VariantInfo { index: number; label: string; values: Record<string, unknown>; baseline: number }
export interface RunRef { jobId: string; variant: number; seed: number }

export interface ExperimentRecord {
  id: string;
  tenant: string;
  name: string | null;
  template: string | null;
  /** Stored status: queued until it finishes (the API shows running once a child started). */
  status: ExperimentStatus;
  createdAt: string;
  finishedAt: string | null;
  cancelRequested: boolean;
  request: ExperimentSpec;
  paths: string[];
  target: Target | null;
  variants: VariantInfo[];
  runs: RunRef[];
  summary: Summary | null;
}

/** An experiment stream entry (fields type and data, like a job's): a child's event tagged with where it came from, or the experiment's own. */
export interface ExperimentEvent { type: string; jobId?: string; variant?: number; seed?: number; [field: string]: unknown }
export interface StoredExperimentEvent { id: string; event: ExperimentEvent }

/**
 * KEYS: hash, events. ARGV: status (succeeded | cancelled), summary JSON, finishedAt, event JSON, ttl.
 * Returns the stream id of the terminal event, or false when the experiment already finished.
 */
export const FINISH_EXPERIMENT_LUA = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'succeeded' or status == 'cancelled' then return false end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'summary', ARGV[2], 'finishedAt', ARGV[3])
local type = ARGV[1] == 'cancelled' and 'cancelled' or 'completed'
local id = redis.call('XADD', KEYS[2], '*', 'type', type, 'data', ARGV[4])
local ttl = tonumber(ARGV[5])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return id
`;

export function isExperimentFinished(status: ExperimentStatus): boolean {
  return status === 'succeeded' || status === 'cancelled';
}

export class ExperimentStore {
  constructor(private readonly redis: Redis, private readonly keys: Keys, private readonly retainSeconds: number, private readonly durability: Durability = NOT_DURABLE) {}

  /** The experiment's record and stream (its slot), then the tenant's index (the tenant's slot). */
  async create(record: Omit<ExperimentRecord, 'status' | 'finishedAt' | 'cancelRequested' | 'summary'>): Promise<void> {
    const k = this.keys;
    await this.redis.multi()
      .hset(k.experiment(record.id), {
        id: record.id, tenant: record.tenant, name: record.name ?? '', template: record.template ?? '', status: 'queued',
        createdAt: record.createdAt, request: JSON.stringify(record.request), paths: JSON.stringify(record.paths),
        target: JSON.stringify(record.target), variants: JSON.stringify(record.variants), runs: JSON.stringify(record.runs),
      })
      .xadd(k.experimentEvents(record.id), '*', 'type', 'queued', 'data', JSON.stringify({ type: 'queued' }))
      .exec();
    await this.redis.zadd(k.experimentIndex(record.tenant), 0, record.id);
  }

  /** Wait until replicas hold what `create` wrote. */
  awaitReplicas(tenant: string, id: string): Promise<void> {
    return waitForReplicas(this.redis, this.durability, [this.keys.experiment(id), this.keys.experimentIndex(tenant)]);
  }

  async remove(tenant: string, id: string): Promise<void> {
    const k = this.keys;
    await this.redis.zrem(k.experimentIndex(tenant), id);
    await this.redis.unlink(k.experiment(id), k.experimentEvents(id));
  }

  async get(id: string): Promise<ExperimentRecord | null> {
    return parseRecord(await this.redis.hgetall(this.keys.experiment(id)));
  }

  async requestCancel(id: string): Promise<void> {
    const key = this.keys.experiment(id);
    await writeDurably(this.redis, this.durability, key, () => this.redis.hset(key, 'cancelRequested', '1'));
  }

  /** Record the summary and write the terminal event, once. Returns false when it had already finished. */
  async finish(id: string, status: 'succeeded' | 'cancelled', summary: Summary): Promise<boolean> {
    const k = this.keys;
    const event = { type: status === 'cancelled' ? 'cancelled' : 'completed', summary };
    const res = await writeDurably(this.redis, this.durability, k.experiment(id), () => this.redis.finishExperiment(
      k.experiment(id), k.experimentEvents(id), status, JSON.stringify(summary), new Date().toISOString(), JSON.stringify(event), this.retainSeconds,
    ));
    return res !== null;
  }

  /** Newest first; the cursor is the last id of the previous page. */
  async list(tenant: string, options: { limit: number; cursor?: string }): Promise<{ items: ExperimentRecord[]; nextCursor: string | null }> {
    const index = this.keys.experimentIndex(tenant);
    const ids = await this.redis.zrevrangebylex(index, options.cursor ? `(${options.cursor}` : '+', '-', 'LIMIT', 0, options.limit);
    // One command per experiment: on a cluster each one's hash is on its own slot.
    const hashes = await Promise.all(ids.map((id) => this.redis.hgetall(this.keys.experiment(id))));
    const items: ExperimentRecord[] = [];
    const expired: string[] = [];
    ids.forEach((id, i) => {
      const record = parseRecord(hashes[i]!);
      if (record) items.push(record); else expired.push(id);
    });
    if (expired.length > 0) await this.redis.zrem(index, ...expired);
    return { items, nextCursor: ids.length === options.limit ? ids.at(-1)! : null };
  }

  /** Events after `after` (exclusive; '0' = from the start). */
  async events(id: string, after = '0', count = 1000): Promise<StoredExperimentEvent[]> {
    const entries = await this.redis.xrange(this.keys.experimentEvents(id), `(${after}`, '+', 'COUNT', count);
    return entries.map(parseEntry);
  }

  async status(id: string): Promise<ExperimentStatus | null> {
    return (await this.redis.hget(this.keys.experiment(id), 'status')) as ExperimentStatus | null;
  }
}

/** A stream entry as an event (a child's events carry their jobId, variant and seed in the data). */
export function parseEntry([id, fields]: [string, string[]]): StoredExperimentEvent {
  return { id, event: JSON.parse(fields[fields.indexOf('data') + 1]!) as ExperimentEvent };
}

function parseRecord(h: Record<string, string>): ExperimentRecord | null {
  if (!h || !h.status) return null;
  return {
    id: h.id!,
    tenant: h.tenant!,
    name: h.name || null,
    template: h.template || null,
    status: h.status as ExperimentStatus,
    createdAt: h.createdAt!,
    finishedAt: h.finishedAt ?? null,
    cancelRequested: h.cancelRequested === '1',
    request: JSON.parse(h.request!) as ExperimentSpec,
    paths: JSON.parse(h.paths!) as string[],
    target: JSON.parse(h.target!) as Target | null,
    variants: JSON.parse(h.variants!) as VariantInfo[],
    runs: JSON.parse(h.runs!) as RunRef[],
    summary: h.summary ? (JSON.parse(h.summary) as Summary) : null,
  };
}
