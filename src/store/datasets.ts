/**
 * Uploaded datasets: `dataset:{id}` holds a summary (JSON) and the dataset in
 * the binary form of the datasets module.
 */
import { decodeDataset, encodeDataset, type Dataset } from '../datasets/index.js';
import type { Keys } from '../queue/keys.js';
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

export class DatasetStore {
  constructor(private readonly redis: Redis, private readonly keys: Keys) {}

  async save(ds: Dataset, bytes: number): Promise<DatasetSummary> {
    const summary: DatasetSummary = {
      id: ds.id, name: ds.name, kind: 'upload', inputShape: ds.inputShape, features: ds.features,
      classes: ds.classes, classNames: ds.classNames, rows: ds.train.n, bytes, createdAt: new Date().toISOString(),
    };
    await this.redis.multi()
      .hset(this.keys.dataset(ds.id), { summary: JSON.stringify(summary), data: encodeDataset(ds) })
      .zadd(this.keys.datasetIndex, 0, ds.id)
      .exec();
    return summary;
  }

  async summary(id: string): Promise<DatasetSummary | null> {
    const s = await this.redis.hget(this.keys.dataset(id), 'summary');
    return s ? (JSON.parse(s) as DatasetSummary) : null;
  }

  async load(id: string): Promise<Dataset | null> {
    const buf = await this.redis.hgetBuffer(this.keys.dataset(id), 'data');
    return buf ? decodeDataset(buf) : null;
  }

  async list(): Promise<DatasetSummary[]> {
    const ids = await this.redis.zrevrangebylex(this.keys.datasetIndex, '+', '-');
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hget(this.keys.dataset(id), 'summary');
    const rows = (await pipeline.exec()) ?? [];
    return rows.flatMap(([, s]) => (s ? [JSON.parse(s as string) as DatasetSummary] : []));
  }

  /** True when the dataset existed. */
  async delete(id: string): Promise<boolean> {
    const [[, n]] = (await this.redis.multi().unlink(this.keys.dataset(id)).zrem(this.keys.datasetIndex, id).exec())!;
    return n === 1;
  }
}
