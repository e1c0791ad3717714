/**
 * Job records in Redis: a hash per job (tenant, status, progress, latest
 * metrics, warnings, error, spec), the capped event stream `job:{id}:events`,
 * the epoch history list, the latest checkpoint and the tenant's indexes.
 * Events are appended by one Lua script that also updates the hash, so the
 * stream and the status never disagree, nothing is appended after a terminal
 * event (exactly one per job), and an epoch is recorded once even when a
 * resumed attempt trains it again. A child of an experiment also has its
 * epoch and terminal events copied to the experiment's stream, tagged with
 * the job id, variant and seed (see `copyToExperiment`).
 */
import type { BatchNormChannels, FinalMetrics, Metrics, TrainEvent, TrainInferenceGap, Warning } from '../core/events.js';
import type { JobSpec } from '../core/spec.js';
import type { Keys } from '../queue/keys.js';
import { NOT_DURABLE, waitForReplicas, writeDurably, type Durability } from './durable.js';
import type { Redis } from './redis.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const JOB_STATUSES: JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const TERMINAL: Record<string, JobStatus> = { completed: 'succeeded', failed: 'failed', cancelled: 'cancelled' };

export function isFinished(status: JobStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

export interface JobProgress {
  epoch: number; epochs: number; step: number; stepsPerEpoch: number;
  loss: number; samplesPerSec: number; etaSeconds: number;
}

export interface LatestMetrics { epoch: number; train: Metrics; val: Metrics | null; test: Metrics | null; lr: number; gap?: TrainInferenceGap | null }

export interface JobError { code: string; message: string; details?: Record<string, unknown> }

export interface JobRecord {
  id: string;
  tenant: string;
  name: string | null;
  status: JobStatus;
  attempt: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  spec: JobSpec;
  progress: JobProgress | null;
  metrics: LatestMetrics | null;
  finalMetrics: FinalMetrics | null;
  epochsToTarget: number | null;
  warnings: Warning[];
  modelId: string | null;
  error: JobError | null;
  /** Set for a child of an experiment. */
  experiment: { id: string; variant: number; seed: number } | null;
}

/** One entry of the event stream: the stream id and the event. */
export interface StoredEvent { id: string; event: TrainEvent }

export type EpochEvent = Extract<TrainEvent, { type: 'epoch' }>;

/**
 * KEYS: job, events, history, cancel, checkpoint. ARGV: maxLen, type, data, ttl, field, value, …
 * A terminal event deletes the checkpoint, except `failed`, which keeps it
 * (the last good state of a diverged job) as long as the job.
 */
export const APPEND_JOB_EVENT_LUA = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'succeeded' or status == 'failed' or status == 'cancelled' then return false end
if ARGV[2] == 'epoch' then
  local last = redis.call('LINDEX', KEYS[3], -1)
  if last and cjson.decode(last).epoch >= cjson.decode(ARGV[3]).epoch then return false end
  redis.call('RPUSH', KEYS[3], ARGV[3])
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[2], 'data', ARGV[3])
if #ARGV > 4 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
if ARGV[2] == 'warning' then
  local old = redis.call('HGET', KEYS[1], 'warnings')
  redis.call('HSET', KEYS[1], 'warnings', (old and (old .. '\\n') or '') .. ARGV[3])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
  if ARGV[2] == 'failed' then redis.call('EXPIRE', KEYS[5], ttl) else redis.call('DEL', KEYS[5]) end
