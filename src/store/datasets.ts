/**
 * Uploaded datasets: `tenant:{t}:dataset:id` (in the tenant's slot) holds the owning tenant, a summary
 * (JSON), the stored size and the dataset in the binary form of the datasets
 * module. A tenant's uploads are listed in its own index and their stored
 * sizes add up in its usage hash, which the upload quota checks atomically.
 */
import { decodeDataset, encodeDataset, type Dataset } from '../datasets/index.js';
import type { Keys } from '../queue/keys.js';
import { NOT_DURABLE, writeDurably, type Durability } from './durable.js';
import type { Redis } from './redis.js';

export interface DatasetSummary {
  id: string;
  name: string;
  kind: 'upload';
  inputShape: number[];
  features: number;
  classes: number;
  classNames: string[];
  rows: number;
  bytes: number;
  createdAt: string;
}

/** KEYS: dataset, index, usage. ARGV: limit, bytes, id, tenant, summary, data. Returns -1 when saved, else the bytes in use. */
export const SAVE_DATASET_LUA = `
local used = tonumber(redis.call('HGET', KEYS[3], 'datasetBytes') or '0')
if used + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return used end
redis.call('HSET', KEYS[1], 'tenant', ARGV[4], 'bytes', ARGV[2], 'summary', ARGV[5], 'data', ARGV[6])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('HINCRBY', KEYS[3], 'datasetBytes', ARGV[2])
return -1
`;

/** KEYS: dataset, index, usage. ARGV: id, tenant. Returns 1 when the tenant's dataset was deleted. */
export const DELETE_DATASET_LUA = `
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[2] then return 0 end
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'datasetBytes', -bytes)
return 1
`;

function summaryOf(ds: Dataset, bytes: number): DatasetSummary {
  return {
    id: ds.id, name: ds.name, kind: 'upload', inputShape: ds.inputShape, features: ds.features,
    classes: ds.classes, classNames: ds.classNames, rows: ds.train.n, bytes, createdAt: new Date().toISOString(),
  };
}

/**
 * Bytes an upload takes in Redis, what the quota counts: the encoded dataset
 * and its summary (whose `bytes` field gets 16 digits of room).
 */
export function storedSize(ds: Dataset, encoded: Buffer = encodeDataset(ds)): number {
  return encoded.length + Buffer.byteLength(JSON.stringify(summaryOf(ds, 1e15)));
}

export class DatasetQuotaError extends Error {
  constructor(readonly bytes: number, readonly used: number, readonly limit: number) {
    super(`storing this upload takes ${bytes} bytes, over the tenant's dataset storage of ${limit} bytes (${used} in use)`);
    this.name = 'DatasetQuotaError';
  }
}

export class DatasetStore {
  /** Uploads and deletions wait for the replicas of `durability` (a failover keeps what the API acknowledged). */
  constructor(private readonly redis: Redis, private readonly keys: Keys, private readonly maxBytesPerTenant: number, private readonly durability: Durability = NOT_DURABLE) {}

  /**
   * Store an upload; it counts what Redis stores (see storedSize).
   * DatasetQuotaError when the tenant's storage would exceed its limit.
   */
  async save(tenant: string, ds: Dataset): Promise<DatasetSummary> {
    const data = encodeDataset(ds);
    const bytes = storedSize(ds, data);
    const summary = summaryOf(ds, bytes);
    const k = this.keys;
    const used = await writeDurably(this.redis, this.durability, k.usage(tenant), () => this.redis.saveDataset(
      k.dataset(tenant, ds.id), k.datasetIndex(tenant), k.usage(tenant),
      this.maxBytesPerTenant, bytes, ds.id, tenant, JSON.stringify(summary), data,
    ));
    if (used >= 0) throw new DatasetQuotaError(bytes, used, this.maxBytesPerTenant);
    return summary;
  }

  /** The tenant's dataset, or null (also for another tenant's). */
  async summary(tenant: string, id: string): Promise<DatasetSummary | null> {
    const [owner, s] = await this.redis.hmget(this.keys.dataset(tenant, id), 'tenant', 'summary');
    return owner === tenant && s ? (JSON.parse(s) as DatasetSummary) : null;
  }

  async load(tenant: string, id: string): Promise<Dataset | null> {
    const [owner, data] = await this.redis.hmgetBuffer(this.keys.dataset(tenant, id), 'tenant', 'data');
    return owner?.toString() === tenant && data ? decodeDataset(data) : null;
  }

  async list(tenant: string): Promise<DatasetSummary[]> {
    const ids = await this.redis.zrevrangebylex(this.keys.datasetIndex(tenant), '+', '-');
    if (ids.length === 0) return [];
    const rows = await Promise.all(ids.map((id) => this.redis.hget(this.keys.dataset(tenant, id), 'summary')));
    return rows.flatMap((s) => (s ? [JSON.parse(s) as DatasetSummary] : []));
  }

  /** True when the tenant's dataset existed. */
  async delete(tenant: string, id: string): Promise<boolean> {
    const k = this.keys;
    const deleted = await writeDurably(this.redis, this.durability, k.usage(tenant),
      () => this.redis.deleteDataset(k.dataset(tenant, id), k.datasetIndex(tenant), k.usage(tenant), id, tenant));
    return deleted === 1;
  }
}