end
return id
`;

/**
 * KEYS: job, events (the job's slot). ARGV: maxLen, queued event, field, value, …
 * Records a new job's hash and first event; it is not listed nor counted
 * until RESERVE_JOB_LUA indexes it.
 */
export const CREATE_JOB_LUA = `
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'type', 'queued', 'data', ARGV[2])
return 1
`;

/**
 * KEYS: activeJobs, jobIndex (the tenant's slot). ARGV: maxActive, id.
 * Counts and lists a recorded job unless the tenant already has maxActive active jobs (returns 0).
 */
export const RESERVE_JOB_LUA = `
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
`;

/**
 * KEYS: batchnorm list, job. ARGV: epoch, entry JSON, maxBytes, ttl.
 * Appends one epoch's per-channel statistics once (a resumed attempt may
 * train an epoch again), while the job is not finished, and drops the oldest
 * epochs beyond maxBytes (the newest is always kept).
 */
export const APPEND_BATCHNORM_LUA = `
local status = redis.call('HGET', KEYS[2], 'status')
if not status or status == 'succeeded' or status == 'failed' or status == 'cancelled' then return 0 end
local last = tonumber(redis.call('HGET', KEYS[2], 'batchnormEpoch') or '0')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('HSET', KEYS[2], 'batchnormEpoch', ARGV[1])
redis.call('RPUSH', KEYS[1], ARGV[2])
local bytes = redis.call('HINCRBY', KEYS[2], 'batchnormBytes', #ARGV[2])
while bytes > tonumber(ARGV[3]) and redis.call('LLEN', KEYS[1]) > 1 do
  bytes = redis.call('HINCRBY', KEYS[2], 'batchnormBytes', -#redis.call('LPOP', KEYS[1]))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
`;

/** One stored epoch of GET /v1/jobs/:id/batchnorm. */
export interface BatchNormEpochEntry { epoch: number; layers: BatchNormChannels[] }

export interface JobStoreOptions {
  eventsMaxLen: number; bnHistoryMaxBytes: number; retainSucceededSeconds: number; retainFailedSeconds: number; tenantMaxActiveJobs: number;
  /** Replicas that acknowledge the writes a failover must not lose (see `append`); default none. */
  durability?: Durability;
}

/** Events that are written durably (WAIT for replicas): what a failover must not take back. */
const DURABLE_EVENTS = new Set<string>(['epoch', 'completed', 'failed', 'cancelled']);
/** A child's events that also go to its experiment's stream. */
const EXPERIMENT_EVENTS = new Set<string>(['epoch', 'completed', 'failed', 'cancelled']);

export class ActiveJobsLimitError extends Error {
  constructor(readonly limit: number) {
    super(`the tenant already has ${limit} queued or running jobs`);
    this.name = 'ActiveJobsLimitError';
  }
}

export class JobStore {
  constructor(private readonly redis: Redis, private readonly keys: Keys, private readonly options: JobStoreOptions) {}

  private get durability(): Durability {
    return this.options.durability ?? NOT_DURABLE;
  }

  /**
   * Record a new job (status queued) with its first event. Throws
   * ActiveJobsLimitError when the tenant has tenantMaxActiveJobs queued or
   * running jobs; finished jobs leave the count lazily, here. Two writes (the
   * job's slot, then the tenant's): in between the job exists unlisted, so a
   * reader of the index never meets an id without its hash. Not yet durable:
   * see `awaitReplicas`.
   */
  async create(tenant: string, id: string, spec: JobSpec, experiment?: { id: string; variant: number; seed: number }): Promise<void> {
    const k = this.keys;
    const limit = this.options.tenantMaxActiveJobs;
    const fields = {
      id, tenant, status: 'queued', attempt: 0, createdAt: new Date().toISOString(), spec: JSON.stringify(spec), name: spec.name ?? '',
      ...(experiment ? { experimentId: experiment.id, experimentVariant: experiment.variant, experimentSeed: experiment.seed } : {}),
    };
    await this.redis.createJob(k.job(id), k.events(id), this.options.eventsMaxLen, JSON.stringify({ type: 'queued' }), ...Object.entries(fields).flat());
    const reserve = () => this.redis.reserveJob(k.activeJobs(tenant), k.jobIndex(tenant), limit, id);
    if (await reserve() === 1) return;
    await this.pruneActive(tenant);
    if (await reserve() === 1) return;
    await this.redis.unlink(k.job(id), k.events(id));
    throw new ActiveJobsLimitError(limit);
  }

  /** Wait until replicas hold the job `create` recorded (its record and the tenant's indexes). */
  awaitReplicas(tenant: string, id: string): Promise<void> {
    return waitForReplicas(this.redis, this.durability, [this.keys.job(id), this.keys.jobIndex(tenant)]);
  }

  /** Drop the tenant's finished (or expired) jobs from its active set. */
  private async pruneActive(tenant: string): Promise<void> {
    const ids = await this.redis.smembers(this.keys.activeJobs(tenant));
    // One command per job: on a cluster each job's hash is on its own slot.
    const statuses = await Promise.all(ids.map((id) => this.redis.hget(this.keys.job(id), 'status')));
    const done = ids.filter((_, i) => {
      const status = statuses[i] as JobStatus | null;
      return !status || isFinished(status);
    });
    if (done.length > 0) await this.redis.srem(this.keys.activeJobs(tenant), ...done);
  }

  /** Forget a job that could not be queued (its slot, then its tenant's). */
  async remove(tenant: string, id: string): Promise<void> {
    const k = this.keys;
    await this.redis.multi()
      .zrem(k.jobIndex(tenant), id)
      .srem(k.activeJobs(tenant), id)
      .exec();
    await this.redis.unlink(k.job(id), k.events(id), k.history(id), k.cancel(id), k.checkpoint(id), k.batchnorm(id));
  }

  /**
   * Append an event and apply it to the job's hash. Returns the stream id, or
   * null when the job is unknown or already finished (nothing is written).
   * Epoch and terminal events (and with them every earlier write on this
   * connection to the job's slot: the checkpoint, progress) wait for the
   * replicas of `durability`: after a failover a job resumes from its last
   * acknowledged epoch and never ends twice.
   */
  async append(id: string, event: TrainEvent): Promise<string | null> {
    const k = this.keys;
    const terminal = TERMINAL[event.type];
    const ttl = terminal === undefined ? 0
      : terminal === 'succeeded' ? this.options.retainSucceededSeconds : this.options.retainFailedSeconds;
    const fields = Object.entries(hashUpdate(event, terminal)).flat();
    const args = [
      k.job(id), k.events(id), k.history(id), k.cancel(id), k.checkpoint(id),
      this.options.eventsMaxLen, event.type, JSON.stringify(event), ttl, ...fields,
    ];
    const durability = DURABLE_EVENTS.has(event.type) ? this.durability : NOT_DURABLE;
    const streamId = await writeDurably(this.redis, durability, k.job(id), () => this.redis.appendJobEvent(...args));
    // The batch-norm history goes with the job (its writes stop at the terminal event).
    if (streamId !== null && terminal !== undefined) await this.redis.expire(k.batchnorm(id), ttl);
    if (streamId !== null && EXPERIMENT_EVENTS.has(event.type)) await this.copyToExperiment(id, event, durability);
    return streamId;
  }

  /**
   * A child of an experiment: its epoch and terminal events also go to the
   * experiment's stream, tagged with the job id, variant and seed. A second
   * write, after the job's own (the experiment's stream is in the
   * experiment's hash slot, the job's keys in the job's): an event is copied
   * only once it is recorded, so never twice; a crash in between leaves the
   * experiment's stream without that one event (the summary reads the
   * children's records, not this stream).
   */
  private async copyToExperiment(id: string, event: TrainEvent, durability: Durability): Promise<void> {
    const [experimentId, variant, seed] = await this.redis.hmget(this.keys.job(id), 'experimentId', 'experimentVariant', 'experimentSeed');
    if (!experimentId) return;
    const stream = this.keys.experimentEvents(experimentId);
    // The event's JSON object with the tags in front.
    const tagged = JSON.stringify({ jobId: id, variant: Number(variant), seed: Number(seed), ...event });
    await writeDurably(this.redis, durability, stream, () => this.redis.xadd(stream, '*', 'type', event.type, 'data', tagged));
  }

  /** Record one epoch's per-channel batch-norm statistics (see APPEND_BATCHNORM_LUA). */
  async appendBatchNorm(id: string, epoch: number, layers: BatchNormChannels[]): Promise<void> {
    const entry: BatchNormEpochEntry = { epoch, layers };
    await this.redis.appendBatchNorm(this.keys.batchnorm(id), this.keys.job(id), epoch, JSON.stringify(entry),
      this.options.bnHistoryMaxBytes, this.options.retainFailedSeconds);
  }

  /** The stored per-channel history, oldest epoch first. */
  async batchNormHistory(id: string): Promise<BatchNormEpochEntry[]> {
    const items = await this.redis.lrange(this.keys.batchnorm(id), 0, -1);
    return items.map((s) => JSON.parse(s) as BatchNormEpochEntry);
  }

  async get(id: string): Promise<JobRecord | null> {
    return parseRecord(await this.redis.hgetall(this.keys.job(id)));
  }

  async status(id: string): Promise<JobStatus | null> {
    return (await this.redis.hget(this.keys.job(id), 'status')) as JobStatus | null;
  }

  /**
   * Newest first, `limit` per page, optionally only one status. The cursor is
   * the last id of the previous page. A filtered page examines at most
   * `scanLimit` ids, so it may hold fewer than `limit` jobs and still have a next page.
   */
  async list(tenant: string, options: { status?: JobStatus; limit: number; cursor?: string; scanLimit?: number }): Promise<{ items: JobRecord[]; nextCursor: string | null }> {
    const { status, limit, scanLimit = 1000 } = options;
    const index = this.keys.jobIndex(tenant);
    const items: JobRecord[] = [];
    let cursor = options.cursor ?? null;
    let scanned = 0;
    const batch = status ? 200 : limit;
    while (items.length < limit && scanned < scanLimit) {
      const ids = await this.redis.zrevrangebylex(index, cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, batch);
      const hashes = await Promise.all(ids.map((id) => this.redis.hgetall(this.keys.job(id))));
      const expired: string[] = [];
      for (let i = 0; i < ids.length && items.length < limit; i++) {
        cursor = ids[i];
        scanned++;
        const record = parseRecord(hashes[i]);
        if (!record) expired.push(ids[i]);
        else if (!status || record.status === status) items.push(record);
      }
      if (expired.length > 0) await this.redis.zrem(index, ...expired);
      if (ids.length < batch) return { items, nextCursor: null };
    }
    return { items, nextCursor: cursor };
  }

  /** Events after `after` (exclusive; '0' = from the start). */
  async events(id: string, after = '0', count = 1000): Promise<StoredEvent[]> {
    const entries = await this.redis.xrange(this.keys.events(id), `(${after}`, '+', 'COUNT', count);
    return entries.map(parseEntry);
  }

  async history(id: string): Promise<EpochEvent[]> {
    const items = await this.redis.lrange(this.keys.history(id), 0, -1);
    return items.map((s) => JSON.parse(s) as EpochEvent);
  }

  /** Durable: a cancellation the API acknowledged survives a failover. */
  async requestCancel(id: string): Promise<void> {
    const key = this.keys.cancel(id);
    await writeDurably(this.redis, this.durability, key, () => this.redis.set(key, '1', 'EX', this.options.retainFailedSeconds));
  }

  async isCancelRequested(id: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.cancel(id))) === 1;
  }

  /**
   * Replace the job's checkpoint (one SET, so a reader sees the old one or
   * the new one). It expires like a failed job, so a checkpoint whose job
   * vanished without a terminal event does not stay forever.
   */
  async saveCheckpoint(id: string, bytes: Uint8Array): Promise<void> {
    await this.redis.set(this.keys.checkpoint(id), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 'EX', this.options.retainFailedSeconds);
  }

  checkpoint(id: string): Promise<Buffer | null> {
    return this.redis.getBuffer(this.keys.checkpoint(id));
  }

}

export function parseEntry([id, fields]: [string, string[]]): StoredEvent {
  const data = fields[fields.indexOf('data') + 1];
  return { id, event: JSON.parse(data) as TrainEvent };
}

/** The hash fields an event sets. */
function hashUpdate(event: TrainEvent, terminal: JobStatus | undefined): Record<string, string | number> {
  const now = new Date().toISOString();
  const done: Record<string, string> = terminal ? { status: terminal, finishedAt: now } : {};
  switch (event.type) {
    case 'started':
      return { status: 'running', attempt: event.attempt, startedAt: now };
    case 'progress': {
      const { type: _, ...progress } = event;
      return { progress: JSON.stringify(progress) };
    }
    case 'epoch':
      return { metrics: JSON.stringify({ epoch: event.epoch, train: event.train, val: event.val, test: event.test, lr: event.lr, gap: event.gap ?? null }) };
    case 'completed':
      return { ...done, modelId: event.modelId, finalMetrics: JSON.stringify(event.metrics), epochsToTarget: JSON.stringify(event.epochsToTarget) };
    case 'failed':
      return { ...done, error: JSON.stringify({ code: event.code, message: event.message, details: event.details ?? {} }) };
    default:
      return done;
  }
}

function parseRecord(h: Record<string, string>): JobRecord | null {
  if (!h || !h.status) return null;
  const json = <T>(s: string | undefined): T | null => (s ? (JSON.parse(s) as T) : null);
  const spec = JSON.parse(h.spec) as JobSpec;
  const progress = json<Omit<JobProgress, 'epochs'>>(h.progress);
  return {
    id: h.id,
    tenant: h.tenant,
    name: h.name || null,
    status: h.status as JobStatus,
    attempt: Number(h.attempt),
    createdAt: h.createdAt,
    startedAt: h.startedAt ?? null,
    finishedAt: h.finishedAt ?? null,
    spec,
    progress: progress ? { ...progress, epochs: spec.training.epochs } : null,
    metrics: json<LatestMetrics>(h.metrics),
    finalMetrics: json<FinalMetrics>(h.finalMetrics),
    epochsToTarget: json<number>(h.epochsToTarget),
    warnings: parseWarnings(h.warnings),
    modelId: h.modelId ?? null,
    error: json<JobError>(h.error),
    experiment: h.experimentId ? { id: h.experimentId, variant: Number(h.experimentVariant), seed: Number(h.experimentSeed) } : null,
  };
}

/** The job's warning events as {code, message, details?}, each once (an attempt that starts over repeats its start warnings). */
function parseWarnings(raw: string | undefined): Warning[] {
  if (!raw) return [];
  const seen = new Set<string>();
  const out: Warning[] = [];
  for (const line of raw.split('\n')) {
    const { code, message, details } = JSON.parse(line) as Warning;
    const key = `${code}\n${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(details === undefined ? { code, message } : { code, message, details });
  }
  return out;
}
